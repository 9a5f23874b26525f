//! A lead as one evaluation sees it, and what that evaluation changes: the types
//! shared by the rules (which read and produce them) and the store (which loads and
//! commits them), so neither depends on the other for them.

use super::{Event, Lead, SendRecord, StageId, TemplateName};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The most recent events of each kind loaded for an evaluation. A lead whose shop
/// sends thousands of page views costs no more to evaluate than one with a thousand:
/// the older ones are only counted (see [`OlderEvents`]).
pub const EVENTS_PER_KIND: i64 = 1000;

/// A lead with the history its rules read, as of one clock.
#[derive(Debug, Clone)]
pub struct LoadedLead {
    pub lead: Lead,
    /// The lead's events up to the clock, at most [`EVENTS_PER_KIND`] of each kind
    /// (the most recent), oldest first.
    pub events: Vec<Event>,
    /// Per kind, the events older than those loaded.
    pub older: HashMap<String, OlderEvents>,
    pub sends: Vec<SendRecord>,
}

/// Events of one kind older than the [`EVENTS_PER_KIND`] loaded: how many, and the
/// time of the first, so `count(kind)` stays exact and `count(kind, within)` is exact
/// whenever its window takes in all of them or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OlderEvents {
    pub count: u64,
    pub first_at: DateTime<Utc>,
}

/// An outbox row a rule asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend {
    pub template: TemplateName,
    pub key: String,
    /// The lead's stage when the rule asked.
    pub stage: StageId,
    pub rule: String,
}

/// Everything one evaluation changed for one lead; committed in one transaction.
#[derive(Debug, Clone)]
pub struct LeadChanges {
    pub before: Lead,
    pub after: Lead,
    /// (from, to, cause) in the order they happened.
    pub moves: Vec<(StageId, StageId, String)>,
    pub sends: Vec<NewSend>,
}

impl LeadChanges {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.sends.is_empty() && self.before == self.after
    }
}
