//! The sender: holds the sender lease and delivers what is due, round after round.
//! A worker rather than a scheduled job: it runs whenever there is work, woken by the
//! tick and the campaigns as soon as they queue something.

use crate::app::App;
use crate::clock::Clock;
use crate::delivery::{Lease, SenderLease};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The sender looks for due rows at least this often, so an event's email leaves
/// within a second of being queued by another process.
const POLL: Duration = Duration::from_millis(250);

/// Holds the sender lease and delivers what is due, round after round.
pub async fn run(app: App, clock: Clock, shutdown: CancellationToken, wake: Arc<Notify>) {
    let lease = SenderLease::new();
    let mut backoff = POLL;
    let mut waiting_for: Option<String> = None;
    let mut was_paused = false;
    loop {
        match lease.acquire(&app.store).await {
            Ok(Lease::Busy { holder }) => {
                if waiting_for.as_ref() != Some(&holder) {
                    tracing::warn!(%holder, "another sender delivers from this database; this daemon evaluates and waits to take over");
                    waiting_for = Some(holder);
                }
                backoff = Duration::from_secs(2);
            }
            Ok(_) => {
                waiting_for = None;
                // The lease is renewed all round long, however long the round; if it
                // is lost anyway, the round stops between two sends.
                let stop = shutdown.child_token();
                let _keep = lease.keep_alive(&app.store, stop.clone());
                let paused;
                (backoff, paused) = deliver_round(&app, &clock, backoff, &stop).await;
                if let Some(p) = paused
                    && p != was_paused
                {
                    if p {
                        tracing::warn!(
                            "sending is paused (embudo pause): nothing leaves until `embudo resume`"
                        );
                    } else {
                        tracing::info!("sending resumed");
                    }
                    was_paused = p;
                }
            }
            Err(e) => {
                backoff = (backoff * 2).min(Duration::from_secs(30));
                tracing::error!(
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "delivery paused"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => {
                let _ = lease.release(&app.store).await;
                return;
            }
        }
    }
}

/// One delivery round; returns how long to wait before the next, and whether sending
/// is paused (when the round could tell).
async fn deliver_round(
    app: &App,
    clock: &Clock,
    backoff: Duration,
    stop: &CancellationToken,
) -> (Duration, Option<bool>) {
    match app
        .deliverer
        .deliver_due(&app.funnel(), || clock.now(), stop)
        .await
    {
        Ok(r) => {
            if r.touched() > 0 {
                tracing::info!(
                    sent = r.sent,
                    held = r.held,
                    retried = r.retried,
                    failed = r.failed,
                    stale = r.stale,
                    expired = r.expired,
                    suppressed = r.suppressed,
                    bounced = r.bounced,
                    "delivery round"
                );
            }
            (POLL, Some(r.paused))
        }
        Err(e) => {
            let backoff = (backoff * 2).min(Duration::from_secs(30));
            tracing::error!(
                error = %e,
                retry_in_ms = backoff.as_millis() as u64,
                "delivery paused, nothing is lost"
            );
            (backoff, None)
        }
    }
}
