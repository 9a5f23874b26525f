//! `embudo campaign list|run`: each campaign's next firings, or fire one now.

use super::args::instant;
use super::open;
use crate::app::{App, AppError};
use crate::engine::campaigns::{self, zone};
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::Path;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Each campaign's next firing in its local time, and its last firing.
    List {
        /// The clock (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Fire a campaign now, with the key of its latest scheduled firing at or before
    /// now (the next one if none), unless --key; recorded as done.
    Run {
        id: String,
        /// Count the audience now and show a sample; queue nothing, record nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        key: Option<String>,
        /// The clock (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
}

pub async fn run(config: &Path, action: Action) -> Result<i32, AppError> {
    let now = match &action {
        Action::List { now } | Action::Run { now, .. } => *now,
    };
    let app = open::app_at(config, now).await?;
    let now = app.clock.now();
    match action {
        Action::List { .. } => list(&app, now).await,
        Action::Run {
            id, dry_run, key, ..
        } => fire(&app, &id, key, dry_run, now).await,
    }
}

/// `campaign list`: the next firing of each, one due but not yet handled, the last.
async fn list(app: &App, now: DateTime<Utc>) -> Result<i32, AppError> {
    let funnel = app.funnel();
    if funnel.config.campaigns.is_empty() {
        println!(
            "no campaigns in {}",
            funnel.config.display_path(&funnel.config.path)
        );
        return Ok(0);
    }
    let (_, paused) = app.store.paused().await?;
    for c in &funnel.config.campaigns {
        let tz = zone(c, &funnel.config);
        let next = match campaigns::next_firing(c, &funnel.config, now) {
            Some(t) => format!(
                "{} {} ({}), key {}",
                t.with_timezone(&tz).format(if t.timestamp() % 60 == 0 {
                    "%Y-%m-%d %H:%M"
                } else {
                    "%Y-%m-%d %H:%M:%S"
                }),
                tz,
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
                campaigns::key_for(c, tz, t)
            ),
            None => "never again".into(),
        };
        println!("{}  template {}  next: {next}", c.id, c.template);
        // A firing whose time has come but that no daemon or tick has handled.
        let last = app.store.last_firing(&c.id).await?;
        let since = match (&last, app.store.campaign_seen(&c.id).await?) {
            (Some(l), _) => Some(l.scheduled_at),
            (None, Some(seen)) => Some(seen - chrono::TimeDelta::milliseconds(1)),
            (None, None) => None,
        };
        if let Some(since) = since
            && let Some(due) =
                campaigns::next_firing(c, &funnel.config, since).filter(|t| *t <= now)
        {
            println!(
                "    due since {} (key {}): the next daemon round or `embudo tick` fires it, or skips it if missed",
                due.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                campaigns::key_for(c, tz, due)
            );
        }
        if let Some(l) = last {
            println!(
                "    last: key {} {} ({} in the audience, {} queued){}",
                l.key,
                l.state.as_str(),
                l.audience,
                l.queued,
                l.note.map(|n| format!("; {n}")).unwrap_or_default()
            );
        }
        if paused.contains(&c.id) {
            println!(
                "    paused: its emails wait until `embudo resume --campaign {}`",
                c.id
            );
        }
    }
    Ok(0)
}

/// `campaign run`: fires (or with `dry_run`, counts) one campaign at `now`.
async fn fire(
    app: &App,
    id: &str,
    key: Option<String>,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<i32, AppError> {
    let funnel = app.funnel();
    let c = funnel.config.campaign(id).map_err(AppError::Usage)?;
    let tz = zone(c, &funnel.config);
    let (key, scheduled) = match (key, campaigns::current_firing(c, &funnel, now)) {
        (Some(k), at) => (k, at.unwrap_or(now)),
        (None, Some(at)) => (campaigns::key_for(c, tz, at), at),
        (None, None) => {
            return Err(AppError::Usage(format!(
                "campaign `{id}` has no firing within its dates (start/end); pass --key K to fire it anyway"
            )));
        }
    };
    let spec = campaigns::FireSpec {
        key: key.clone(),
        scheduled_at: scheduled,
        audience_at: now,
        note: Some("fired by `embudo campaign run`".into()),
        dry: dry_run,
    };
    let r = campaigns::fire(&app.store, &funnel, c, &spec, now).await?;
    if let Some(p) = &r.problem {
        return Err(AppError::Usage(format!("campaign `{id}` cannot fire: {p}")));
    }
    if dry_run {
        println!(
            "campaign {id} [{key}] (dry run): {} lead(s) in the audience now; {} would be queued, {} already have key {key}; nothing queued",
            r.audience,
            r.audience - r.already,
            r.already
        );
        for s in &r.sample {
            println!("  {s}");
        }
        if r.audience - r.already > r.sample.len() {
            println!("  … and {} more", r.audience - r.already - r.sample.len());
        }
    } else {
        println!(
            "campaign {id} [{key}]: {} lead(s) in the audience, {} email(s) queued (leads that already had key {key} are not sent it again)",
            r.audience, r.queued
        );
    }
    for e in &r.errors {
        eprintln!("audience error: {e}");
    }
    Ok(if r.errors.is_empty() { 0 } else { 1 })
}
