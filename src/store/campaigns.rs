//! Campaign bookkeeping: when each campaign was first seen, each firing's fate, and
//! the emails a firing queues.

use super::{Result, StoreError};
use crate::domain::{LeadId, TemplateName};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Where a firing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringState {
    Running,
    Done,
    Skipped,
}

impl FiringState {
    pub fn as_str(self) -> &'static str {
        match self {
            FiringState::Running => "running",
            FiringState::Done => "done",
            FiringState::Skipped => "skipped",
        }
    }

    /// The state of its stored name.
    pub fn parse(s: &str) -> Result<FiringState> {
        [
            FiringState::Running,
            FiringState::Done,
            FiringState::Skipped,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| StoreError::corrupt("firing state", s, "not a firing state"))
    }
}

/// A recorded firing.
#[derive(Debug, Clone)]
pub struct Firing {
    pub campaign: String,
    pub key: String,
    pub scheduled_at: DateTime<Utc>,
    pub state: FiringState,
    pub audience: i64,
    pub queued: i64,
    pub note: Option<String>,
}

operations! {
    /// When `campaign` was first loaded, recording `now` if it never was.
    fn campaign_first_seen(&self, campaign: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>>;

    /// When `campaign` was first loaded, if it ever was (reads only).
    fn campaign_seen(&self, campaign: &str) -> Result<Option<DateTime<Utc>>>;

    /// The firing of `campaign` under `key`, if recorded.
    fn firing(&self, campaign: &str, key: &str) -> Result<Option<Firing>>;

    /// The latest recorded firing of `campaign`, by scheduled time.
    fn last_firing(&self, campaign: &str) -> Result<Option<Firing>>;

    /// Claims a firing: `true` if this caller records it now (new) or resumes it (left
    /// `running` by a crash); `false` if it is done or skipped.
    fn begin_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records how a firing ended; `queued` is recounted from the outbox, so a resumed
    /// firing counts the rows of its earlier runs too.
    #[allow(clippy::too_many_arguments)]
    fn finish_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        state: FiringState,
        audience: i64,
        queued: i64,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Leads that already have an outbox row for (template, key).
    fn leads_with_key(&self, template: &str, key: &str) -> Result<HashSet<LeadId>>;

    /// Queues a campaign's email for each (lead, stage, send time); the dedupe key
    /// makes it once per lead and key however often a firing is resumed. Returns the
    /// rows inserted.
    fn enqueue_campaign(
        &self,
        campaign: &str,
        template: &TemplateName,
        key: &str,
        rows: &[(LeadId, String, DateTime<Utc>)],
        requested_at: DateTime<Utc>,
    ) -> Result<u64>;
}
