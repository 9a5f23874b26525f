//! Stores for unit tests that set up their rows with plain SQL: every backend, each
//! with a second pool on the same database, so a test of one concern's operations
//! does not depend on another concern's (leads, outbox) to write its fixtures.
//! SQLite here is a temporary file (an in-memory database has no second pool);
//! PostgreSQL a new database on the test server, when `EMBUDO_TEST_POSTGRES` names one.

use super::Store;
use super::testing::{new_postgres_database, postgres_server};
use std::path::PathBuf;

/// A store, and a second way into its database.
pub struct Fixture {
    pub store: Store,
    raw: Raw,
    /// The SQLite file, removed when the fixture drops.
    file: Option<PathBuf>,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// One fixture per backend this machine offers.
pub async fn fixtures() -> Vec<Fixture> {
    let file = std::env::temp_dir().join(format!("embudo-t-{:016x}.db", rand::random::<u64>()));
    let url = format!("sqlite://{}", file.display());
    let store = Store::open_and_migrate(&url).await.unwrap();
    let raw = Raw::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap());
    let mut out = vec![Fixture {
        store,
        raw,
        file: Some(file),
    }];
    if let Some(server) = postgres_server() {
        let url = new_postgres_database(&server).await;
        out.push(Fixture {
            store: Store::open_and_migrate(&url).await.unwrap(),
            raw: Raw::Postgres(sqlx::PgPool::connect(&url).await.unwrap()),
            file: None,
        });
    }
    out
}

impl Fixture {
    /// Runs `sql` (one or more statements, no parameters: the same text on both).
    pub async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.raw {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Raw::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", self.store.engine()));
    }

    /// The one number `sql` selects.
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{}: {e}", self.store.engine()))
    }

    /// A lead with this id, address and stage, in it since `entered_ms`.
    pub async fn lead(&self, id: i64, email: &str, stage: &str, entered_ms: i64) {
        self.exec(&format!(
            "INSERT INTO leads (id, email, stage, timezone, created_at, stage_entered_at, updated_at)
             VALUES ({id}, '{email}', '{stage}', 'Europe/Madrid', 0, {entered_ms}, 0)"
        ))
        .await;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = f.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
