//! `embudo run`: the daemon.

use super::args::{instant, span};
use crate::app::{App, AppError};
use crate::clock::Clock;
use crate::interfaces::daemon;
use chrono::{DateTime, TimeDelta, Utc};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start the clock at this RFC 3339 time; it then runs in real time (tests, demos).
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
    /// Serve the HTTP API on this address instead of `http.listen` (e.g. 127.0.0.1:0
    /// for any free port; the log names the one taken).
    #[arg(long, env = "EMBUDO_HTTP_LISTEN")]
    listen: Option<String>,
    /// After SIGTERM or Ctrl-C: how long sends under way may take before the daemon
    /// exits anyway (a duration: 10s, 1m).
    #[arg(long, value_parser = span, default_value = "10s")]
    shutdown_timeout: TimeDelta,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let clock = Clock::from_option(args.now);
    let app = App::builder(config).clock(clock).build().await?;
    let token = tokio_util::sync::CancellationToken::new();
    daemon::cancel_on_signal(token.clone());
    let options = daemon::Options {
        listen: args.listen,
        shutdown_timeout: args.shutdown_timeout.to_std().unwrap_or_default(),
    };
    daemon::run(app, options, token).await?;
    Ok(0)
}
