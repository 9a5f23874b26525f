//! The demo's sample data. `seed:` in embudo.yaml names a leads CSV and an events CSV
//! that `embudo run` imports once, into a database that has never had a lead, so the
//! first command on a fresh clone shows the funnel at work. A funnel of one's own
//! leaves the key out.

use crate::funnel::config::Config;
use crate::ingest::csv::{ImportError, ImportReport, import_reader};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::path::Path;

/// The settings row that records that the seed was considered: a database is seeded at
/// most once, even if its leads are later forgotten.
const MARKER: &str = "seed_considered";

/// What was imported.
#[derive(Debug, Default)]
pub struct Seeded {
    pub leads: Option<ImportReport>,
    pub events: Option<ImportReport>,
}

/// Imports the `seed:` files at `now` if the database has never had a lead and was
/// never seeded; `None` when there was nothing to do.
pub async fn seed_new_database(
    store: &Store,
    cfg: &Config,
    now: DateTime<Utc>,
) -> Result<Option<Seeded>, ImportError> {
    if cfg.seed.leads.is_none() && cfg.seed.events.is_none() {
        return Ok(None);
    }
    if store.setting(MARKER).await?.is_some() {
        return Ok(None);
    }
    let empty = store.lead_count().await? == 0;
    store.setting_or_insert(MARKER, &now.to_rfc3339()).await?;
    if !empty {
        return Ok(None);
    }
    let mut seeded = Seeded::default();
    if let Some(p) = &cfg.seed.leads {
        seeded.leads = Some(import(store, cfg, p, now).await?);
    }
    if let Some(p) = &cfg.seed.events {
        seeded.events = Some(import(store, cfg, p, now).await?);
    }
    Ok(Some(seeded))
}

async fn import(
    store: &Store,
    cfg: &Config,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let shown = cfg.display_path(path);
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
        path: shown.clone(),
        source,
    })?;
    let report = import_reader(store, cfg, &shown, file, false, now, |_| {}).await?;
    for bad in &report.bad {
        tracing::warn!(file = %shown, line = bad.line, problem = %bad.message, "a seed row was skipped");
    }
    Ok(report)
}
