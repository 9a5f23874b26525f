//! `embudo import FILE`: leads or events from a CSV.

use super::args::instant;
use super::open;
use crate::app::AppError;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    file: PathBuf,
    /// Also move existing leads to the file's `stage` (recorded in the stage history).
    #[arg(long)]
    update_stage: bool,
    /// The clock that stamps the imported rows (RFC 3339); default: the wall clock.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

/// Exit 1 when bad rows were skipped (each is listed with its line).
pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let app = open::app_at(config, args.now).await?;
    let file = &args.file;
    let r = crate::ingest::csv::import_file(
        &app.store,
        &app.funnel().config,
        file,
        args.update_stage,
        app.clock.now(),
    )
    .await?;
    if r.holds == crate::ingest::csv::Holds::Events {
        println!("imported {}: {} event(s)", file.display(), r.events);
    } else {
        println!(
            "imported {}: {} lead(s) created, {} updated",
            file.display(),
            r.created,
            r.updated
        );
    }
    if r.bad.is_empty() {
        return Ok(0);
    }
    eprintln!("{} bad row(s) skipped:", r.bad.len());
    for b in &r.bad {
        eprintln!("  {}:{}: {}", file.display(), b.line, b.message);
    }
    Ok(1)
}
