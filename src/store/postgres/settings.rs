//! PostgreSQL: the `settings` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn probe_write(&self, now: DateTime<Utc>) -> Result<()> {
        Err(super::not_yet("probe_write"))
    }

    pub(in crate::store) async fn setting(&self, key: &str) -> Result<Option<String>> {
        Err(super::not_yet("setting"))
    }

    pub(in crate::store) async fn setting_or_insert(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String> {
        Err(super::not_yet("setting_or_insert"))
    }

    pub(in crate::store) async fn set_paused(
        &self,
        campaign: Option<&str>,
        paused: bool,
    ) -> Result<()> {
        Err(super::not_yet("set_paused"))
    }

    pub(in crate::store) async fn paused(&self) -> Result<(bool, Vec<String>)> {
        Err(super::not_yet("paused"))
    }
}
