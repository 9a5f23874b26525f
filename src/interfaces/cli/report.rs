//! `embudo report`: the funnel's numbers over a period, as a table, JSON, CSV or the
//! dashboard's HTML page.

use super::args::instant;
use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use crate::store::SegmentBy;
use crate::tools::report::{Format, Options, parse_segment};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The period's start (RFC 3339); default: the whole history.
    #[arg(long, value_parser = instant)]
    from: Option<DateTime<Utc>>,
    /// The period's end, exclusive (RFC 3339); default: the report's clock.
    #[arg(long, value_parser = instant)]
    to: Option<DateTime<Utc>>,
    /// Conversions and buying windows per segment too: tag:NAME or attr:NAME.
    #[arg(long, value_parser = parse_segment)]
    by: Option<SegmentBy>,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The report's clock, for "leads now", "time so far" and the next firings (RFC
    /// 3339); default: now.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let now = Clock::held_or_system(args.now).now();
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        return Err(AppError::Usage(format!(
            "--from {from} is not before --to {to}: the period would be empty"
        )));
    }
    let cfg = open::config(config, now)?;
    let store = open::database(&cfg).await?;
    let opts = Options {
        from: args.from,
        to: args.to,
        by: args.by,
    };
    let text = crate::tools::report::report(&store, &cfg, &opts, now)
        .await?
        .render(args.format);
    match args.output {
        None => print!("{text}"),
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| {
                AppError::Usage(format!(
                    "cannot write the report to {}: {e}",
                    path.display()
                ))
            })?;
            eprintln!("report written to {}", path.display());
        }
    }
    Ok(0)
}
