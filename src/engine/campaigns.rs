//! Scheduled campaigns: which firings are due, and firing one.
//!
//! Firing times come from the campaign's cron in its zone (`schedule.rs`, croner and
//! chrono-tz); the daemon's timer, `tick` and `simulate` only ask "what is due now?".
//! Each firing is a row `(campaign, key, state)` recorded before its first email is
//! queued and marked done after the last, so a restart in the middle resumes it, and
//! the outbox's dedupe key (lead, template, key) makes each lead's email once per key.

use crate::domain::LeadId;
use crate::engine::pass::PAGE;
use crate::engine::schedule;
use crate::funnel::Funnel;
use crate::funnel::config::{Campaign, Config, Missed};
use crate::rules::RuleError;
use crate::store::{FiringState, LoadedLead, Store, StoreError};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use std::sync::Arc;
use tracing::Instrument;

/// A firing handled more than this after its time was missed (no daemon or tick ran).
pub const ON_TIME: TimeDelta = TimeDelta::minutes(15);
/// How far back `catch_up` looks when the campaign gives no `grace`.
pub const DEFAULT_GRACE: TimeDelta = TimeDelta::days(1);

/// The zone of a campaign's schedule: its own, else the business zone.
pub fn zone(c: &Campaign, cfg: &Config) -> Tz {
    c.schedule
        .timezone
        .as_ref()
        .map(|z| z.0)
        .unwrap_or(cfg.schedule.timezone.0)
}

/// The key of a firing: the placeholders filled from its local date in `tz`.
pub fn key_for(c: &Campaign, tz: Tz, at: DateTime<Utc>) -> String {
    let d = at.with_timezone(&tz).date_naive();
    c.key
        .as_deref()
        .unwrap_or("{date}")
        .replace("{year}", &format!("{:04}", d.year()))
        .replace("{month}", &format!("{:02}", d.month()))
        .replace("{day}", &format!("{:02}", d.day()))
        .replace("{date}", &d.format("%Y-%m-%d").to_string())
}

fn in_window(c: &Campaign, tz: Tz, at: DateTime<Utc>) -> bool {
    let d = at.with_timezone(&tz).date_naive();
    c.start.is_none_or(|s| d >= s) && c.end.is_none_or(|e| d <= e)
}

/// The next firing of `c` after `after` (within its start/end dates).
pub fn next_firing(c: &Campaign, cfg: &Config, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = zone(c, cfg);
    let mut t = after;
    for _ in 0..10_000 {
        let n = schedule::next_after(&c.schedule.cron, tz, t)?;
        if c.end.is_some_and(|e| n.with_timezone(&tz).date_naive() > e) {
            return None;
        }
        if in_window(c, tz, n) {
            return Some(n);
        }
        t = n;
    }
    None
}

/// The latest scheduled firing at or before `at` within the campaign's dates, else
/// the next one: what `campaign run` fires when no key is given. `None` when the
/// campaign has no firing in its window at all.
pub fn current_firing(c: &Campaign, funnel: &Funnel, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = zone(c, &funnel.config);
    // After `end`, look back from the end of its last day.
    let mut t = match c.end {
        Some(end) if at.with_timezone(&tz).date_naive() > end => {
            local_instant(tz, end + chrono::Days::new(1), chrono::NaiveTime::MIN)
                - TimeDelta::milliseconds(1)
        }
        _ => at,
    };
    for _ in 0..1000 {
        let Some(p) = schedule::latest_at_or_before(&c.schedule.cron, tz, t) else {
            break;
        };
        if c.start
            .is_some_and(|s| p.with_timezone(&tz).date_naive() < s)
        {
            break;
        }
        if in_window(c, tz, p) {
            return Some(p);
        }
        t = p - TimeDelta::milliseconds(1);
    }
    next_firing(c, &funnel.config, at)
}

/// What one firing did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct FireReport {
    pub campaign: String,
    pub key: String,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Leads in the audience.
    pub audience: usize,
    /// Outbox rows added (fewer than the audience when some already had this key).
    pub queued: u64,
    /// A few of the audience's addresses.
    pub sample: Vec<String>,
    pub errors: Vec<RuleError>,
    /// Recorded as skipped (missed), with why.
    pub skipped: Option<String>,
    /// Not fired at all, and why (its template is missing): fix and it fires.
    pub problem: Option<String>,
    /// Of the audience, leads that already have this key (a dry run counts them).
    pub already: usize,
}

