//! Supervision of the daemon's long-running tasks (the sender, the HTTP API): one
//! that panics or gives up is logged, shown by `/healthz`, and started again.

use crate::app::health::Health;
use crate::rules::panic_message;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the task `make` builds until shutdown. A task that panics or returns early is
/// logged, marked down in `health` (so `/healthz` says so), and started again after a
/// backoff (1 s, doubling to a minute); it counts as up again once it has run for
/// half a minute.
pub async fn supervise<F, Fut>(
    name: &'static str,
    health: Health,
    shutdown: CancellationToken,
    make: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    const STEADY: Duration = Duration::from_secs(30);
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut task = tokio::spawn(make());
        let result = tokio::select! {
            r = &mut task => r,
            _ = tokio::time::sleep(STEADY) => {
                health.task_up(name);
                backoff = Duration::from_secs(1);
                task.await
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        let why = match result {
            Ok(()) => "it stopped".to_string(),
            Err(e) => how_it_ended(e),
        };
        report_death(&health, name, why, backoff);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = longer(backoff);
    }
}

/// How a task that did not finish its work ended, in words for the log and `/healthz`.
pub fn how_it_ended(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        format!("panicked: {}", panic_message(e.into_panic().as_ref()))
    } else {
        e.to_string()
    }
}

/// Logs a task's death and marks it down for `/healthz`; it restarts after `backoff`.
pub fn report_death(health: &Health, name: &'static str, why: String, backoff: Duration) {
    tracing::error!(
        task = name,
        restart_in_s = backoff.as_secs(),
        why = %why,
        "a task of the daemon died; it is restarted"
    );
    health.task_down(name, why);
}

/// The wait before the next restart: the first is a second, each next one twice as
/// long, at most a minute.
pub fn longer(backoff: Duration) -> Duration {
    (backoff * 2).min(Duration::from_secs(60))
}
