//! PostgreSQL: the `outbox` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: TimeDelta,
        paused_campaigns: &[String],
    ) -> Result<Vec<Claimed>> {
        Err(super::not_yet("claim_due"))
    }

    pub(in crate::store) async fn pending_of(&self, lead: LeadId) -> Result<Vec<Claimed>> {
        Err(super::not_yet("pending_of"))
    }

    pub(in crate::store) async fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<u64> {
        Err(super::not_yet("recover_in_flight"))
    }

    pub(in crate::store) async fn recover_expired_claims(&self, now: DateTime<Utc>) -> Result<u64> {
        Err(super::not_yet("recover_expired_claims"))
    }

    pub(in crate::store) async fn unclaim(&self, ids: &[i64]) -> Result<u64> {
        Err(super::not_yet("unclaim"))
    }

    pub(in crate::store) async fn set_aside(&self, rows: &[Unsent]) -> Result<()> {
        Err(super::not_yet("set_aside"))
    }

    pub(in crate::store) async fn sent_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        Err(super::not_yet("sent_since"))
    }

    pub(in crate::store) async fn leads_sent_since(
        &self,
        leads: &[LeadId],
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, i64, String, DateTime<Utc>)>> {
        Err(super::not_yet("leads_sent_since"))
    }

    pub(in crate::store) async fn mark_sent(
        &self,
        id: i64,
        sent_at: DateTime<Utc>,
        message_id: &str,
    ) -> Result<()> {
        Err(super::not_yet("mark_sent"))
    }

    pub(in crate::store) async fn mark_retry(
        &self,
        id: i64,
        at: DateTime<Utc>,
        error: &str,
        message_id: Option<&str>,
    ) -> Result<()> {
        Err(super::not_yet("mark_retry"))
    }

    pub(in crate::store) async fn mark_final(
        &self,
        id: i64,
        state: OutboxState,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        Err(super::not_yet("mark_final"))
    }

    pub(in crate::store) async fn next_due_after(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        Err(super::not_yet("next_due_after"))
    }

    pub(in crate::store) async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        Err(super::not_yet("outbox_counts"))
    }

    pub(in crate::store) async fn outbox_of(&self, lead: LeadId) -> Result<Vec<OutboxRow>> {
        Err(super::not_yet("outbox_of"))
    }

    pub(in crate::store) async fn pending_templates(&self) -> Result<Vec<(String, i64)>> {
        Err(super::not_yet("pending_templates"))
    }

    pub(in crate::store) async fn outbox_list(
        &self,
        filter: &OutboxFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        Err(super::not_yet("outbox_list"))
    }

    pub(in crate::store) async fn outbox_retry(
        &self,
        filter: &OutboxFilter,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Err(super::not_yet("outbox_retry"))
    }

    pub(in crate::store) async fn outbox_cancel(
        &self,
        filter: &OutboxFilter,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Err(super::not_yet("outbox_cancel"))
    }
}