/// One firing to carry out.
#[derive(Debug, Clone)]
pub struct FireSpec {
    pub key: String,
    /// The instant the schedule said.
    pub scheduled_at: DateTime<Utc>,
    /// The clock the audience is judged at: the firing's own instant when it fires on
    /// time or catches up (a birthday is the firing's day, not the day it was handled),
    /// `now` for `campaign run`.
    pub audience_at: DateTime<Utc>,
    /// Kept with the firing's record (e.g. how late a catch-up was).
    pub note: Option<String>,
    /// Count and sample only: write nothing.
    pub dry: bool,
}

/// Fires every firing of every campaign due at `now` and not yet handled; records
/// missed ones as skipped (or catches the latest up, with `missed: catch_up`).
pub async fn fire_due(
    store: &Store,
    funnel: &Arc<Funnel>,
    now: DateTime<Utc>,
) -> Result<Vec<FireReport>, StoreError> {
    let mut out = Vec::new();
    for c in &funnel.config.campaigns {
        out.extend(fire_campaign_due(store, funnel, c, now).await?);
    }
    Ok(out)
}

/// The firings of one campaign due at `now`: a firing a crash left running is
/// resumed, then each scheduled one not yet handled is fired, caught up or skipped.
async fn fire_campaign_due(
    store: &Store,
    funnel: &Arc<Funnel>,
    c: &Campaign,
    now: DateTime<Utc>,
) -> Result<Vec<FireReport>, StoreError> {
    let tz = zone(c, &funnel.config);
    let first_seen = store.campaign_first_seen(&c.id, now).await?;
    if !funnel.templates.contains(c.template.as_str()) {
        let why = format!(
            "not fired: its template `{}` does not exist; add templates/{}.html (embudo check)",
            c.template, c.template
        );
        tracing::error!(campaign = %c.id, "{why}");
        return Ok(vec![FireReport {
            campaign: c.id.clone(),
            problem: Some(why),
            ..Default::default()
        }]);
    }
    let mut out = Vec::new();
    let last = store.last_firing(&c.id).await?;
    if let Some(last) = last.as_ref().filter(|l| l.state == FiringState::Running) {
        let spec = FireSpec {
            key: last.key.clone(),
            scheduled_at: last.scheduled_at,
            audience_at: last.scheduled_at.min(now),
            note: last.note.clone(),
            dry: false,
        };
        out.push(fire(store, funnel, c, &spec, now).await?);
    }
    // A firing at the very instant the campaign was first loaded counts; firings
    // before it never fire.
    let loaded = first_seen - TimeDelta::milliseconds(1);
    let since = last.map_or(loaded, |l| l.scheduled_at.max(loaded));
    let due: Vec<DateTime<Utc>> = schedule::between(&c.schedule.cron, tz, since, now, 100_000)
        .into_iter()
        .filter(|t| *t >= first_seen && in_window(c, tz, *t))
        .collect();
    let late = Late::among(c, &due, now);
    for at in due {
        let key = key_for(c, tz, at);
        if store.firing(&c.id, &key).await?.is_some() {
            continue;
        }
        match late.handling(c, at) {
            Handling::Coalesced => {}
            Handling::Skip(why) => {
                tracing::warn!(campaign = %c.id, key = %key, scheduled = %at, "firing skipped: {why}");
                store
                    .finish_firing(&c.id, &key, at, FiringState::Skipped, 0, 0, Some(&why), now)
                    .await?;
                out.push(FireReport {
                    campaign: c.id.clone(),
                    key,
                    scheduled_at: Some(at),
                    skipped: Some(why),
                    ..Default::default()
                });
            }
            Handling::Fire(note) => {
                if let Some(n) = &note {
                    tracing::warn!(campaign = %c.id, key = %key, scheduled = %at, "{n}");
                }
                let spec = FireSpec {
                    key,
                    scheduled_at: at,
                    audience_at: at,
                    note,
                    dry: false,
                };
                out.push(fire(store, funnel, c, &spec, now).await?);
            }
        }
    }
    Ok(out)
}

/// What becomes of one due firing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handling {
    /// Fired, with a note when it is caught up late.
    Fire(Option<String>),
    /// Recorded as skipped, with why (the latest of a run of missed firings).
    Skip(String),
    /// A missed firing counted in the latest one's record, not recorded itself.
    Coalesced,
}

/// The due firings handled more than [`ON_TIME`] after their time, at `now`.
struct Late {
    now: DateTime<Utc>,
    /// In order; the last is the one a run of missed firings is recorded (or caught
    /// up) as.
    firings: Vec<DateTime<Utc>>,
    grace: TimeDelta,
}

impl Late {
    fn among(c: &Campaign, due: &[DateTime<Utc>], now: DateTime<Utc>) -> Late {
        Late {
            now,
            firings: due.iter().copied().filter(|t| now - *t > ON_TIME).collect(),
            grace: c.grace.as_ref().map(|g| g.0).unwrap_or(DEFAULT_GRACE),
        }
    }

