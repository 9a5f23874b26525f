//! `embudo forget LEAD`: erase a person (GDPR), keeping only a hash of the address in
//! the suppression list.

use super::args::instant;
use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lead, by email or id.
    lead: String,
    /// The clock that stamps the suppression (RFC 3339); default: the wall clock.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let now = Clock::held_or_system(args.now).now();
    let store = open::existing_store(config, "forget", now).await?;
    let lead = &args.lead;
    let Some(id) = store.find_lead_id(lead).await? else {
        return Err(AppError::Usage(format!(
            "no lead `{lead}`; name a lead by its email or id"
        )));
    };
    let email = store.forget(id, now).await?;
    println!(
        "forgot lead {id} ({}): its data is erased; a hash of the address stays in the suppression list",
        email.map(|e| e.to_string()).unwrap_or_default()
    );
    Ok(0)
}
