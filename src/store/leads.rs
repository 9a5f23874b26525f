//! Leads: their upsert from CSV rows and the API, their loading with the history their
//! rules read, and the commit of what an evaluation changed.

pub(super) mod plan;
#[cfg(test)]
mod tests;

use super::{LeadChanges, LoadedLead, Result};
use crate::domain::{EmailAddress, LeadId, StageId, ValueMap};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A lead as it arrives from a CSV row or the HTTP API.
#[derive(Debug, Clone)]
pub struct LeadUpsert {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub stage: Option<StageId>,
    pub tags: Vec<String>,
    pub locale: Option<String>,
    pub timezone: Option<Tz>,
    pub created_at: Option<DateTime<Utc>>,
    pub attrs: ValueMap,
}

/// One entry of a lead's stage history: its first stage (`from` is `None`), or a move.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub from: Option<StageId>,
    pub to: StageId,
    pub at: DateTime<Utc>,
    /// `import`, `import --update-stage`, `rule:NAME`, …
    pub cause: String,
}

/// Whether an upsert created its lead or updated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertResult {
    Created(LeadId),
    Updated(LeadId),
}

impl UpsertResult {
    pub fn id(&self) -> LeadId {
        match self {
            UpsertResult::Created(id) | UpsertResult::Updated(id) => *id,
        }
    }
}

operations! {
    /// Inserts or updates a lead by email, with the contract's merge rules: name, locale
    /// and timezone overwrite when given, tags union, attrs merge, and the stage is set
    /// only for a new lead unless `update_stage` (which records the move).
    fn upsert_leads(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        update_stage: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertResult>>;

    /// How many leads the database holds.
    fn lead_count(&self) -> Result<u64>;

    /// Finds a lead by its email or its id, as the CLI names one.
    fn find_lead_id(&self, who: &str) -> Result<Option<LeadId>>;

    /// The lead with this address, if any.
    fn lead_id_by_email(&self, email: &EmailAddress) -> Result<Option<LeadId>>;

    /// [`Store::find_lead_id`](super::Store::find_lead_id) for each of `who`, in order,
    /// with a query or two for them all (an event batch names its leads at once).
    fn find_lead_ids(&self, who: &[String]) -> Result<Vec<Option<LeadId>>>;

    /// The lead of each address, in the order given (`None` where there is none), in
    /// one look-up: how an events file finds its leads a batch at a time.
    fn lead_ids_by_email(&self, emails: &[EmailAddress]) -> Result<Vec<Option<LeadId>>>;

    /// Up to `limit` leads with id > `after`, in id order, with the events and sends at
    /// or before `now`: one page of a tick's stream, so memory stays flat.
    fn load_page(&self, after: i64, limit: i64, now: DateTime<Utc>) -> Result<Vec<LoadedLead>>;

    /// One lead with its history as of `now`.
    fn load_lead(&self, id: LeadId, now: DateTime<Utc>) -> Result<Option<LoadedLead>>;

    /// These leads (each once, in id order; ids of no lead are left out) with their
    /// history as of `now`, loaded as a page is: a few queries for them all.
    fn load_leads(&self, ids: &[LeadId], now: DateTime<Utc>) -> Result<Vec<LoadedLead>>;

    /// Commits the changes of several leads (a page of a pass) in one transaction:
    /// each lead's changes stay all-or-nothing, and the page pays for one commit and a
    /// few multi-row statements, not several statements per lead.
    fn apply_all(&self, changes: &[LeadChanges], now: DateTime<Utc>) -> Result<usize>;

    /// The stage history of a lead, oldest first.
    fn stage_history(&self, id: LeadId) -> Result<Vec<HistoryEntry>>;

    /// Stages that leads are in, with how many: a reload may not remove them.
    fn stages_in_use(&self) -> Result<Vec<(String, i64)>>;
}
