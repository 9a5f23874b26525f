//! Supervision of the daemon's long-running tasks (the sender, the HTTP API): one
//! that panics or gives up is logged, shown by `/healthz`, and started again.

use crate::rules::panic_message;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the task `make` builds until shutdown. A task that panics or returns early is
/// logged, marked down in `health` (so `/healthz` says so), and started again after a
/// backoff (1 s, doubling to a minute); it counts as up again once it has run for
/// half a minute.
pub async fn supervise<F, Fut>(
    name: &'static str,
    health: crate::app::health::Health,
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
            Err(e) if e.is_panic() => {
                format!("panicked: {}", panic_message(e.into_panic().as_ref()))
            }
            Err(e) => e.to_string(),
        };
        tracing::error!(
            task = name,
            restart_in_s = backoff.as_secs(),
            why = %why,
            "a task of the daemon died; it is restarted"
        );
        health.task_down(name, why);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}
