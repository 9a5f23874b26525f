//! PostgreSQL: the `timeline` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn sends_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>> {
        Err(super::not_yet("sends_since"))
    }

    pub(in crate::store) async fn moves_since(&self, since: DateTime<Utc>) -> Result<Vec<MoveRow>> {
        Err(super::not_yet("moves_since"))
    }

    pub(in crate::store) async fn stages(&self) -> Result<Vec<(LeadId, String)>> {
        Err(super::not_yet("stages"))
    }

    pub(in crate::store) async fn event_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, LeadId)>> {
        Err(super::not_yet("event_times"))
    }
}
