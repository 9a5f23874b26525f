//! Tracing to stderr; `EMBUDO_LOG` (or `RUST_LOG`) sets the filter, else the command's
//! own default (`info` for the daemon, `warn` for commands whose output is the point).

use tracing_subscriber::EnvFilter;

pub fn init(default: &str) {
    let mut filter = std::env::var("EMBUDO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    // sqlx warns about every slow statement (a locked database makes many); our own
    // errors already say what happened. tokio-cron-scheduler logs each job it adds
    // at `info`, and the daemon adds one per firing. Quietened unless the filter
    // names them.
    for quiet in ["sqlx=error", "tokio_cron_scheduler=warn"] {
        let target = quiet.split('=').next().unwrap_or(quiet);
        if !filter.contains(target) {
            filter = format!("{filter},{quiet}");
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
