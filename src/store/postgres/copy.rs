//! PostgreSQL: copying the database (scaffold: to be written).
#![allow(unused_imports, unused_variables)]
use super::PgStore;
use crate::store::*;
use std::path::Path;

impl PgStore {
    pub(in crate::store) async fn copy_into(&self, path: &Path) -> Result<()> {
        Err(super::not_yet("copy_into"))
    }
}