    /// On time: fired. Late: the latest of the run is caught up (`missed: catch_up`,
    /// within its grace) or recorded as skipped, counting the others.
    fn handling(&self, c: &Campaign, at: DateTime<Utc>) -> Handling {
        let now = self.now;
        let latest = self.firings.last() == Some(&at);
        if now - at <= ON_TIME {
            return Handling::Fire(None);
        }
        if !latest {
            return Handling::Coalesced;
        }
        let earlier = |verb: &str| {
            if self.firings.len() > 1 {
                format!(
                    "; {} earlier firing(s) since {} were missed{verb}",
                    self.firings.len() - 1,
                    self.firings[0].to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            } else {
                String::new()
            }
        };
        if c.missed == Missed::CatchUp && now - at <= self.grace {
            return Handling::Fire(Some(format!(
                "caught up {} late (missed: catch_up){}",
                crate::domain::time::format_duration(now - at),
                earlier("")
            )));
        }
        let why = match c.missed {
            Missed::Skip => "missed: no daemon or tick ran at its time (missed: skip)".to_string(),
            Missed::CatchUp => format!(
                "missed: older than its grace ({})",
                crate::domain::time::format_duration(self.grace)
            ),
        };
        Handling::Skip(format!("{why}{}", earlier(" too")))
    }
}

/// Carries out one firing of `c` at `now`: the audience is judged at
/// `spec.audience_at` page by page and each page's emails queued, so a crash loses
/// nothing and a resumed firing adds only what is missing. A dry spec counts and
/// samples, and writes nothing. Runs in a span naming the campaign and the firing.
pub async fn fire(
    store: &Store,
    funnel: &Arc<Funnel>,
    c: &Campaign,
    spec: &FireSpec,
    now: DateTime<Utc>,
) -> Result<FireReport, StoreError> {
    let span = tracing::info_span!("campaign firing", campaign = %c.id, at = %spec.scheduled_at);
    fire_in_span(store, funnel, c, spec, now)
        .instrument(span)
        .await
}

async fn fire_in_span(
    store: &Store,
    funnel: &Arc<Funnel>,
    c: &Campaign,
    spec: &FireSpec,
    now: DateTime<Utc>,
) -> Result<FireReport, StoreError> {
    let (key, scheduled_at) = (spec.key.as_str(), spec.scheduled_at);
    let mut report = FireReport {
        campaign: c.id.clone(),
        key: key.to_string(),
        scheduled_at: Some(scheduled_at),
        ..Default::default()
    };
    if !funnel.templates.contains(c.template.as_str()) {
        report.problem = Some(format!(
            "its template `{}` does not exist; add templates/{}.html",
            c.template, c.template
        ));
        return Ok(report);
    }
    if !spec.dry {
        store.begin_firing(&c.id, key, scheduled_at, now).await?;
    }
    let members = gather(store, funnel, c, spec, &mut report).await?;
    report.audience = members.len();
    if !spec.dry {
        let firing_date = scheduled_at
            .with_timezone(&zone(c, &funnel.config))
            .date_naive();
        let rows = delivery_times(c, firing_date, members, now);
        queue(store, c, spec, rows, &mut report, now).await?;
    }
    for e in &report.errors {
        tracing::error!(campaign = %c.id, error = %e, "audience error, lead left out");
    }
    Ok(report)
}

/// The firing's audience, page by page: (lead, stage, the lead's zone). Counts into
/// `report` its errors, a sample of addresses, and (dry) who already has the key.
async fn gather(
    store: &Store,
    funnel: &Arc<Funnel>,
    c: &Campaign,
    spec: &FireSpec,
    report: &mut FireReport,
) -> Result<Vec<(LeadId, String, Tz)>, StoreError> {
    let default_tz = funnel.config.default_timezone();
    let keyed = if spec.dry {
        store.leads_with_key(c.template.as_str(), &spec.key).await?
    } else {
        Default::default()
    };
    let mut members = Vec::new();
    let mut after = 0;
    loop {
        let page = store.load_page(after, PAGE, spec.audience_at).await?;
        let Some(last) = page.last() else { break };
        after = last.lead.id.0;
        let (matched, errors) = audience_of(funnel, &c.id, page, spec.audience_at).await;
        for e in errors {
            if !report
                .errors
                .iter()
                .any(|x| x.summary_key() == e.summary_key())
            {
                report.errors.push(e);
            }
        }
        for m in matched {
            if keyed.contains(&m.0) {
                report.already += 1;
            } else if report.sample.len() < 10 {
                report.sample.push(m.1.clone());
            }
            members.push((m.0, m.2, m.3.unwrap_or(default_tz)));
        }
    }
    Ok(members)
}

/// Queues the emails, each at its delivery time, and records the firing
/// as done.
async fn queue(
    store: &Store,
    c: &Campaign,
    spec: &FireSpec,
    rows: Vec<(LeadId, String, DateTime<Utc>)>,
    report: &mut FireReport,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let key = spec.key.as_str();
    for chunk in rows.chunks(PAGE as usize) {
        report.queued += store
            .enqueue_campaign(&c.id, &c.template, key, chunk, now)
            .await?;
    }
    let mut notes: Vec<String> = spec.note.iter().cloned().collect();
    notes.extend(
        report
            .errors
            .first()
            .map(|e| format!("audience error: {e}")),
    );
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    store
        .finish_firing(
            &c.id,
            key,
            spec.scheduled_at,
            FiringState::Done,
            report.audience as i64,
            report.queued as i64,
            note.as_deref(),
            now,
        )
        .await?;
    tracing::info!(campaign = %c.id, key, audience = report.audience, queued = report.queued, "campaign fired");
    Ok(())
}

/// When each member's email may leave: `deliver_at_local` on the firing's date in the
/// lead's own zone (else now), spread evenly over `spread` when given.
fn delivery_times(
    c: &Campaign,
    firing_date: NaiveDate,
    members: Vec<(LeadId, String, Tz)>,
    now: DateTime<Utc>,
) -> Vec<(LeadId, String, DateTime<Utc>)> {
    let n = members.len().max(1) as i64;
    members
        .into_iter()
        .enumerate()
        .map(|(i, (lead, stage, lead_tz))| {
            let mut at = match &c.deliver_at_local {
                Some(t) => local_instant(lead_tz, firing_date, t.0),
                None => now,
            };
            if let Some(spread) = &c.spread {
                at += TimeDelta::milliseconds(spread.0.num_milliseconds() * i as i64 / n);
            }
            (lead, stage, at)
        })
        .collect()
}

type Member = (LeadId, String, String, Option<Tz>);

/// The leads of a page in the campaign's audience (id, email, stage, zone). A lead
/// whose audience fails (an error, a runaway, a crash) is left out and reported; the
/// page goes on.
async fn audience_of(
    funnel: &Arc<Funnel>,
    campaign: &str,
    page: Vec<LoadedLead>,
    now: DateTime<Utc>,
) -> (Vec<Member>, Vec<RuleError>) {
    let f = funnel.clone();
    let campaign = campaign.to_string();
    let file = f
        .audiences
        .get(&campaign)
        .map(|a| a.file.clone())
        .unwrap_or_default();
    // The blocking thread logs in the firing's span too.
    let span = tracing::Span::current();
    let joined = tokio::task::spawn_blocking(move || {
        let _span = span.enter();
        let Some(audience) = f.audiences.get(&campaign) else {
            return (Vec::new(), Vec::new());
        };
        let tz = f.config.default_timezone();
        let mut members = Vec::new();
        let mut errors: Vec<RuleError> = Vec::new();
        for l in page {
            let member = (
                l.lead.id,
                l.lead.email.to_string(),
                l.lead.stage.to_string(),
                l.lead.timezone,
            );
            let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f.rules.audience_matches(audience, l, now, tz)
            }))
            .unwrap_or_else(|payload| {
                let why = crate::rules::panic_message(payload.as_ref());
                tracing::error!(lead = member.0.0, campaign = %campaign, panic = %why, "the audience crashed for this lead, which is left out");
                Err(audience_crash(&audience.file, &why))
            });
            match judged {
                Ok(true) => members.push(member),
                Ok(false) => {}
                Err(e) => {
                    if !errors.iter().any(|x| x.summary_key() == e.summary_key()) {
                        errors.push(e);
                    }
                }
            }
        }
        (members, errors)
    })
    .await;
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the audience of a page of leads failed, its leads are left out");
        (Vec::new(), vec![audience_crash(&file, &e.to_string())])
    })
}

fn audience_crash(file: &str, why: &str) -> RuleError {
    RuleError {
        file: file.to_string(),
        rule: file.to_string(),
        line: 1,
        col: 1,
        message: format!("internal error while the audience ran ({why}); the lead was left out"),
    }
}

/// `date` at `time` in `tz`, daylight-saving safe.
fn local_instant(tz: Tz, date: NaiveDate, time: chrono::NaiveTime) -> DateTime<Utc> {
    crate::domain::time::local_to_instant(tz, date.and_time(time))
}
