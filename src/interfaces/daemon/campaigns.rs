//! Campaign firings: each campaign fires at its instants (and, at start-up, what was
//! missed, as `missed:` says).

use super::jobs::Next;
use crate::app::App;
use crate::clock::Clock;
use chrono::TimeDelta;
use std::sync::Arc;
use tokio::sync::Notify;

/// The longest wait between two looks, so a reload's new campaign or schedule is
/// taken up within a minute.
const AT_LEAST_EVERY: TimeDelta = TimeDelta::minutes(1);

/// Fires what is due at the daemon's clock, wakes the sender if anything was queued,
/// and says when the next campaign firing is (or a minute from now, if sooner).
pub async fn step(app: App, clock: Clock, wake: Arc<Notify>) -> Next {
    match app.fire_campaigns(clock.now()).await {
        Ok(fired) => {
            if fired.iter().any(|f| f.queued > 0) {
                wake.notify_one();
            }
        }
        Err(e) => tracing::error!(error = %e, "campaigns not fired, retrying"),
    }
    let funnel = app.funnel();
    let now = clock.now();
    let next = funnel
        .config
        .campaigns
        .iter()
        .filter_map(|c| crate::engine::campaigns::next_firing(c, &funnel.config, now))
        .min();
    let look_again = now + AT_LEAST_EVERY;
    Next::At(next.map_or(look_again, |n| n.min(look_again)))
}
