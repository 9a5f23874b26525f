//! What happened in a window of time, read back for `simulate`: outbox rows with
//! their outcome, stage moves, and the events that make rules react.

use super::{OutboxRow, Result};
use crate::domain::LeadId;
use chrono::{DateTime, Utc};
use std::path::Path;

/// One stage move.
#[derive(Debug, Clone)]
pub struct MoveRow {
    pub lead: LeadId,
    pub email: String,
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
    pub cause: String,
}

operations! {
    /// Outbox rows requested or ended at or after `since`, oldest request first.
    fn sends_since(&self, since: DateTime<Utc>) -> Result<Vec<OutboxRow>>;

    /// Stage moves (not first entries) at or after `since`, oldest first.
    fn moves_since(&self, since: DateTime<Utc>) -> Result<Vec<MoveRow>>;

    /// Every lead's current stage, by id.
    fn stages(&self) -> Result<Vec<(LeadId, String)>>;

    /// Each (time, lead) with an event in `(after, until]`: the moments the rules react.
    fn event_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, LeadId)>>;

    /// A consistent copy of the whole database into a new file, taken while others may
    /// be writing: simulate's scratch copy.
    fn copy_into(&self, path: &Path) -> Result<()>;
}
