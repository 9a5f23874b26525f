//! The outbox: one row per email asked for, claimed with a lease, sent outside any
//! transaction, then recorded as sent, held, retried or ended.

use super::{Result, StoreError};
use crate::domain::{EmailAddress, LeadId, StageId, TemplateName};
use chrono::{DateTime, TimeDelta, Utc};
use std::fmt;

/// The states of an outbox row (see the contract's "Sending").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutboxState {
    Queued,
    Sending,
    Sent,
    Retry,
    Held,
    Failed,
    Stale,
    Expired,
    /// The lead unsubscribed or the address is suppressed (bounced, forgotten).
    Suppressed,
    /// Cancelled by the operator (`embudo outbox cancel`).
    Cancelled,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Retry => "retry",
            OutboxState::Held => "held",
            OutboxState::Failed => "failed",
            OutboxState::Stale => "stale",
            OutboxState::Expired => "expired",
            OutboxState::Suppressed => "suppressed",
            OutboxState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        OutboxState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub const ALL: [OutboxState; 10] = [
        OutboxState::Queued,
        OutboxState::Sending,
        OutboxState::Sent,
        OutboxState::Retry,
        OutboxState::Held,
        OutboxState::Failed,
        OutboxState::Stale,
        OutboxState::Expired,
        OutboxState::Suppressed,
        OutboxState::Cancelled,
    ];

    /// Whether a row in this state may still go (it has not ended).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            OutboxState::Queued | OutboxState::Retry | OutboxState::Held | OutboxState::Sending
        )
    }

    /// The state of a stored name; anything else is a corrupt row.
    pub(crate) fn stored(s: &str) -> Result<OutboxState> {
        OutboxState::parse(s)
            .ok_or_else(|| StoreError::corrupt("outbox state", s, "not an outbox state"))
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who asked for an outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A rule, by name.
    Rule(String),
    /// A campaign's firing, by the campaign's name.
    Campaign(String),
}

impl fmt::Display for Origin {
    /// Written as stage_history's `cause` is (`rule:NAME`, `campaign:NAME`), so both
    /// read alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Rule(r) => write!(f, "rule:{r}"),
            Origin::Campaign(c) => write!(f, "campaign:{c}"),
        }
    }
}

/// An outbox row as it is read back: by an operator (`outbox list`), a lead's page,
/// or a simulation's timeline.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub lead: LeadId,
    pub email: EmailAddress,
    pub template: TemplateName,
    /// Empty for `send(template)`: once per lead and template, ever.
    pub key: String,
    pub state: OutboxState,
    /// `None` only for a row written by hand.
    pub origin: Option<Origin>,
    pub requested_at: DateTime<Utc>,
    /// When a pending row is next due (0 ms: at once, after an operator's retry).
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When it reached its end state (sent, stale, expired, failed, …); `None` while
    /// pending.
    pub ended_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    /// Why it ended as it did, or why it is waiting.
    pub reason: Option<String>,
    pub message_id: Option<String>,
}

impl OutboxRow {
    /// For a pending row, its next attempt or release; for an ended row, when it ended.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        if self.state.is_pending() {
            Some(self.next_attempt_at)
        } else {
            self.ended_at
        }
    }
}

/// A row to deliver: claimed by the sender (its state `sending`, leased), or still
/// waiting (`pending_of`), as the policy judges it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub lead_id: LeadId,
    pub template: TemplateName,
    pub key: String,
    /// The lead's stage when the row was asked for: if it moved on, the row is stale.
    pub stage: StageId,
    pub campaign: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// An operator's `outbox retry`: the expiry clock restarts here.
    pub released_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    /// Kept across retries, so a resend after a crash carries the same Message-ID.
    pub message_id: Option<String>,
}

/// Where a claimed row goes when the sender decided not to send it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsent {
    /// The policy holds it until `until`, for `reason`; a hold is not an attempt.
    Held {
        id: i64,
        until: DateTime<Utc>,
        reason: String,
    },
    /// It ends here, unsent, in `state` (failed, stale, expired, suppressed) at `at`.
    Ended {
        id: i64,
        state: OutboxState,
        reason: String,
        at: DateTime<Utc>,
    },
}

