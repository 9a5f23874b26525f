//! `embudo event LEAD KIND`: record an event and run the lead's rules at once, at the
//! event's time.

use super::args::{instant, prop, rfc3339};
use super::open;
use crate::app::AppError;
use crate::domain::{Event, Value, ValueMap};
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
    let Some(id) = app.store.find_lead_id(&lead).await? else {
        return Err(AppError::Usage(format!(
            "no lead `{lead}`; name a lead by its email or id, or import it first (embudo import FILE)"
        )));
    };
    let props: ValueMap = props.into_iter().collect();
    let event = Event {
        kind: kind.clone(),
        at,
        props,
    };
    app.store.insert_events(&[(id, event)], at).await?;
    let r = app.evaluate_leads(&[id], at).await?;
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
