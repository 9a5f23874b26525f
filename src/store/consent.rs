//! Consent: the suppression list, and what the sender must know of a lead before it
//! sends anything.

use super::{Result, StoreError};
use crate::domain::{EmailAddress, LeadId, StageId};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Why an address must not be mailed. Ordered: a stronger reason replaces a weaker one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suppression {
    /// Unsubscribed: no marketing email; receipts still go.
    Unsubscribed,
    /// A hard bounce: the address does not exist; nothing goes.
    Bounced,
    /// Erased on request (`forget`): nothing goes.
    Forgotten,
}

impl Suppression {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Unsubscribed => "unsubscribed",
            Suppression::Bounced => "bounced",
            Suppression::Forgotten => "forgotten",
        }
    }

    /// The reason of its stored name.
    pub fn parse(s: &str) -> Result<Suppression> {
        [
            Suppression::Unsubscribed,
            Suppression::Bounced,
            Suppression::Forgotten,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| StoreError::corrupt("suppression reason", s, "not a reason"))
    }

    /// Whether receipts are blocked too.
    pub fn blocks_receipts(self) -> bool {
        self != Suppression::Unsubscribed
    }
}

/// What the sender needs to know of a lead before sending it anything.
#[derive(Debug, Clone)]
pub struct LeadBrief {
    pub email: EmailAddress,
    pub stage: StageId,
    /// The lead's own time zone; `None` when it has none (or an unknown one), and the
    /// funnel's default applies.
    pub timezone: Option<Tz>,
    pub unsubscribed: bool,
}

operations! {
    /// What the sender needs of a lead; `None` if there is no such lead.
    fn lead_brief(&self, id: LeadId) -> Result<Option<LeadBrief>>;

    /// What the sender needs of each of these leads that exists (a batch's, read at
    /// once).
    fn lead_briefs(&self, ids: &[LeadId]) -> Result<Vec<(LeadId, LeadBrief)>>;

    /// The suppression of `email`, if any.
    fn suppression(&self, email: &EmailAddress) -> Result<Option<Suppression>>;

    /// The suppressions of those of these addresses that have one.
    fn suppressions(&self, emails: &[EmailAddress]) -> Result<Vec<(EmailAddress, Suppression)>>;

    /// Adds `email` to the suppression list (a stronger reason replaces a weaker one)
    /// and marks its lead unsubscribed. Returns the lead, if there is one.
    fn suppress(
        &self,
        email: &EmailAddress,
        reason: Suppression,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<LeadId>>;

    /// Erases a lead and everything about it; only the suppression (a hash) remains.
    /// Returns the address erased, if there was such a lead.
    fn forget(&self, id: LeadId, at: DateTime<Utc>) -> Result<Option<EmailAddress>>;
}
