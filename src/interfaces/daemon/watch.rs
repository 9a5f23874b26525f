//! Hot reload: the funnel folder is polled and each valid change swapped in; an
//! invalid one is logged with its positions and the running version stays.

use super::jobs::{Firing, Next};
use crate::app::App;
use crate::clock::Clock;
use crate::funnel::config::Config;
use crate::funnel::reload;
use chrono::TimeDelta;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How often the funnel folder is looked at for changes.
const WATCH: TimeDelta = TimeDelta::milliseconds(500);

/// How long the folder must stand still before a change is taken.
const SETTLE: Duration = Duration::from_millis(1500);

/// What the poll remembers between two looks.
struct Seen {
    /// The settings a reload cannot change are the ones the daemon started with.
    started: Config,
    /// The folder's fingerprint at the last look, and since when it has not changed.
    seen: u64,
    still_since: Instant,
    /// The fingerprint last acted on.
    settled: u64,
}

/// The poll's memory, kept by the job from one look to the next.
#[derive(Clone, Default)]
pub struct Watcher(Arc<Mutex<Option<Seen>>>);

impl Watcher {
    /// One look at the folder; at start-up (or a restart) it only takes note of it.
    pub async fn step(&self, app: App, clock: Clock, firing: Firing) -> Next {
        let mut state = self.0.lock().await;
        let now = fingerprint(&app).await;
        match (&mut *state, firing) {
            (Some(seen), Firing::Due(_)) => look(&app, seen, now, clock.now()).await,
            _ => {
                *state = Some(Seen {
                    started: app.funnel().config.clone(),
                    seen: now,
                    still_since: Instant::now(),
                    settled: now,
                })
            }
        }
        Next::At(clock.now() + WATCH)
    }
}

async fn fingerprint(app: &App) -> u64 {
    let cfg = app.funnel().config.clone();
    tokio::task::spawn_blocking(move || reload::fingerprint(&cfg))
        .await
        .unwrap_or_default()
}

/// Acts on a change once the files have stood still for a moment: not on a file an
/// editor is still writing.
async fn look(app: &App, s: &mut Seen, now: u64, at: chrono::DateTime<chrono::Utc>) {
    if now != s.seen {
        s.seen = now;
        s.still_since = Instant::now();
        return;
    }
    if now == s.settled || s.still_since.elapsed() < SETTLE {
        return;
    }
    s.settled = now;
    let old = app.funnel();
    match reload::prepare(&old.config.path, &app.store, &old, at).await {
        Ok(mut new) => {
            let restart = reload::keep_restart_settings(&s.started, &mut new.config);
            if !restart.is_empty() {
                tracing::warn!(
                    settings = %restart.join(", "),
                    "restart required: the running daemon keeps the old {}",
                    restart.join(", ")
                );
            }
            tracing::info!(
                rules = new.rules.rules.len(),
                templates = new.templates.ids().len(),
                campaigns = new.config.campaigns.len(),
                "reloaded the funnel"
            );
            app.cell.swap(Arc::new(new));
        }
        Err(problems) => {
            for p in &problems {
                tracing::error!(problem = %p, "reload rejected");
            }
            tracing::error!(
                problems = problems.len(),
                "the change was not applied; the last good version keeps running"
            );
        }
    }
}
