//! `POST /events`: what leads do, recorded all or nothing; their rules run at once
//! ([`App::record_events_once`](crate::app::App::record_events_once)).

use super::Api;
use super::batch::{authorised_batch, values};
use super::error::{ApiError, json_text};
use super::idempotency::Idempotency;
use crate::app::events::{EventsError, EventsRecorded, NewEvent};
use crate::domain::Event;
use crate::store::Recorded;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// One event of a `POST /events` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    /// The lead, by email or id.
    #[serde(alias = "email")]
    lead: serde_json::Value,
    kind: String,
    at: Option<String>,
    /// The event's own id (unique per lead): a second event with it is a duplicate.
    id: Option<String>,
    #[serde(default)]
    props: serde_json::Map<String, serde_json::Value>,
}

impl EventIn {
    /// The event to record (dated `now` unless it says when); an error names the field.
    fn checked(self, now: DateTime<Utc>) -> Result<NewEvent, String> {
        let lead = match &self.lead {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err("lead: give the lead's email or id".into()),
        };
        crate::domain::ids::check_name("event kind", &self.kind)
            .map_err(|m| format!("kind: {m}"))?;
        if let Some(id) = &self.id {
            crate::ingest::csv::check_event_id(id)?;
        }
        let at = match self.at.as_deref() {
            None => now,
            Some(at) => {
                crate::domain::time::parse_instant_or_date(at).map_err(|m| format!("at: {m}"))?
            }
        };
        let props = values(&self.props, "props")?;
        Ok(NewEvent {
            lead,
            event: Event {
                kind: self.kind,
                at,
                props,
            },
            id: self.id,
        })
    }
}

/// The answer's body: what was recorded and what the rules did.
fn answer(r: Recorded, queued: usize, moves: usize) -> String {
    json!({ "recorded": r.recorded, "duplicates": r.duplicates, "queued": queued, "moves": moves })
        .to_string()
}

/// Records the events, then runs their leads' rules at the daemon's clock (an event
/// dated later is read when its time comes); the sender delivers within a second. The
/// key's first answer is written with the events (before the rules ran: `queued` and
/// `moves` 0) and replaced by the full one once the rules ran.
pub(super) async fn post_events(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let items: Vec<EventIn> = authorised_batch(&api, &headers, &body, "events")?;
    let key = Idempotency::of_request(&headers, "events", &body)?;
    let now = api.app.clock.now();
    let events = items
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.checked(now).map_err(|m| ApiError::item("events", i, m)))
        .collect::<Result<Vec<_>, _>>()?;
    let kept = key.as_ref().map(Idempotency::key);
    let recording = api
        .app
        .record_events_once(events, kept, |r| answer(r, 0, 0), now);
    let done = match recording.await {
        Ok(Ok(done)) => done,
        Ok(Err(seen)) => return key.expect("only a key is replayed").replay(seen),
        Err(EventsError::NoLead { index, who }) => {
            let why = format!("lead: no lead `{who}`; POST it to /leads first");
            return Err(ApiError::item("events", index, why));
        }
        Err(EventsError::Store(e)) => return Err(api.write_failed(e)),
    };
    api.app.health.write_ok();
    after_rules(&api, &done);
    let body = answer(done.recorded, done.report.queued, done.report.moves);
    // After a failure the kept answer stays the first one: the next pass runs the rules.
    if done.failures.is_empty()
        && let Some(k) = &key
    {
        k.revise(&api.app.store, &body).await;
    }
    Ok(json_text(body))
}

/// Logs what went wrong in the rules after events were stored: the events stay stored
/// (and are acknowledged), and the next pass runs these rules again.
pub(super) fn after_rules(api: &Api, done: &EventsRecorded) {
    done.report.log_errors();
    for (lead, e) in &done.failures {
        tracing::error!(lead = lead.0, error = %e, "rules after an event failed; the next pass runs them");
        api.note_write_failure(e);
    }
}
