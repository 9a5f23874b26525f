//! The database: SQLite through sqlx, with runtime queries kept in this module so a
//! PostgreSQL backend is a sibling, not a rewrite.
//!
//! Timestamps are stored as BIGINT milliseconds (UTC); every write is stamped with the
//! caller's clock (`now`), never the database's, so `--now` and simulation work.

mod campaigns;
mod consent;
mod leads;
mod outbox;
mod report;
mod timeline;

pub use campaigns::{Firing, FiringState};
pub use consent::{LeadBrief, Suppression};
pub use leads::{LeadChanges, LeadUpsert, LoadedLead, NewSend, UpsertResult};
pub use outbox::{Claimed, OutboxFilter, OutboxRow, OutboxState};
pub use timeline::{MoveRow, SendRow};

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// Errors of the storage layer.
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
    #[error("database: {0}")]
    Sql(sqlx::Error),
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
    #[error(
        "database schema version {found} is newer than this embudo knows ({known}); upgrade embudo"
    )]
    TooNew { found: i64, known: i64 },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let msg = e.to_string();
        if msg.contains("database is locked") || msg.contains("database is busy") {
            StoreError::Busy(e)
        } else if msg.contains("readonly") || msg.contains("read-only") {
            StoreError::ReadOnly(e)
        } else {
            StoreError::Sql(e)
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
];

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
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
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(file) = sqlite_file(url)
            && let Some(dir) = file.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
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
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(Store { pool })
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
            let mut tx = self.pool.begin().await?;
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
