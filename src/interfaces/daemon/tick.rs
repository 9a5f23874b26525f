//! The evaluation tick: a pass at start-up, then one at each firing of
//! `schedule.tick` in the business zone.

use super::jobs::{Firing, Next};
use crate::app::App;
use crate::clock::Clock;
use crate::engine::schedule;
use std::sync::Arc;
use tokio::sync::Notify;

/// One step of the tick: the pass for `firing`, then the sender is woken and the next
/// firing computed. The schedule is read each time: a reload may change it.
pub async fn step(app: App, clock: Clock, wake: Arc<Notify>, firing: Firing) -> Next {
    run_pass(&app, &clock, pass_instant(&app, &clock, &firing)).await;
    wake.notify_one();
    let funnel = app.funnel();
    let cron = &funnel.config.schedule.tick;
    let tz = funnel.config.schedule.timezone.0;
    let now = clock.now();
    if let Firing::Due(at) = firing {
        let missed = schedule::between(cron, tz, at, now, 10_000).len();
        if missed > 0 {
            tracing::warn!(
                missed,
                "the pass outlasted {missed} tick firing(s); they are coalesced into the next one"
            );
        }
    }
    match schedule::next_after(cron, tz, now) {
        Some(next) => Next::At(next),
        None => {
            tracing::warn!(
                "the tick schedule never fires again; evaluation stops, sending goes on"
            );
            app.health.pass_done(None);
            Next::Stop
        }
    }
}

/// The instant a pass runs at: the daemon's clock, except where daemons share passes
/// (PostgreSQL): there a firing's pass runs at the firing's own instant, which every
/// daemon computes alike, so they find the same pass to share. A firing run late (a
/// minute or more) runs at the clock instead, on its own.
fn pass_instant(
    app: &App,
    clock: &Clock,
    firing: &Firing,
) -> (chrono::DateTime<chrono::Utc>, bool) {
    let now = clock.now();
    match firing {
        Firing::Due(at)
            if app.store.shares_passes() && now - *at < chrono::TimeDelta::minutes(1) =>
        {
            (*at, true)
        }
        _ => (now, false),
    }
}

/// One evaluation pass at `at`; tells `/healthz` when the next is due.
async fn run_pass(app: &App, clock: &Clock, (at, shared): (chrono::DateTime<chrono::Utc>, bool)) {
    let pass = if shared {
        app.evaluate_firing(at).await
    } else {
        app.evaluate(at).await
    };
    match pass {
        Ok(_) => {
            // Overdue when the next pass has not finished within two tick intervals.
            let funnel = app.funnel();
            let (cron, tz) = (
                &funnel.config.schedule.tick,
                funnel.config.schedule.timezone.0,
            );
            let now = clock.now();
            let within = schedule::next_after(cron, tz, now)
                .and_then(|a| Some((a, schedule::next_after(cron, tz, a)?)))
                .and_then(|(a, b)| (b - now + (b - a)).to_std().ok());
            app.health.pass_done(within);
        }
        Err(e) => tracing::error!(error = %e, "evaluation pass failed, the next tick tries again"),
    }
}
