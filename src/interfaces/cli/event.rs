//! `embudo event LEAD KIND`: record an event and run the lead's rules at once, at the
//! event's time.

use super::args::{instant, prop, rfc3339};
use super::open;
use crate::app::AppError;
use crate::app::events::NewEvent;
use crate::domain::{Event, Value};
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lead, by email or id.
    lead: String,
    /// The event kind, e.g. quote_requested.
    kind: String,
    /// When it happened (RFC 3339); default: now. The rules run at this time.
    #[arg(long, value_parser = instant)]
    at: Option<DateTime<Utc>>,
    /// A property of the event, typed by inference (repeatable): --prop amount=49.90
    #[arg(long = "prop", value_parser = prop)]
    props: Vec<(String, Value)>,
}

/// Exit 1 when a rule was skipped with an error.
pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let Args {
        lead,
        kind,
        at,
        props,
    } = args;
    crate::domain::ids::check_name("event kind", &kind).map_err(AppError::Usage)?;
    // The event's time is the command's clock: its rules run when it happened.
    let app = open::app_at(config, at).await?;
    let at = app.clock.now();
    let event = NewEvent {
        lead,
        event: Event {
            kind: kind.clone(),
            at,
            props: props.into_iter().collect(),
        },
        id: None,
    };
    let done = app.record_events(vec![event], at).await?;
    if let Some((_, e)) = done.failures.into_iter().next() {
        return Err(e.into());
    }
    let (id, r) = (done.leads[0], done.report);
    println!(
        "recorded `{kind}` for lead {id} at {}; the rules queued {} email(s) and made {} stage move(s)",
        rfc3339(at),
        r.queued,
        r.moves
    );
    for (e, _, _) in r.errors.values() {
        eprintln!("rule error: {e}");
    }
    Ok(if r.errors.is_empty() { 0 } else { 1 })
}