/// Which rows an operator command acts on.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub states: Vec<OutboxState>,
    pub template: Option<String>,
    pub lead: Option<LeadId>,
    pub campaign: Option<String>,
}

operations! {
    /// Claims up to `limit` rows due at `now`, leasing them until `now + lease`: first
    /// rows left `sending` by a crashed sender whose lease has run out, then queued, held
    /// or retry rows whose time has come, oldest first. Rows of `paused_campaigns` are
    /// left alone. The cost of a claim is its batch's, however long the queue.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: TimeDelta,
        paused_campaigns: &[String],
    ) -> Result<Vec<Claimed>>;

    /// A lead's rows still to go (queued, retry, held), as the sender would claim them.
    fn pending_of(&self, lead: LeadId) -> Result<Vec<Claimed>>;

    /// After a crash: rows left `sending` by a sender that is gone go back to `retry`
    /// at once, keeping their Message-ID. Only the one sender of a database may call it.
    fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Rows left `sending` whose own claim has run out go back to `retry`, keeping their
    /// Message-ID; rows still within their claim are left to the sender that holds them.
    fn recover_expired_claims(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Claimed rows that a round did not start (sending paused, the daemon stopping)
    /// go back to waiting as they were, with the attempt they did not make undone.
    fn unclaim(&self, ids: &[i64]) -> Result<u64>;

    /// Records where claimed rows the sender decided not to send go (held, or ended),
    /// all in one transaction: a batch the policy holds costs one write, not one a row.
    fn set_aside(&self, rows: &[Unsent]) -> Result<()>;

    /// Emails sent since `since`, per template (the daily capacity counts marketing).
    fn sent_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>>;

    /// These leads' emails sent since `since`: (lead, row id, template, sent_at).
    fn leads_sent_since(
        &self,
        leads: &[LeadId],
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, i64, String, DateTime<Utc>)>>;

    /// Records a row as sent at `sent_at` with the Message-ID it went with (a row that
    /// already has one keeps it).
    fn mark_sent(&self, id: i64, sent_at: DateTime<Utc>, message_id: &str) -> Result<()>;

    /// Puts a row back for another attempt at `at`; an attempt that was made records
    /// the Message-ID it went with, for the next attempt to repeat.
    fn mark_retry(
        &self,
        id: i64,
        at: DateTime<Utc>,
        error: &str,
        message_id: Option<&str>,
    ) -> Result<()>;

    /// Ends a row without sending it (failed, stale, expired), with the reason.
    fn mark_final(
        &self,
        id: i64,
        state: OutboxState,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// The earliest instant after `after` at which a queued, held or retry row falls
    /// due: where a simulation's sender wakes between evaluation passes.
    fn next_due_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>>;

    /// Rows per state (the state's name), for summaries, metrics and tests.
    fn outbox_counts(&self) -> Result<Vec<(String, i64)>>;

    /// A lead's outbox rows, oldest request first.
    fn outbox_of(&self, lead: LeadId) -> Result<Vec<OutboxRow>>;

    /// Templates of rows still to be sent: a reload may not remove them.
    fn pending_templates(&self) -> Result<Vec<(String, i64)>>;

    /// Rows matching `filter`, newest request first, at most `limit`.
    fn outbox_list(&self, filter: &OutboxFilter, limit: i64) -> Result<Vec<OutboxRow>>;

    /// Puts matching rows that did not go (failed, expired, stale, held, retry,
    /// cancelled) back in the queue at `now`, keeping their Message-IDs; the sending
    /// policy and consent still apply. Sent and suppressed rows are never touched.
    fn outbox_retry(&self, filter: &OutboxFilter, now: DateTime<Utc>) -> Result<u64>;

    /// Cancels matching rows that have not gone yet (queued, retry, held).
    fn outbox_cancel(&self, filter: &OutboxFilter, now: DateTime<Utc>) -> Result<u64>;
}

#[cfg(test)]
mod tests;
