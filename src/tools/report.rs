//! `embudo report`: the funnel as it stands: leads per stage, stage-to-stage
//! conversion, time in stage, emails per template (with opens and clicks), and what
//! the sending policy is holding back.

use crate::domain::time::format_duration;
use crate::funnel::config::Config;
use crate::store::{Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub at: String,
    /// `embudo pause`: nothing is sent until `resume`.
    pub paused: bool,
    pub paused_campaigns: Vec<String>,
    pub stages: Vec<StageRow>,
    pub templates: Vec<TemplateRow>,
    pub held: Vec<HeldRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: String,
    /// Leads in the stage now.
    pub leads: i64,
    /// Leads that were ever in it.
    pub reached: i64,
    /// Of those, leads that later moved into the next stage of the funnel.
    pub to_next: Option<i64>,
    pub conversion_pct: Option<f64>,
    /// Mean time of finished stays, and how many there were.
    pub mean_stay: Option<String>,
    pub finished_stays: i64,
    /// Mean time the leads in it now have been there.
    pub mean_time_so_far: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateRow {
    pub template: String,
    pub states: BTreeMap<String, i64>,
    pub opens: i64,
    pub clicks: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldRow {
    pub reason: String,
    pub emails: i64,
    pub earliest_release: String,
}

pub async fn report(store: &Store, cfg: &Config, now: DateTime<Utc>) -> Result<Report, StoreError> {
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let now_rows = store.stage_now(now).await?;
    let stays = store.stage_stays().await?;
    let order: Vec<String> = cfg.stages.list.iter().map(|s| s.to_string()).collect();
    // Stages of the funnel in order, then any stage leads are in that it no longer has.
    let mut names = order.clone();
    names.extend(
        now_rows
            .iter()
            .map(|r| r.0.clone())
            .filter(|s| !order.contains(s)),
    );
    let mut stages = Vec::new();
    for (i, s) in names.iter().enumerate() {
        let reached = store.reached(s).await?;
        let next = order.get(i + 1).filter(|_| i + 1 < order.len());
        let to_next = match next {
            Some(n) => Some(store.converted(s, n).await?),
            None => None,
        };
        let now_row = now_rows.iter().find(|r| &r.0 == s);
        let stay = stays.iter().find(|r| &r.0 == s);
        stages.push(StageRow {
            stage: s.clone(),
            leads: now_row.map(|r| r.1).unwrap_or(0),
            reached,
            to_next,
            conversion_pct: to_next
                .filter(|_| reached > 0)
                .map(|n| (n as f64 * 1000.0 / reached as f64).round() / 10.0),
            mean_stay: stay.map(|r| format_duration(r.2)),
            finished_stays: stay.map(|r| r.1).unwrap_or(0),
            mean_time_so_far: now_row.map(|r| format_duration(r.2)),
        });
    }
    let mut templates: BTreeMap<String, TemplateRow> = BTreeMap::new();
    fn row<'a>(map: &'a mut BTreeMap<String, TemplateRow>, t: &str) -> &'a mut TemplateRow {
        map.entry(t.to_string()).or_insert_with(|| TemplateRow {
            template: t.to_string(),
            states: BTreeMap::new(),
            opens: 0,
            clicks: 0,
        })
    }
    for (t, state, n) in store.sends_by_template().await? {
        row(&mut templates, &t).states.insert(state, n);
    }
    for (t, kind, n) in store.engagement_by_template().await? {
        let r = row(&mut templates, &t);
        if kind == "open" {
            r.opens += n;
        } else {
            r.clicks += n;
        }
    }
    let (paused, paused_campaigns) = store.paused().await?;
    Ok(Report {
        at: rfc(now),
        paused,
        paused_campaigns,
        stages,
        templates: templates.into_values().collect(),
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
    })
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!("funnel at {}\n", self.at);
        if self.paused {
            out.push_str("SENDING IS PAUSED: nothing leaves until `embudo resume`\n");
        }
        for c in &self.paused_campaigns {
            out.push_str(&format!(
                "campaign `{c}` is paused (embudo resume --campaign {c})\n"
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "{:<14} {:>7} {:>8} {:>16} {:>12} {:>14}\n",
            "stage", "leads", "reached", "to next stage", "mean stay", "in it so far"
        ));
        for s in &self.stages {
            let next = match (s.to_next, s.conversion_pct) {
                (Some(n), Some(p)) => format!("{n} ({p:.1}%)"),
                (Some(n), None) => n.to_string(),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "{:<14} {:>7} {:>8} {:>16} {:>12} {:>14}\n",
                s.stage,
                s.leads,
                s.reached,
                next,
                s.mean_stay.as_deref().unwrap_or("-"),
                s.mean_time_so_far.as_deref().unwrap_or("-")
            ));
        }
        out.push_str("\nemails by template\n");
        if self.templates.is_empty() {
            out.push_str("  none yet\n");
        }
        for t in &self.templates {
            let states: Vec<String> = t.states.iter().map(|(s, n)| format!("{s} {n}")).collect();
            out.push_str(&format!(
                "  {:<20} {}; opens {}, clicks {}\n",
                t.template,
                states.join(", "),
                t.opens,
                t.clicks
            ));
        }
        out.push_str("\nheld back by the sending policy\n");
        if self.held.is_empty() {
            out.push_str("  nothing\n");
        }
        for h in &self.held {
            out.push_str(&format!(
                "  {:>5} email(s): {} (first release {})\n",
                h.emails, h.reason, h.earliest_release
            ));
        }
        out
    }
}
