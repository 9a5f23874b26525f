//! `embudo unsubscribe EMAIL | --file CSV`: no marketing email ever goes to it again.

use super::args::instant;
use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use crate::tools::operator;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    email: Option<String>,
    /// A CSV with an `email` column (other columns are ignored).
    #[arg(long, conflicts_with = "email", required_unless_present = "email")]
    file: Option<PathBuf>,
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let now = Clock::held_or_system(args.now).now();
    let store = open::store(config, now).await?;
    if let Some(file) = args.file {
        let (n, bad) = operator::unsubscribe_file(&store, &file, now).await?;
        println!("unsubscribed {n} address(es) from {}", file.display());
        for b in &bad {
            eprintln!("  {}:{}: {}", file.display(), b.line, b.message);
        }
        return Ok(if bad.is_empty() { 0 } else { 1 });
    }
    let raw = args.email.unwrap_or_default();
    let email = crate::domain::EmailAddress::parse(&raw).map_err(AppError::Usage)?;
    let known = operator::unsubscribe(&store, &email, now).await?;
    println!(
        "unsubscribed {email}{}",
        if known {
            ""
        } else {
            " (no lead has it yet; one that comes will get no marketing email)"
        }
    );
    Ok(0)
}
