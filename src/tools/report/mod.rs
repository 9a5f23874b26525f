//! The funnel's numbers, computed once for every place that shows them: `embudo
//! report` (table, JSON, CSV, HTML), `GET /funnel`, the dashboard at `/` and the end
//! of `simulate`. Over a period: leads per stage and stage-to-stage conversion with the
//! median and 90th percentile of time in stage; moves back to an earlier stage, per
//! pair and the rule that made them; per template what its recipients did next; the
//! conversions the funnel names; the months and weeks its customers buy in; what the
//! sending policy holds back; the next campaign firings. Every figure is counted by
//! the database (`store::report`), so a million leads are never loaded.

mod csv;
mod html;
mod table;
mod windows;

use crate::domain::time::format_duration;
use crate::funnel::config::Config;
use crate::store::{Period, SegmentBy, Store, StoreError};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
pub use windows::{BuyingWindows, MonthCount, Windows};

/// What a report covers and how it splits leads.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The period's start; `None`: the whole history.
    pub from: Option<DateTime<Utc>>,
    /// The period's end (exclusive); `None`: the report's clock.
    pub to: Option<DateTime<Utc>>,
    /// Conversions and buying windows per segment too.
    pub by: Option<SegmentBy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The report's clock: "leads now", "time so far" and the next firings are at it.
    pub at: String,
    /// The period, `[from, to)`; `from` is null for the whole history.
    pub from: Option<String>,
    pub to: String,
    /// `tag:NAME` or `attr:NAME` when conversions and buying windows are segmented.
    pub by: Option<String>,
    /// `embudo pause`: nothing is sent until `resume`.
    pub paused: bool,
    pub paused_campaigns: Vec<String>,
    pub stages: Vec<StageRow>,
    pub regressions: Vec<RegressionRow>,
    /// How long after an email a move to a later stage counts for it.
    pub moved_within: String,
    pub templates: Vec<TemplateRow>,
    pub conversions: Vec<ConversionRow>,
    pub buying_windows: BuyingWindows,
    pub held: Vec<HeldRow>,
    pub next_firings: Vec<FiringRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: String,
    /// Leads in the stage now.
    pub leads: i64,
    /// Leads in it at some moment of the period.
    pub reached: i64,
    /// Of those, leads that moved into the next stage of the funnel in the period.
    pub to_next: Option<i64>,
    pub conversion_pct: Option<f64>,
    /// Stays in it that ended in the period: how many, mean, median and 90th
    /// percentile length.
    pub finished_stays: i64,
    pub mean_stay: Option<String>,
    pub median_stay: Option<String>,
    pub p90_stay: Option<String>,
    /// Mean time the leads in it now have been there.
    pub mean_time_so_far: Option<String>,
}

impl StageRow {
    /// "to next stage" for people: `3 (75.0%)`, `3` with no rate, `-` for the last stage.
    pub fn to_next_text(&self) -> String {
        match (self.to_next, pct_text(self.conversion_pct)) {
            (Some(n), Some(p)) => format!("{n} ({p})"),
            (Some(n), None) => n.to_string(),
            _ => "-".into(),
        }
    }
}

