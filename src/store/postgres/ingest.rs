//! PostgreSQL: the `ingest` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn insert_events(
        &self,
        events: &[(LeadId, Event)],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        Err(super::not_yet("insert_events"))
    }

    pub(in crate::store) async fn record_events(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        Err(super::not_yet("record_events"))
    }

    pub(in crate::store) async fn record_tracking(
        &self,
        lead: LeadId,
        event: &Event,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Err(super::not_yet("record_tracking"))
    }

    pub(in crate::store) async fn upsert_leads_once(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(&[UpsertResult]) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<String, Replay>> {
        Err(super::not_yet("upsert_leads_once"))
    }

    pub(in crate::store) async fn record_events_once(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(Recorded) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<Recorded, Replay>> {
        Err(super::not_yet("record_events_once"))
    }

    pub(in crate::store) async fn idempotency_update(
        &self,
        k: &IdempotencyKey,
        status: u16,
        response: &str,
    ) -> Result<()> {
        Err(super::not_yet("idempotency_update"))
    }
}
