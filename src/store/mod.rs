//! The database: SQLite through sqlx, with runtime queries kept in this module so a
//! PostgreSQL backend is a sibling, not a rewrite.
//!
//! Timestamps are stored as BIGINT milliseconds (UTC); every write is stamped with the
//! caller's clock (`now`), never the database's, so `--now` and simulation work.

mod campaigns;
mod consent;
mod leads;
pub mod lease;
mod outbox;
mod report;
mod timeline;

pub use campaigns::{Firing, FiringState};
pub use consent::{LeadBrief, Suppression};
pub use leads::{
    EVENTS_PER_KIND, IdempotencyKey, LeadChanges, LeadUpsert, LoadedLead, NewSend, OlderEvents,
    Recorded, Replay, UpsertResult,
};
pub(crate) use leads::{idempotency_lookup, idempotency_save, insert_events_in, upsert_leads_in};
pub use outbox::{Claimed, OutboxFilter, OutboxRow, OutboxState};
pub use timeline::{MoveRow, SendRow};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// Errors of the storage layer. SQLite's result code decides the variant (never the
/// message text): SQLITE_FULL is [`StoreError::Full`], SQLITE_READONLY
/// [`StoreError::ReadOnly`], SQLITE_BUSY and SQLITE_LOCKED [`StoreError::Busy`],
/// SQLITE_IOERR (and SQLITE_CANTOPEN, SQLITE_CORRUPT) [`StoreError::Io`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error(
        "database is busy or locked by another process ({0}); retry, or stop the other embudo process"
    )]
    Busy(sqlx::Error),
    #[error("database is read-only ({0}); check the file's permissions and the disk")]
    ReadOnly(sqlx::Error),
    #[error(
        "disk full: the database could not be written ({0}); free space on its disk (writes work again without a restart)"
    )]
    Full(sqlx::Error),
    #[error("I/O error on the database file ({0}); check the disk and the file system")]
    Io(sqlx::Error),
    #[error("database: {0}")]
    Sql(sqlx::Error),
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
    #[error(
        "database schema version {found} is newer than this embudo knows ({known}); upgrade embudo"
    )]
    TooNew { found: i64, known: i64 },
}

/// SQLite's primary result codes that decide how an error is classified.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// The primary SQLite result code of an error, if it came from SQLite.
fn sqlite_code(e: &sqlx::Error) -> Option<i64> {
    let code = e.as_database_error()?.code()?;
    // sqlx gives the extended code; the primary one is its low byte.
    code.parse::<i64>().ok().map(|c| c & 0xff)
}

/// Set when a connection met a disk-full or I/O error: every connection handed back
/// to the pool is then closed instead of kept (its state is suspect: a failed commit
/// can leave a transaction open on it), until a write commits again.
static SUSPECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn suspect(yes: bool) {
    SUSPECT.store(yes, std::sync::atomic::Ordering::SeqCst);
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match sqlite_code(&e) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Busy(e),
            Some(SQLITE_READONLY) => StoreError::ReadOnly(e),
            Some(SQLITE_FULL) => {
                suspect(true);
                StoreError::Full(e)
            }
            Some(SQLITE_IOERR | SQLITE_CANTOPEN | SQLITE_CORRUPT) => {
                suspect(true);
                StoreError::Io(e)
            }
            _ => match &e {
                sqlx::Error::Io(_) => {
                    suspect(true);
                    StoreError::Io(e)
                }
                _ => StoreError::Sql(e),
            },
        }
    }
}

impl StoreError {
    /// What an HTTP client is told: a short cause (`disk full`, `read-only`, `locked`,
    /// `I/O error`, `database error`) and what to do, without the database's own text.
    pub fn public(&self) -> (&'static str, &'static str) {
        match self {
            StoreError::Full(_) => (
                "disk full",
                "the disk holding the database is full; nothing was stored: free space on it and retry (no restart needed)",
            ),
            StoreError::ReadOnly(_) => (
                "read-only",
                "the database cannot be written (read-only file or file system); nothing was stored: fix its permissions or the mount, then retry",
            ),
            StoreError::Busy(_) => (
                "locked",
                "the database stayed locked longer than the write waits (10 s); nothing was stored: retry",
            ),
            StoreError::Io(_) | StoreError::Open { .. } => (
                "I/O error",
                "the database file could not be read or written; nothing was stored: check the disk, then retry",
            ),
            StoreError::Sql(_) | StoreError::Corrupt(_) | StoreError::TooNew { .. } => (
                "database error",
                "the database refused the request; nothing was stored: see the daemon's log",
            ),
        }
    }

    /// Whether this is a failure to write at all (disk, permissions, lock), as opposed
    /// to a problem with one statement.
    pub fn is_write_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Full(_) | StoreError::ReadOnly(_) | StoreError::Busy(_) | StoreError::Io(_)
        )
    }
}

