//! The numbers of `embudo report` and `/metrics`, computed by the database so a
//! million leads are not loaded.

use super::Result;
use chrono::{DateTime, TimeDelta, Utc};

operations! {
    /// Leads now in each stage, with the mean time they have been there.
    fn stage_now(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64, TimeDelta)>>;

    /// Finished stays per stage: how many, and their mean length.
    fn stage_stays(&self) -> Result<Vec<(String, i64, TimeDelta)>>;

    /// Leads that were ever in `stage` (its history, or now).
    fn reached(&self, stage: &str) -> Result<i64>;

    /// Leads that moved into `to` after being in `from` (forward conversions only).
    fn converted(&self, from: &str, to: &str) -> Result<i64>;

    /// Outbox rows per template and state (the state's name).
    fn sends_by_template(&self) -> Result<Vec<(String, String, i64)>>;

    /// `open` and `click` events per template (the tracking links record them).
    fn engagement_by_template(&self) -> Result<Vec<(String, String, i64)>>;

    /// What the policy holds back now: reason, rows, earliest release.
    fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>>;
}

#[cfg(test)]
mod tests {
    use crate::store::fixture::{Fixture, fixtures};
    use chrono::{TimeDelta, TimeZone, Utc};

    /// Three leads; their stage histories; outbox rows; open, click and other events.
    async fn funnel(f: &Fixture) {
        f.lead(1, "a@example.com", "lead", 1000).await;
        f.lead(2, "b@example.com", "lead", 1501).await;
        f.lead(3, "c@example.com", "customer", 0).await;
        let mut sql = String::new();
        for (lead, to, at) in [
            (1, "lead", 0),
            (1, "trial", 100),
            (1, "lead", 1000),
            (2, "lead", 0),
            (2, "trial", 1001),
            (2, "lead", 1501),
            (3, "lead", 0),
            (3, "customer", 0),
        ] {
            sql += &format!(
                "INSERT INTO stage_history (lead_id, to_stage, at, cause) VALUES ({lead}, '{to}', {at}, 'test');\n"
            );
        }
        for (lead, template, key, state, error, next) in [
            (1, "welcome", "", "sent", "NULL", 10),
            (2, "welcome", "", "sent", "NULL", 10),
            (3, "welcome", "", "queued", "NULL", 10),
            (1, "promo", "a", "held", "'quiet hours'", 700),
            (2, "promo", "a", "held", "'quiet hours'", 600),
            (3, "promo", "a", "held", "'daily cap'", 900),
            (1, "promo", "b", "held", "NULL", 50),
        ] {
            sql += &format!(
                "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, state, last_error, next_attempt_at)
                 VALUES ({lead}, '{template}', '{key}', 0, 'lead', '{state}', {error}, {next});\n"
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
                "INSERT INTO events (lead_id, kind, at, props, recorded_at) VALUES ({lead}, '{kind}', 5, '{props}', 5);\n"
            );
        }
        f.exec(&sql).await;
    }

    fn ms(v: i64) -> TimeDelta {
        TimeDelta::milliseconds(v)
    }

    #[tokio::test]
    async fn stages_now_and_past_stays() {
        let now = Utc.timestamp_millis_opt(3000).unwrap();
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            // Means are truncated to whole milliseconds: (2000 + 1499) / 2 = 1749.5.
            let stages = store.stage_now(now).await.unwrap();
            let want = vec![
                ("customer".into(), 1, ms(3000)),
                ("lead".into(), 2, ms(1749)),
            ];
            assert_eq!(stages, want, "{e}");
            let stays = store.stage_stays().await.unwrap();
            let want = vec![("lead".into(), 3, ms(367)), ("trial".into(), 2, ms(700))];
            assert_eq!(stays, want, "{e}");
        }
    }

    #[tokio::test]
    async fn leads_reached_and_converted() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            f.lead(4, "d@example.com", "trial", 0).await;
            let reached = [("lead", 3), ("trial", 3), ("customer", 1), ("nowhere", 0)];
            for (stage, n) in reached {
                assert_eq!(store.reached(stage).await.unwrap(), n, "{e}: {stage}");
            }
            let converted = [
                ("lead", "trial", 2),
                ("lead", "customer", 1),
                ("trial", "lead", 2),
                ("customer", "lead", 0),
            ];
            for (from, to, n) in converted {
                let got = store.converted(from, to).await.unwrap();
                assert_eq!(got, n, "{e}: {from} → {to}");
            }
        }
    }

    #[tokio::test]
    async fn sends_engagement_and_what_is_held() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            funnel(&f).await;
            let row = |a: &str, b: &str, n| (a.to_string(), b.to_string(), n);
            let sends = store.sends_by_template().await.unwrap();
            let want = vec![
                row("promo", "held", 4),
                row("welcome", "queued", 1),
                row("welcome", "sent", 2),
            ];
            assert_eq!(sends, want, "{e}");
            let engaged = store.engagement_by_template().await.unwrap();
            let want = vec![
                row("", "open", 1),
                row("welcome", "click", 1),
                row("welcome", "open", 2),
            ];
            assert_eq!(engaged, want, "{e}");
            let at = |v| Utc.timestamp_millis_opt(v).unwrap();
            let held = store.held().await.unwrap();
            let want = vec![
                ("quiet hours".to_string(), 2, at(600)),
                ("daily cap".to_string(), 1, at(900)),
                (String::new(), 1, at(50)),
            ];
            assert_eq!(held, want, "{e}");
        }
    }
}
