//! The `pass_batches` table: a tick's pass split into leased batches of lead ids.

use super::{SqliteStore, from_ms, ms};
use crate::store::{PassBatch, PassProgress, Result};
use chrono::{DateTime, Utc};

/// The last batch of a pass runs to the end of the ids, so leads added while the pass
/// runs are evaluated by it, as a single pass would.
const OPEN_END: i64 = i64::MAX;

impl SqliteStore {
    pub(in crate::store) async fn plan_pass(
        &self,
        at: DateTime<Utc>,
        size: i64,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM pass_batches WHERE pass_at IN (SELECT pass_at FROM pass_batches GROUP BY pass_at HAVING COUNT(*) = COUNT(done_at) AND MAX(done_at) < ?1)",
        )
        .bind(ms(now - chrono::TimeDelta::days(1)))
        .execute(&mut *tx)
        .await?;
        let planned: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pass_batches WHERE pass_at = ?1")
                .bind(ms(at))
                .fetch_one(&mut *tx)
                .await?;
        if planned > 0 {
            // Committed, not dropped: a dropped write transaction closes its
            // connection (and keeps the cleanup above).
            tx.commit().await?;
            return Ok(0);
        }
        let made = sqlx::query(
            "INSERT INTO pass_batches (pass_at, first_id, last_id)
             SELECT ?1, MIN(id), MAX(id)
             FROM (SELECT id, (ROW_NUMBER() OVER (ORDER BY id) - 1) / ?2 AS b FROM leads) t
             GROUP BY b",
        )
        .bind(ms(at))
        .bind(size.max(1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE pass_batches SET last_id = ?1 WHERE pass_at = ?2
             AND first_id = (SELECT MAX(first_id) FROM pass_batches WHERE pass_at = ?2)",
        )
        .bind(OPEN_END)
        .bind(ms(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(made)
    }

    pub(in crate::store) async fn claim_pass_batch(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<PassBatch>> {
        // One statement: SQLite runs it under its one write lock, so two claims never
        // get the same batch.
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "UPDATE pass_batches SET holder = ?1, lease_until = ?2
             WHERE (pass_at, first_id) = (
                 SELECT pass_at, first_id FROM pass_batches
                 WHERE done_at IS NULL AND (holder IS NULL OR lease_until < ?3)
                 ORDER BY pass_at, first_id LIMIT 1)
             RETURNING pass_at, first_id, last_id",
        )
        .bind(holder)
        .bind(ms(until))
        .bind(ms(now))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(at, first, last)| PassBatch {
            at: from_ms(at),
            first,
            last,
            holder: Some(holder.to_string()),
        }))
    }

    pub(in crate::store) async fn take_pass_batch(
        &self,
        batch: &PassBatch,
        from: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE pass_batches SET holder = ?1, lease_until = ?2
             WHERE pass_at = ?3 AND first_id = ?4 AND holder = ?5 AND done_at IS NULL",
        )
        .bind(holder)
        .bind(ms(until))
        .bind(ms(batch.at))
        .bind(batch.first)
        .bind(from)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(in crate::store) async fn renew_pass_batch(
        &self,
        batch: &PassBatch,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE pass_batches SET lease_until = ?1
             WHERE pass_at = ?2 AND first_id = ?3 AND holder = ?4 AND done_at IS NULL",
        )
        .bind(ms(until))
        .bind(ms(batch.at))
        .bind(batch.first)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(in crate::store) async fn finish_pass_batch(
        &self,
        batch: &PassBatch,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE pass_batches SET done_at = ?1, lease_until = NULL
             WHERE pass_at = ?2 AND first_id = ?3 AND holder = ?4 AND done_at IS NULL",
        )
        .bind(ms(now))
        .bind(ms(batch.at))
        .bind(batch.first)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(in crate::store) async fn pass_progress(&self, at: DateTime<Utc>) -> Result<PassProgress> {
        let rows: Vec<(i64, i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT first_id, last_id, holder, done_at FROM pass_batches WHERE pass_at = ?1 ORDER BY first_id",
        )
        .bind(ms(at))
        .fetch_all(self.pool())
        .await?;
        let mut p = PassProgress {
            batches: rows.len() as u64,
            ..PassProgress::default()
        };
        for (first, last, holder, done) in rows {
            if done.is_some() {
                p.done += 1;
            } else {
                p.open.push(PassBatch {
                    at,
                    first,
                    last,
                    holder,
                });
            }
        }
        Ok(p)
    }
}