/// A write transaction begun with `BEGIN IMMEDIATE`: it takes the write lock up front
/// (waiting up to the busy timeout), so a read-then-write never fails to upgrade its
/// lock. Its connection derefs for queries. `commit` ends it; dropped uncommitted (an
/// error, a cancelled request) it rolls back, and a connection whose state is in doubt
/// (a failed commit or rollback, a disk-full or I/O error) is closed, never returned
/// to the pool.
pub(crate) struct WriteTx {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    open: bool,
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.conn
    }
}

impl WriteTx {
    /// Commits; the write is acknowledged only if this returns `Ok`.
    pub(crate) async fn commit(mut self) -> Result<()> {
        match sqlx::query("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                suspect(false);
                Ok(())
            }
            Err(e) => {
                let e = StoreError::from(e);
                // SQLite may or may not have rolled back: end it for certain.
                let _ = sqlx::query("ROLLBACK").execute(&mut *self.conn).await;
                self.open = false;
                self.conn.close_on_drop();
                Err(e)
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Not committed (an error, or the caller gave up): closing the connection
            // rolls the transaction back; it never goes back to the pool half done.
            self.conn.close_on_drop();
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The file of a `sqlite://FILE[?…]` URL; `None` for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    url.strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.contains(":memory:"))
        .map(std::path::PathBuf::from)
}

/// Milliseconds since the epoch, the stored form of an instant.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of a stored millisecond count.
pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The migrations, in order; the version of each is its position + 1.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../../migrations/0001_init.sql")),
    (
        "0002_outbox_ended",
        include_str!("../../migrations/0002_outbox_ended.sql"),
    ),
    (
        "0003_consent",
        include_str!("../../migrations/0003_consent.sql"),
    ),
    (
        "0004_campaigns",
        include_str!("../../migrations/0004_campaigns.sql"),
    ),
    (
        "0005_ingest_idempotency",
        include_str!("../../migrations/0005_ingest_idempotency.sql"),
    ),
];

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// The database file (`None` in memory), for the health probe.
    file: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the database at `url`. Does not migrate.
    pub async fn open(url: &str) -> Result<Store> {
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
        if let Some(file) = sqlite_file(url)
            && let Some(dir) = file.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        // A new database holds personal data and, unless the environment gives one,
        // the link-signing key: it is created readable by its owner only (SQLite
        // gives its -wal and -shm files the same permissions).
        #[cfg(unix)]
        if let Some(file) = sqlite_file(url)
            && !url.contains("mode=ro")
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file);
        }
        let in_memory = url.contains(":memory:");
        let pool = SqlitePoolOptions::new()
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
            .after_release(|_conn, _meta| {
                Box::pin(async { Ok(!SUSPECT.load(std::sync::atomic::Ordering::SeqCst)) })
            })
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(Store {
            pool,
            file: sqlite_file(url),
        })
    }

    /// Opens and brings the schema up to date: what every command does first.
    pub async fn open_and_migrate(url: &str) -> Result<Store> {
        let store = Store::open(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied; returns how many ran.
    pub async fn migrate(&self) -> Result<usize> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        let mut ran = 0;
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let mut tx = self.begin_write().await?;
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(i as i64 + 1)
            .bind(*name)
            .bind(ms(Utc::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(migration = name, "applied migration");
            ran += 1;
        }
        Ok(ran)
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`): every read-then-write goes
    /// through here, so it holds the write lock from its first read.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        let mut conn = self.pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            let e = StoreError::from(e);
            if matches!(e, StoreError::Full(_) | StoreError::Io(_)) {
                conn.close_on_drop();
            }
            return Err(e);
        }
        Ok(WriteTx { conn, open: true })
    }

    /// A tiny write that changes nothing lasting: whether the database takes writes
    /// now (for `/healthz`). It writes a row and commits, so a full disk shows.
    pub async fn probe_write(&self, now: DateTime<Utc>) -> Result<()> {
        // SQLite can reuse its log's free space on a full disk, so a small commit may
        // pass where a real batch fails: first make sure the disk itself takes a few
        // pages next to the database.
        if let Some(file) = &self.file {
            let mut probe = file.clone().into_os_string();
            probe.push("-healthz");
            let probe = std::path::PathBuf::from(probe);
            let written = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let r = std::fs::File::create(&probe).and_then(|mut f| {
                    f.write_all(&[0u8; 16 * 1024])?;
                    f.sync_all()
                });
                let _ = std::fs::remove_file(&probe);
                r
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            if let Err(e) = written {
                let full = e.raw_os_error() == Some(28); // ENOSPC
                let e = sqlx::Error::Io(e);
                suspect(true);
                return Err(if full {
                    StoreError::Full(e)
                } else {
                    StoreError::Io(e)
                });
            }
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('healthz_probe', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(ms(now).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores `value` under `key` unless a value is there already; returns the stored one.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self
            .setting(key)
            .await?
            .unwrap_or_else(|| value.to_string()))
    }

    /// Takes the named lease until `until` unless another holder has it unexpired.
    pub async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO locks (name, holder, until) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE locks.until < ? OR locks.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ms(until))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Who holds the named lease, and until when.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        let r: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, until FROM locks WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.map(|(h, u)| (h, from_ms(u))))
    }

    pub async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM locks WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
