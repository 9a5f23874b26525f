//! PostgreSQL: the `leads` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn upsert_leads(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        update_stage: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertResult>> {
        Err(super::not_yet("upsert_leads"))
    }

    pub(in crate::store) async fn lead_count(&self) -> Result<u64> {
        Err(super::not_yet("lead_count"))
    }

    pub(in crate::store) async fn find_lead_id(&self, who: &str) -> Result<Option<LeadId>> {
        Err(super::not_yet("find_lead_id"))
    }

    pub(in crate::store) async fn lead_id_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<LeadId>> {
        Err(super::not_yet("lead_id_by_email"))
    }

    pub(in crate::store) async fn find_lead_ids(
        &self,
        who: &[String],
    ) -> Result<Vec<Option<LeadId>>> {
        Err(super::not_yet("find_lead_ids"))
    }

    pub(in crate::store) async fn lead_ids_by_email(
        &self,
        emails: &[EmailAddress],
    ) -> Result<Vec<Option<LeadId>>> {
        Err(super::not_yet("lead_ids_by_email"))
    }

    pub(in crate::store) async fn load_page(
        &self,
        after: i64,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        Err(super::not_yet("load_page"))
    }

    pub(in crate::store) async fn load_lead(
        &self,
        id: LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<LoadedLead>> {
        Err(super::not_yet("load_lead"))
    }

    pub(in crate::store) async fn load_leads(
        &self,
        ids: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        Err(super::not_yet("load_leads"))
    }

    pub(in crate::store) async fn apply_all(
        &self,
        changes: &[LeadChanges],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        Err(super::not_yet("apply_all"))
    }

    pub(in crate::store) async fn stage_history(&self, id: LeadId) -> Result<Vec<HistoryEntry>> {
        Err(super::not_yet("stage_history"))
    }

    pub(in crate::store) async fn stages_in_use(&self) -> Result<Vec<(String, i64)>> {
        Err(super::not_yet("stages_in_use"))
    }
}
