//! PostgreSQL: the `campaigns` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn campaign_first_seen(
        &self,
        campaign: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        Err(super::not_yet("campaign_first_seen"))
    }

    pub(in crate::store) async fn campaign_seen(
        &self,
        campaign: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        Err(super::not_yet("campaign_seen"))
    }

    pub(in crate::store) async fn firing(
        &self,
        campaign: &str,
        key: &str,
    ) -> Result<Option<Firing>> {
        Err(super::not_yet("firing"))
    }

    pub(in crate::store) async fn last_firing(&self, campaign: &str) -> Result<Option<Firing>> {
        Err(super::not_yet("last_firing"))
    }

    pub(in crate::store) async fn begin_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Err(super::not_yet("begin_firing"))
    }

    pub(in crate::store) async fn finish_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        state: FiringState,
        audience: i64,
        queued: i64,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        Err(super::not_yet("finish_firing"))
    }

    pub(in crate::store) async fn leads_with_key(
        &self,
        template: &str,
        key: &str,
    ) -> Result<HashSet<LeadId>> {
        Err(super::not_yet("leads_with_key"))
    }

    pub(in crate::store) async fn enqueue_campaign(
        &self,
        campaign: &str,
        template: &TemplateName,
        key: &str,
        rows: &[(LeadId, String, DateTime<Utc>)],
        requested_at: DateTime<Utc>,
    ) -> Result<u64> {
        Err(super::not_yet("enqueue_campaign"))
    }
}
