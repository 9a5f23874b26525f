//! Tracing to stderr; `EMBUDO_LOG` (or `RUST_LOG`) sets the filter, else the command's
//! own default (`info` for the daemon, `warn` for commands whose output is the point).

use tracing_subscriber::EnvFilter;

pub fn init(default: &str) {
    let filter = std::env::var("EMBUDO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        // sqlx warns about every slow statement (a locked database makes many); our own
        // errors already say what happened. tokio-cron-scheduler logs each job it adds
        // at `info`, and the daemon adds one per firing.
        .unwrap_or_else(|_| format!("{default},sqlx=error,tokio_cron_scheduler=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
