//! `embudo explain LEAD [--at T]`: one lead's rule decisions and the sender's verdicts.

use super::args::instant;
use super::open;
use crate::app::AppError;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lead, by email or id.
    lead: String,
    /// The clock (RFC 3339); default: now.
    #[arg(long, value_parser = instant)]
    at: Option<DateTime<Utc>>,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let app = open::app_at(config, args.at).await?;
    let at = app.clock.now();
    print!(
        "{}",
        crate::tools::explain::explain(&app, &args.lead, at).await?
    );
    Ok(0)
}
