//! The PostgreSQL schema, brought up to date one numbered migration at a time: the
//! same versions as SQLite's, so a database copied from one to the other is at the
//! same version.

use super::{PgStore, ms};
use crate::store::{Result, StoreError};
use chrono::Utc;

/// The migrations, in order; the version of each is its position + 1.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_outbox_ended",
        include_str!("../../../migrations/postgres/0002_outbox_ended.sql"),
    ),
    (
        "0003_consent",
        include_str!("../../../migrations/postgres/0003_consent.sql"),
    ),
    (
        "0004_campaigns",
        include_str!("../../../migrations/postgres/0004_campaigns.sql"),
    ),
    (
        "0005_ingest_idempotency",
        include_str!("../../../migrations/postgres/0005_ingest_idempotency.sql"),
    ),
    (
        "0006_outbox_claim_order",
        include_str!("../../../migrations/postgres/0006_outbox_claim_order.sql"),
    ),
    (
        "0007_pass_batches",
        include_str!("../../../migrations/postgres/0007_pass_batches.sql"),
    ),
    (
        "0008_events_covering",
        include_str!("../../../migrations/postgres/0008_events_covering.sql"),
    ),
];

impl PgStore {
    /// Several daemons may start at once: the write lock makes one of them migrate
    /// and the others find the schema up to date.
    pub(in crate::store) async fn migrate(&self) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&mut *tx)
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
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(i as i64 + 1)
            .bind(*name)
            .bind(ms(Utc::now()))
            .execute(&mut *tx)
            .await?;
            tracing::info!(migration = name, "applied migration");
            ran += 1;
        }
        tx.commit().await?;
        Ok(ran)
    }
}
