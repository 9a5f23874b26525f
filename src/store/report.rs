//! The numbers of `embudo report` and `/metrics`, computed by the database so a
//! million leads are not loaded.

use super::Result;
use chrono::{DateTime, TimeDelta, Utc};

/// The half-open span `[from, to)` a report covers; `from: None` is the whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// The bounds as stored milliseconds (the history's start as `i64::MIN`).
    pub fn bounds_ms(&self) -> (i64, i64) {
        (
            self.from.map_or(i64::MIN, |t| t.timestamp_millis()),
            self.to.timestamp_millis(),
        )
    }
}

/// How a report splits leads into segments: by one tag (tagged or not) or by the value
/// of one attribute (one segment per value, `""` for leads without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentBy {
    Tag(String),
    Attr(String),
}

/// One end of a named conversion: a lead entering a stage, or an event of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occurrence {
    Stage(String),
    Event(String),
}

/// Lengths of time: how many, their mean, and the nearest-rank median and 90th
/// percentile (the length at rank ⌈p·n⌉ once sorted: always one that occurred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub count: i64,
    pub mean: TimeDelta,
    pub median: TimeDelta,
    pub p90: TimeDelta,
}

/// What one template's first send to each recipient in a period led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFigures {
    pub template: String,
    /// Leads it was sent to in the period.
    pub recipients: i64,
    /// Of those, leads who opened it / clicked a link in it (before the period's end).
    pub opened: i64,
    pub clicked: i64,
    /// Of those, leads who moved to a later stage than the one it was queued in,
    /// within the given time after it (and before the period's end).
    pub moved_on: i64,
}

/// A named conversion's figures in one segment (`""`: all leads, or leads without
/// the attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionCount {
    pub segment: String,
    /// Leads whose first `from` in the period happened.
    pub started: i64,
    /// Of those, leads with a `to` at or after it, within the time allowed and before
    /// the period's end.
    pub converted: i64,
    /// Nearest-rank median time from `from` to the first `to`, over the converted.
    pub median_delay: Option<TimeDelta>,
}

operations! {
    /// Leads now in each stage, with the mean time they have been there.
    fn stage_now(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64, TimeDelta)>>;

    /// Stays in each stage that ended in the period (the lead moved on, up or down):
    /// their lengths.
    fn stage_stays(&self, period: Period) -> Result<Vec<(String, Spread)>>;

    /// Leads in each stage at some moment of the period: its stay began before the
    /// period's end and had not ended by its start.
    fn reached(&self, period: Period) -> Result<Vec<(String, i64)>>;

    /// Of the leads in `from` during the period, those that moved into `to` in the
    /// period after entering `from`.
    fn converted(&self, from: &str, to: &str, period: Period) -> Result<i64>;

    /// Stage moves in the period per (from, to, cause), moves into a first stage left
    /// out.
    fn moves_between(&self, period: Period) -> Result<Vec<(String, String, String, i64)>>;

    /// Outbox rows requested in the period, per template and state (the state's name).
    fn sends_by_template(&self, period: Period) -> Result<Vec<(String, String, i64)>>;

    /// Each template's recipients in the period and what they did after it; `order` is
    /// the funnel's stages in order, `within` the time a move counts in.
    fn template_figures(
        &self,
        period: Period,
        within: TimeDelta,
        order: &[String],
    ) -> Result<Vec<TemplateFigures>>;

    /// Hard bounces in the period, per template.
    fn bounces_by_template(&self, period: Period) -> Result<Vec<(String, i64)>>;

    /// Unsubscribes in the period, per the template of the last email the lead was
    /// sent before it (leads unsubscribed before any email are not counted).
    fn unsubscribes_by_template(&self, period: Period) -> Result<Vec<(String, i64)>>;

    /// A named conversion per segment (one row, segment `""`, when `by` is `None`).
    fn conversion(
        &self,
        from: &Occurrence,
        to: &Occurrence,
        within: TimeDelta,
        period: Period,
        by: Option<&SegmentBy>,
    ) -> Result<Vec<ConversionCount>>;

    /// Events of `kind` in the period per segment and quarter of an hour (the instant
    /// in ms divided by 900,000): fine enough to place each in its local day in any
    /// time zone, coarse enough that a year is at most 35,136 rows a segment.
    fn occurrences(
        &self,
        kind: &str,
        period: Period,
        by: Option<&SegmentBy>,
    ) -> Result<Vec<(String, i64, i64)>>;

    /// What the policy holds back now: reason, rows, earliest release.
    fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>>;
}

