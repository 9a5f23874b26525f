//! Events as they arrive (CSV, the API, tracking links), and the `Idempotency-Key`s
//! that make a repeated API request answer as the first did without storing twice.

use super::{LeadUpsert, Result, UpsertResult};
use crate::domain::{Event, LeadId, StageId};
use chrono::{DateTime, Utc};

/// How many events a batch recorded, and how many it skipped as already recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub recorded: usize,
    pub duplicates: usize,
}

/// How long a request's answer is kept for its `Idempotency-Key`.
pub const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::hours(24);

/// A request's `Idempotency-Key`: the endpoint, the key and the hash of the body.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub endpoint: String,
    pub key: String,
    pub hash: String,
}

/// What the store knows of an idempotency key seen within [`IDEMPOTENCY_TTL`] (a key
/// not seen is no replay: the work is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Seen with the same body: answer this again, record nothing.
    Same { status: u16, response: String },
    /// Seen with another body.
    Conflict,
}

operations! {
    /// Records events; returns how many were stored.
    fn insert_events(&self, events: &[(LeadId, Event)], now: DateTime<Utc>) -> Result<usize>;

    /// Records events, each with its optional id: an id already recorded for its lead
    /// (or earlier in the same batch) is skipped and counted as a duplicate.
    fn record_events(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        now: DateTime<Utc>,
    ) -> Result<Recorded>;

    /// Records an open or a click unless the same one (lead, kind and props: what
    /// its token names) was recorded within `window` before `now`. Returns whether it
    /// was recorded; a repeat records nothing.
    fn record_tracking(
        &self,
        lead: LeadId,
        event: &Event,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// [`Store::upsert_leads`](super::Store::upsert_leads) (new leads only take a
    /// stage) under an optional `Idempotency-Key`, in one transaction: a key seen
    /// within [`IDEMPOTENCY_TTL`] stores nothing and gives back what it knows
    /// (`Err`); otherwise the leads are stored and `answer`'s
    /// text for them is kept under the key, both or neither. Returns that text.
    fn upsert_leads_once(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(&[UpsertResult]) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<String, Replay>>;

    /// [`Store::record_events`](super::Store::record_events) under an optional
    /// `Idempotency-Key`, as [`Store::upsert_leads_once`](super::Store::upsert_leads_once)
    /// does: `answer`'s text is kept under the key with the events, both or neither.
    fn record_events_once(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(Recorded) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<Recorded, Replay>>;

    /// Updates the answer kept for an idempotency key (a request's final answer, once
    /// known after its own transaction).
    fn idempotency_update(&self, k: &IdempotencyKey, status: u16, response: &str) -> Result<()>;
}

#[cfg(test)]
mod tests;
