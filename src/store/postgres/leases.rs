//! PostgreSQL: the `lease` concern of the store interface (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::domain::*;
use crate::store::*;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashSet;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        Err(super::not_yet("try_lock"))
    }

    pub(in crate::store) async fn lock_holder(
        &self,
        name: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>> {
        Err(super::not_yet("lock_holder"))
    }

    pub(in crate::store) async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        Err(super::not_yet("unlock"))
    }
}