/// Moves back to an earlier stage of the funnel, per pair and cause.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegressionRow {
    pub from: String,
    pub to: String,
    /// What made the move: `rule:NAME`, `import`, `http`…
    pub by: String,
    pub moves: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateRow {
    pub template: String,
    /// Rows requested in the period, per state now.
    pub states: BTreeMap<String, i64>,
    /// Leads it was sent to in the period (each counted once).
    pub sent: i64,
    /// Hard bounces in the period.
    pub bounced: i64,
    /// Recipients who opened it / clicked a link in it.
    pub opened: i64,
    pub clicked: i64,
    /// Unsubscribes in the period whose last email before was this one.
    pub unsubscribed: i64,
    /// Recipients who moved to a later stage within `moved_within` after it.
    pub moved_on: i64,
    pub opened_pct: Option<f64>,
    pub clicked_pct: Option<f64>,
    pub moved_on_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversionRow {
    pub name: String,
    pub from: String,
    pub to: String,
    pub within: String,
    pub all: ConversionFigures,
    /// Per segment, when the report is segmented.
    pub segments: Vec<ConversionFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversionFigures {
    pub segment: String,
    /// Leads whose first `from` fell in the period.
    pub started: i64,
    /// Of those, leads with a `to` within the time allowed (and before the period's end).
    pub converted: i64,
    pub rate_pct: Option<f64>,
    pub median_delay: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldRow {
    pub reason: String,
    pub emails: i64,
    pub earliest_release: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FiringRow {
    pub campaign: String,
    pub at: String,
    /// In the campaign's zone, for people.
    pub local: String,
    pub paused: bool,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A rate for people, `33.3%`; `None` when there is none (each format shows that its
/// own way).
pub fn pct_text(p: Option<f64>) -> Option<String> {
    p.map(|p| format!("{p:.1}%"))
}

/// `part / whole` in per cent, rounded to 0.1; `None` when `whole` is zero.
fn pct(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// The report of the funnel `cfg` over `opts` at the clock `now`.
pub async fn report(
    store: &Store,
    cfg: &Config,
    opts: &Options,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let period = Period {
        from: opts.from,
        to: opts.to.unwrap_or(now),
    };
    let order: Vec<String> = cfg.stages.list.iter().map(|s| s.to_string()).collect();
    let (paused, paused_campaigns) = store.paused().await?;
    Ok(Report {
        at: rfc(now),
        from: period.from.map(rfc),
        to: rfc(period.to),
        by: opts.by.as_ref().map(segment_name),
        paused,
        stages: stages(store, &order, period, now).await?,
        regressions: regressions(store, &order, period).await?,
        moved_within: format_duration(cfg.reports.moved_within.0),
        templates: templates(store, cfg, &order, period).await?,
        conversions: conversions(store, cfg, period, opts.by.as_ref()).await?,
        buying_windows: windows::buying_windows(store, cfg, period, opts.by.as_ref()).await?,
        held: store
            .held()
            .await?
            .into_iter()
            .map(|(reason, emails, t)| HeldRow {
                reason,
                emails,
                earliest_release: rfc(t),
            })
            .collect(),
        next_firings: next_firings(cfg, &paused_campaigns, now),
        paused_campaigns,
    })
}

/// `tag:NAME` or `attr:NAME`, as `--by` takes it.
pub fn segment_name(by: &SegmentBy) -> String {
    match by {
        SegmentBy::Tag(t) => format!("tag:{t}"),
        SegmentBy::Attr(a) => format!("attr:{a}"),
    }
}

/// `--by tag:NAME|attr:NAME`.
pub fn parse_segment(s: &str) -> Result<SegmentBy, String> {
    match s.split_once(':') {
        Some(("tag", t)) if !t.trim().is_empty() => Ok(SegmentBy::Tag(t.trim().into())),
        Some(("attr", a)) if !a.trim().is_empty() => Ok(SegmentBy::Attr(a.trim().into())),
        _ => Err(format!(
            "`{s}`: write tag:NAME (leads with the tag against the rest) or attr:NAME (one segment per value of the attribute)"
        )),
    }
}

/// A segment's name for people, from the value the store grouped by.
fn segment_label(by: Option<&SegmentBy>, raw: &str) -> String {
    match by {
        None => "all".into(),
        Some(SegmentBy::Tag(t)) if raw == "yes" => t.clone(),
        Some(SegmentBy::Tag(t)) => format!("not {t}"),
        Some(SegmentBy::Attr(a)) if raw.is_empty() => format!("no {a}"),
        // A stored attribute is a typed value as JSON ({"str":"x"}, {"int":3}…).
        Some(SegmentBy::Attr(_)) => crate::domain::value::Value::from_json(raw)
            .map_or_else(|_| raw.to_string(), |v| v.to_string()),
    }
}

async fn stages(
    store: &Store,
    order: &[String],
    period: Period,
    now: DateTime<Utc>,
) -> Result<Vec<StageRow>, StoreError> {
    let now_rows = store.stage_now(now).await?;
    let stays = store.stage_stays(period).await?;
    let reached = store.reached(period).await?;
    // The funnel's stages in order, then any stage leads are in that it no longer has.
    let mut names = order.to_vec();
    names.extend(
        now_rows
            .iter()
            .map(|r| r.0.clone())
            .filter(|s| !order.contains(s)),
    );
    let mut rows = Vec::new();
    for (i, s) in names.iter().enumerate() {
        let reached = reached.iter().find(|r| &r.0 == s).map_or(0, |r| r.1);
        let to_next = match order.get(i + 1) {
            Some(n) => Some(store.converted(s, n, period).await?),
            None => None,
        };
        let now_row = now_rows.iter().find(|r| &r.0 == s);
        let stay = stays.iter().find(|r| &r.0 == s).map(|r| r.1);
        let show = |f: fn(&crate::store::Spread) -> TimeDelta| {
            stay.as_ref().map(|x| format_duration(f(x)))
        };
        rows.push(StageRow {
            stage: s.clone(),
            leads: now_row.map_or(0, |r| r.1),
            reached,
            to_next,
            conversion_pct: to_next.and_then(|n| pct(n, reached)),
            finished_stays: stay.map_or(0, |x| x.count),
            mean_stay: show(|x| x.mean),
            median_stay: show(|x| x.median),
            p90_stay: show(|x| x.p90),
            mean_time_so_far: now_row.map(|r| format_duration(r.2)),
        });
    }
    Ok(rows)
}

/// Moves from a stage to an earlier one of the funnel (stages it no longer has are
/// left out: they have no place in its order).
async fn regressions(
    store: &Store,
    order: &[String],
    period: Period,
) -> Result<Vec<RegressionRow>, StoreError> {
    let place = |s: &str| order.iter().position(|x| x == s);
    let mut rows: Vec<RegressionRow> = store
        .moves_between(period)
        .await?
        .into_iter()
        .filter(|(from, to, _, _)| matches!((place(from), place(to)), (Some(f), Some(t)) if t < f))
        .map(|(from, to, by, moves)| RegressionRow {
            from,
            to,
            by,
            moves,
        })
        .collect();
    rows.sort_by(|a, b| {
        (place(&a.from), place(&a.to), &a.by).cmp(&(place(&b.from), place(&b.to), &b.by))
    });
    Ok(rows)
}

async fn templates(
    store: &Store,
    cfg: &Config,
    order: &[String],
    period: Period,
) -> Result<Vec<TemplateRow>, StoreError> {
    let mut rows: BTreeMap<String, TemplateRow> = BTreeMap::new();
    fn row<'a>(map: &'a mut BTreeMap<String, TemplateRow>, t: &str) -> &'a mut TemplateRow {
        map.entry(t.to_string()).or_insert_with(|| TemplateRow {
            template: t.to_string(),
            states: BTreeMap::new(),
            sent: 0,
            bounced: 0,
            opened: 0,
            clicked: 0,
            unsubscribed: 0,
            moved_on: 0,
            opened_pct: None,
            clicked_pct: None,
            moved_on_pct: None,
        })
    }
    for (t, state, n) in store.sends_by_template(period).await? {
        row(&mut rows, &t).states.insert(state, n);
    }
    let within = cfg.reports.moved_within.0;
    for f in store.template_figures(period, within, order).await? {
        let r = row(&mut rows, &f.template);
        r.sent = f.recipients;
        r.opened = f.opened;
        r.clicked = f.clicked;
        r.moved_on = f.moved_on;
        r.opened_pct = pct(f.opened, f.recipients);
        r.clicked_pct = pct(f.clicked, f.recipients);
        r.moved_on_pct = pct(f.moved_on, f.recipients);
    }
    for (t, n) in store.bounces_by_template(period).await? {
        row(&mut rows, &t).bounced = n;
    }
    for (t, n) in store.unsubscribes_by_template(period).await? {
        row(&mut rows, &t).unsubscribed = n;
    }
    Ok(rows.into_values().collect())
}

async fn conversions(
    store: &Store,
    cfg: &Config,
    period: Period,
    by: Option<&SegmentBy>,
) -> Result<Vec<ConversionRow>, StoreError> {
    let mut out = Vec::new();
    for c in &cfg.reports.conversions {
        let figures =
            |by: Option<&SegmentBy>, n: crate::store::ConversionCount| ConversionFigures {
                segment: segment_label(by, &n.segment),
                started: n.started,
                converted: n.converted,
                rate_pct: pct(n.converted, n.started),
                median_delay: n.median_delay.map(format_duration),
            };
        let all = store
            .conversion(&c.from.0, &c.to.0, c.within.0, period, None)
            .await?
            .into_iter()
            .next()
            .map_or(
                ConversionFigures {
                    segment: "all".into(),
                    started: 0,
                    converted: 0,
                    rate_pct: None,
                    median_delay: None,
                },
                |n| figures(None, n),
            );
        let segments = match by {
            None => Vec::new(),
            Some(_) => store
                .conversion(&c.from.0, &c.to.0, c.within.0, period, by)
                .await?
                .into_iter()
                .map(|n| figures(by, n))
                .collect(),
        };
        out.push(ConversionRow {
            name: c.name.clone(),
            from: c.from.to_string(),
            to: c.to.to_string(),
            within: format_duration(c.within.0),
            all,
            segments,
        });
    }
    Ok(out)
}

/// Each campaign's next firing after `now`, soonest first.
fn next_firings(cfg: &Config, paused: &[String], now: DateTime<Utc>) -> Vec<FiringRow> {
    let mut rows: Vec<(DateTime<Utc>, FiringRow)> = cfg
        .campaigns
        .iter()
        .filter_map(|c| {
            let at = crate::engine::campaigns::next_firing(c, cfg, now)?;
            let tz = crate::engine::campaigns::zone(c, cfg);
            Some((
                at,
                FiringRow {
                    campaign: c.id.clone(),
                    at: rfc(at),
                    local: at
                        .with_timezone(&tz)
                        .format("%a %Y-%m-%d %H:%M %Z")
                        .to_string(),
                    paused: paused.contains(&c.id),
                },
            ))
        })
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1.campaign).cmp(&(b.0, &b.1.campaign)));
    rows.into_iter().map(|r| r.1).collect()
}

/// The output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

impl Report {
    /// The whole report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => table::render(self),
            Format::Json => serde_json::to_string_pretty(self).expect("plain data") + "\n",
            Format::Csv => csv::render(self),
            Format::Html => html::page(self),
        }
    }
}
