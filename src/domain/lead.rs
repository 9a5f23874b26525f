//! A lead as rules see it: its state, and the history its rules read.

use super::{EmailAddress, LeadId, StageId, TemplateName, ValueMap};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// The mutable state of one lead; rules read it and their actions change it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub id: LeadId,
    pub email: EmailAddress,
    pub name: Option<String>,
    pub stage: StageId,
    pub tags: BTreeSet<String>,
    pub attrs: ValueMap,
    pub locale: Option<String>,
    pub timezone: Option<Tz>,
    pub created_at: DateTime<Utc>,
    pub stage_entered_at: DateTime<Utc>,
    /// Set when the person unsubscribed; marketing email is never sent after it.
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

/// Something that happened to a lead (`page_view`, `quote_requested`, `purchase`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub at: DateTime<Utc>,
    pub props: ValueMap,
}

/// An outbox row as rules count it: requested by a rule (or campaign) at `requested_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRecord {
    pub template: TemplateName,
    /// Empty for `send(template)`: once per lead and template, ever.
    pub key: String,
    pub requested_at: DateTime<Utc>,
}
