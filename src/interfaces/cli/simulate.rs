//! `embudo simulate`: the funnel run forward on a scratch copy of the data.

use super::args::{instant, span};
use crate::app::AppError;
use crate::tools::simulate::{Format, Mode, Options, simulate_in};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start of the simulation (RFC 3339).
    #[arg(long, value_parser = instant)]
    from: DateTime<Utc>,
    /// End of the simulation (RFC 3339).
    #[arg(long, value_parser = instant)]
    to: DateTime<Utc>,
    /// Evaluate every STEP (e.g. 1h, 1d) instead of at the tick's cron times.
    #[arg(long, value_parser = span)]
    step: Option<TimeDelta>,
    /// Start from these leads instead of a copy of the funnel's database.
    #[arg(long)]
    leads: Option<PathBuf>,
    /// Events that happen during the simulation, each at its `at`.
    #[arg(long)]
    events: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Evaluate every lead at every tick (the reference the default, which evaluates
    /// only the leads whose outcome can change, is checked against).
    #[arg(long, hide = true)]
    full: bool,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let opts = Options {
        from: args.from,
        to: args.to,
        step: args.step,
        leads: args.leads,
        events: args.events,
    };
    let mode = if args.full { Mode::Full } else { Mode::Sparse };
    let sim = simulate_in(config, &opts, mode).await?;
    print!("{}", sim.render(args.format));
    if args.format == Format::Csv {
        eprint!("{}", sim.summary_lines());
    }
    Ok(0)
}