#[cfg(test)]
mod tests {
    use super::{ConversionCount, Occurrence, Period, SegmentBy, Spread, TemplateFigures};
    use crate::store::fixture::{Fixture, fixtures};
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};

    /// Three leads and their stage histories (leads 1 and 2 go lead → trial → lead,
    /// lead 3 lead → customer); outbox rows; open, click and other events; a tag, an
    /// attribute and two unsubscribes. Every figure below is worked out by hand from it.
    async fn funnel(f: &Fixture) {
        f.lead(1, "a@example.com", "lead", 1000).await;
        f.lead(2, "b@example.com", "lead", 1501).await;
        f.lead(3, "c@example.com", "customer", 0).await;
        let mut sql = String::new();
        for (lead, from, to, at, cause) in [
            (1, "NULL", "lead", 0, "import"),
            (1, "'lead'", "trial", 100, "rule:try"),
            (1, "'trial'", "lead", 1000, "rule:lapse"),
            (2, "NULL", "lead", 0, "import"),
            (2, "'lead'", "trial", 1001, "rule:try"),
            (2, "'trial'", "lead", 1501, "rule:lapse"),
            (3, "NULL", "lead", 0, "import"),
            (3, "'lead'", "customer", 0, "import"),
        ] {
            sql += &format!(
                "INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES ({lead}, {from}, '{to}', {at}, '{cause}');\n"
            );
        }
        for (lead, template, key, state, error, next, sent, ended) in [
            (1, "welcome", "", "sent", "NULL", 10, "10", "10"),
            (2, "welcome", "", "sent", "NULL", 10, "10", "10"),
            (3, "welcome", "", "queued", "NULL", 10, "NULL", "NULL"),
            (
                1,
                "promo",
                "a",
                "held",
                "'quiet hours'",
                700,
                "NULL",
                "NULL",
            ),
            (
                2,
                "promo",
                "a",
                "held",
                "'quiet hours'",
                600,
                "NULL",
                "NULL",
            ),
            (3, "promo", "a", "held", "'daily cap'", 900, "NULL", "NULL"),
            (1, "promo", "b", "held", "NULL", 50, "NULL", "NULL"),
            (
                3,
                "promo",
                "c",
                "failed",
                "'hard bounce: 550 no such user'",
                20,
                "NULL",
                "20",
            ),
        ] {
            sql += &format!(
                "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, state, last_error, next_attempt_at, sent_at, ended_at)
                 VALUES ({lead}, '{template}', '{key}', 0, 'lead', '{state}', {error}, {next}, {sent}, {ended});\n"
            );
        }
        let welcome = r#"{"template":{"str":"welcome"},"url":{"str":"https://x.example"}}"#;
        for (lead, kind, props) in [
            (1, "open", welcome),
            (2, "open", welcome),
            (1, "click", welcome),
            (2, "open", "{}"),
            (3, "signup", welcome),
        ] {
            sql += &format!(
                "INSERT INTO events (lead_id, kind, at, props, recorded_at) VALUES ({lead}, '{kind}', 20, '{props}', 20);\n"
            );
        }
        sql += "INSERT INTO lead_tags (lead_id, tag) VALUES (1, 'vip');\n";
        sql += r#"INSERT INTO lead_attrs (lead_id, key, value) VALUES (2, 'city', '{"str":"Sevilla"}');"#;
        sql += "\nUPDATE leads SET unsubscribed_at = 50 WHERE id = 2;\n";
        sql += "UPDATE leads SET unsubscribed_at = 60 WHERE id = 3;\n";
        f.exec(&sql).await;
    }

    fn ms(v: i64) -> TimeDelta {
        TimeDelta::milliseconds(v)
    }

    fn at(v: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(v).unwrap()
    }

    fn spread(count: i64, mean: i64, median: i64, p90: i64) -> Spread {
        Spread {
            count,
            mean: ms(mean),
            median: ms(median),
            p90: ms(p90),
        }
    }

    /// The whole history up to 3000 ms, and the period [500, 1200).
    fn whole() -> Period {
        Period {
            from: None,
            to: at(3000),
        }
    }
    fn middle() -> Period {
        Period {
            from: Some(at(500)),
            to: at(1200),
        }
    }

    #[tokio::test]
    async fn stages_now_and_the_spread_of_past_stays() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            // Means are truncated to whole milliseconds: (2000 + 1499) / 2 = 1749.5.
            let stages = store.stage_now(at(3000)).await.unwrap();
            let want = vec![
                ("customer".into(), 1, ms(3000)),
                ("lead".into(), 2, ms(1749)),
            ];
            assert_eq!(stages, want, "{e}");
            // Stays in `lead`: 100, 1001 and 0 ms (mean 367; sorted 0, 100, 1001: the
            // median is rank 2, p90 rank ⌈2.7⌉ = 3); in `trial`: 900 and 500.
            let stays = store.stage_stays(whole()).await.unwrap();
            let want = vec![
                ("lead".into(), spread(3, 367, 100, 1001)),
                ("trial".into(), spread(2, 700, 500, 900)),
            ];
            assert_eq!(stays, want, "{e}");
            // Ended in [500, 1200): lead 2's first `lead` stay (1001), lead 1's `trial` (900).
            let stays = store.stage_stays(middle()).await.unwrap();
            let want = vec![
                ("lead".into(), spread(1, 1001, 1001, 1001)),
                ("trial".into(), spread(1, 900, 900, 900)),
            ];
            assert_eq!(stays, want, "{e}");
        }
    }

    #[tokio::test]
    async fn leads_reached_and_converted_over_a_period() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            // A lead with no history counts from its current stay.
            f.lead(4, "d@example.com", "trial", 0).await;
            let row = |s: &str, n| (s.to_string(), n);
            let reached = store.reached(whole()).await.unwrap();
            assert_eq!(
                reached,
                vec![row("customer", 1), row("lead", 3), row("trial", 3)],
                "{e}"
            );
            // In [500, 1200): in `lead` leads 1 (from 1000) and 2 (until 1001).
            let reached = store.reached(middle()).await.unwrap();
            assert_eq!(
                reached,
                vec![row("customer", 1), row("lead", 2), row("trial", 3)],
                "{e}"
            );
            let converted = [
                ("lead", "trial", whole(), 2),
                ("lead", "customer", whole(), 1),
                ("trial", "lead", whole(), 2),
                ("customer", "lead", whole(), 0),
                // Only lead 2 moved to trial in the period (at 1001), only lead 1 back.
                ("lead", "trial", middle(), 1),
                ("trial", "lead", middle(), 1),
            ];
            for (from, to, period, n) in converted {
                let got = store.converted(from, to, period).await.unwrap();
                assert_eq!(got, n, "{e}: {from} → {to} in {period:?}");
            }
            let row =
                |a: &str, b: &str, c: &str, n| (a.to_string(), b.to_string(), c.to_string(), n);
            let moves = store.moves_between(whole()).await.unwrap();
            let want = vec![
                row("lead", "customer", "import", 1),
                row("lead", "trial", "rule:try", 2),
                row("trial", "lead", "rule:lapse", 2),
            ];
            assert_eq!(moves, want, "{e}");
            let moves = store.moves_between(middle()).await.unwrap();
            let want = vec![
                row("lead", "trial", "rule:try", 1),
                row("trial", "lead", "rule:lapse", 1),
            ];
            assert_eq!(moves, want, "{e}");
        }
    }

    #[tokio::test]
    async fn what_each_template_led_to() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            let row = |a: &str, b: &str, n| (a.to_string(), b.to_string(), n);
            let sends = store.sends_by_template(whole()).await.unwrap();
            let want = vec![
                row("promo", "failed", 1),
                row("promo", "held", 4),
                row("welcome", "queued", 1),
                row("welcome", "sent", 2),
            ];
            assert_eq!(sends, want, "{e}");
            assert!(
                store.sends_by_template(middle()).await.unwrap().is_empty(),
                "{e}"
            );
            let order = ["lead".to_string(), "trial".into(), "customer".into()];
            let figures = |moved_on| TemplateFigures {
                template: "welcome".into(),
                recipients: 2,
                opened: 2,
                clicked: 1,
                moved_on,
            };
            // Both recipients moved on to trial: lead 1 at 100, lead 2 at 1001 ms…
            let got = store
                .template_figures(whole(), ms(14 * 86_400_000), &order)
                .await
                .unwrap();
            assert_eq!(got, vec![figures(2)], "{e}");
            // …so within 500 ms of the send at 10, only lead 1.
            let got = store
                .template_figures(whole(), ms(500), &order)
                .await
                .unwrap();
            assert_eq!(got, vec![figures(1)], "{e}");
            let bounced = store.bounces_by_template(whole()).await.unwrap();
            assert_eq!(bounced, vec![("promo".to_string(), 1)], "{e}");
            // Lead 2's last email before unsubscribing was the welcome; lead 3 had none.
            let unsubscribed = store.unsubscribes_by_template(whole()).await.unwrap();
            assert_eq!(unsubscribed, vec![("welcome".to_string(), 1)], "{e}");
            let held = store.held().await.unwrap();
            let want = vec![
                ("quiet hours".to_string(), 2, at(600)),
                ("daily cap".to_string(), 1, at(900)),
                (String::new(), 1, at(50)),
            ];
            assert_eq!(held, want, "{e}");
        }
    }

    #[tokio::test]
    async fn named_conversions_and_occurrences_per_segment() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            let count = |segment: &str, started, converted, median: Option<i64>| ConversionCount {
                segment: segment.into(),
                started,
                converted,
                median_delay: median.map(ms),
            };
            let (open, click) = (
                Occurrence::Event("open".into()),
                Occurrence::Event("click".into()),
            );
            let got = store
                .conversion(&open, &click, ms(1000), whole(), None)
                .await
                .unwrap();
            assert_eq!(got, vec![count("", 2, 1, Some(0))], "{e}");
            // trial → lead: lead 1 after 900 ms, lead 2 after 500.
            let (trial, lead) = (
                Occurrence::Stage("trial".into()),
                Occurrence::Stage("lead".into()),
            );
            let got = store
                .conversion(&trial, &lead, ms(600), whole(), None)
                .await
                .unwrap();
            assert_eq!(got, vec![count("", 2, 1, Some(500))], "{e}");
            let got = store
                .conversion(&trial, &lead, ms(1000), whole(), None)
                .await
                .unwrap();
            assert_eq!(got, vec![count("", 2, 2, Some(500))], "{e}");
            let vip = SegmentBy::Tag("vip".into());
            let got = store
                .conversion(&trial, &lead, ms(1000), whole(), Some(&vip))
                .await
                .unwrap();
            assert_eq!(
                got,
                vec![count("no", 1, 1, Some(500)), count("yes", 1, 1, Some(900))],
                "{e}"
            );
            let city = SegmentBy::Attr("city".into());
            let got = store
                .conversion(&trial, &lead, ms(1000), whole(), Some(&city))
                .await
                .unwrap();
            let sevilla = r#"{"str":"Sevilla"}"#;
            assert_eq!(
                got,
                vec![count("", 1, 1, Some(900)), count(sevilla, 1, 1, Some(500))],
                "{e}"
            );
            // Opens at 20 ms: quarter-hour 0; lead 2 opened twice.
            let row = |s: &str, q, n| (s.to_string(), q, n);
            let got = store.occurrences("open", whole(), None).await.unwrap();
            assert_eq!(got, vec![row("", 0, 3)], "{e}");
            let got = store
                .occurrences("open", whole(), Some(&vip))
                .await
                .unwrap();
            assert_eq!(got, vec![row("no", 0, 2), row("yes", 0, 1)], "{e}");
            assert!(
                store
                    .occurrences("open", middle(), None)
                    .await
                    .unwrap()
                    .is_empty(),
                "{e}"
            );
        }
    }
}
