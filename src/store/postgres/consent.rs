//! PostgreSQL: the `consent` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn lead_brief(&self, id: LeadId) -> Result<Option<LeadBrief>> {
        Err(super::not_yet("lead_brief"))
    }

    pub(in crate::store) async fn lead_briefs(
        &self,
        ids: &[LeadId],
    ) -> Result<Vec<(LeadId, LeadBrief)>> {
        Err(super::not_yet("lead_briefs"))
    }

    pub(in crate::store) async fn suppression(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<Suppression>> {
        Err(super::not_yet("suppression"))
    }

    pub(in crate::store) async fn suppressions(
        &self,
        emails: &[EmailAddress],
    ) -> Result<Vec<(EmailAddress, Suppression)>> {
        Err(super::not_yet("suppressions"))
    }

    pub(in crate::store) async fn suppress(
        &self,
        email: &EmailAddress,
        reason: Suppression,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<LeadId>> {
        Err(super::not_yet("suppress"))
    }

    pub(in crate::store) async fn forget(
        &self,
        id: LeadId,
        at: DateTime<Utc>,
    ) -> Result<Option<EmailAddress>> {
        Err(super::not_yet("forget"))
    }
}
