//! The SQLite backend: a pool of connections to one file (WAL, `synchronous = FULL`,
//! foreign keys on, a 10 s busy timeout), its migrations, and the SQL of each concern
//! of the [`Store`](crate::store::Store) interface, one file per concern.

mod apply;
mod campaigns;
mod consent;
pub(super) mod copy;
pub(super) mod error;
mod ingest;
mod leads;
mod leases;
mod load;
mod migrations;
mod operator;
mod outbox;
mod passes;
mod raw;
mod report;
mod settings;
mod timeline;
mod tx;
mod upsert;

use super::{Result, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tx::WriteTx;

/// A SQLite database; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub(super) struct SqliteStore {
    pool: SqlitePool,
    /// The database file (`None` in memory), for the health probe.
    file: Option<PathBuf>,
}

/// The file of a `sqlite://FILE[?…]` URL; `None` for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.contains(":memory:"))
        .map(PathBuf::from)
}

/// Milliseconds since the epoch, the stored form of an instant.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of a stored millisecond count.
fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Values bound in one `IN (…)` list at most: a longer list is read in chunks, well
/// under SQLite's limit on bound variables.
const IN_LIST: usize = 500;

/// `?, ?, …`: the placeholders of a list bound one value each.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`. Does not migrate.
    pub(super) async fn open(url: &str) -> Result<SqliteStore> {
        let open_err = |source| StoreError::Open {
            url: url.to_string(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before embudo answers that it is stored.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let file = sqlite_file(url);
        if let Some(file) = &file {
            prepare_file(file, url.contains("mode=ro"));
        }
        let pool = pool_options(url.contains(":memory:"))
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(SqliteStore { pool, file })
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`): every read-then-write goes
    /// through here, so it holds the write lock from its first read.
    async fn begin_write(&self) -> Result<WriteTx> {
        WriteTx::begin(&self.pool).await
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the database's folder, and a new database file readable by its owner only:
/// it holds personal data and, unless the environment gives one, the link-signing key
/// (SQLite gives its -wal and -shm files the same permissions).
fn prepare_file(file: &std::path::Path, read_only: bool) {
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    #[cfg(unix)]
    if !read_only {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file);
    }
    #[cfg(not(unix))]
    let _ = read_only;
}

/// An in-memory database lives in its one connection, kept for ever; a file gets a
/// few connections, recycled now and then.
fn pool_options(in_memory: bool) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(if in_memory { 1 } else { 4 })
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(if in_memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if in_memory {
            None
        } else {
            Some(Duration::from_secs(1800))
        })
        // After a disk-full or I/O error, connections are closed as they come
        // back rather than reused, until a write commits again.
        .after_release(|_conn, _meta| Box::pin(async { Ok(error::connections_trusted()) }))
}
