//! `embudo preview TEMPLATE`: the sender's rendering shown, written as .eml, or sent to
//! one address as a test.

use super::args::instant;
use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use crate::tools::preview::{Who, preview};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The template id (the file name without .html).
    template: String,
    /// The lead, by email or id.
    #[arg(long, required_unless_present = "sample", conflicts_with = "sample")]
    lead: Option<String>,
    /// Use templates/_sample.yaml (no database needed).
    #[arg(long)]
    sample: bool,
    /// Write the whole MIME message to FILE instead of showing it.
    #[arg(long)]
    eml: Option<PathBuf>,
    /// Send it to ADDR through the configured transport (a test send: no outbox row).
    #[arg(long)]
    to: Option<String>,
    /// The clock the template sees (RFC 3339); default: now.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let to = args
        .to
        .map(|t| crate::domain::EmailAddress::parse(&t))
        .transpose()
        .map_err(|e| AppError::Usage(format!("--to: {e}")))?;
    let who = match args.lead {
        Some(l) => Who::Lead(l),
        None => Who::Sample,
    };
    let now = Clock::held_or_system(args.now).now();
    let template = &args.template;
    let p = preview(config, template, who, now).await?;
    if let Some(file) = &args.eml {
        std::fs::write(file, p.eml())
            .map_err(|e| AppError::Usage(format!("cannot write {}: {e}", file.display())))?;
        println!("wrote {}", file.display());
    }
    if let Some(to) = &to {
        let store = open::store(config, now).await?;
        p.send_to(&store, to, now).await?;
        println!("sent `{template}` to {to} (a test send: no outbox row)");
    }
    if args.eml.is_none() && to.is_none() {
        print!("{}", p.show());
    }
    Ok(0)
}
