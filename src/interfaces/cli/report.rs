//! `embudo report`: the funnel as it stands.

use super::args::instant;
use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The clock for "time in stage so far" (RFC 3339); default: now.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let now = Clock::held_or_system(args.now).now();
    let cfg = open::config(config, now)?;
    let store = open::database(&cfg).await?;
    let r = crate::tools::report::report(&store, &cfg, now).await?;
    match args.format {
        Format::Table => print!("{}", r.table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&r).expect("plain data")),
    }
    Ok(0)
}
