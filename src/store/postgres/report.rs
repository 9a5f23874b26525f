//! PostgreSQL: the `report` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn stage_now(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, TimeDelta)>> {
        Err(super::not_yet("stage_now"))
    }

    pub(in crate::store) async fn stage_stays(&self) -> Result<Vec<(String, i64, TimeDelta)>> {
        Err(super::not_yet("stage_stays"))
    }

    pub(in crate::store) async fn reached(&self, stage: &str) -> Result<i64> {
        Err(super::not_yet("reached"))
    }

    pub(in crate::store) async fn converted(&self, from: &str, to: &str) -> Result<i64> {
        Err(super::not_yet("converted"))
    }

    pub(in crate::store) async fn sends_by_template(&self) -> Result<Vec<(String, String, i64)>> {
        Err(super::not_yet("sends_by_template"))
    }

    pub(in crate::store) async fn engagement_by_template(
        &self,
    ) -> Result<Vec<(String, String, i64)>> {
        Err(super::not_yet("engagement_by_template"))
    }

    pub(in crate::store) async fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>> {
        Err(super::not_yet("held"))
    }
}
