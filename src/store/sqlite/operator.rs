//! The operator's outbox commands in SQL: `outbox list`, `retry` and `cancel`.

use super::outbox::{OUTBOX_ROW, outbox_row};
use super::{SqliteStore, ms, placeholders};
use crate::store::{OutboxFilter, OutboxRow, OutboxState, Result};
use chrono::{DateTime, Utc};

/// The `WHERE` clause of `filter` over `outbox o`, and the values it binds in order.
fn filter_clause(filter: &OutboxFilter) -> (String, Vec<String>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut binds = Vec::new();
    if !filter.states.is_empty() {
        sql.push_str(&format!(
            " AND o.state IN ({})",
            placeholders(filter.states.len())
        ));
        binds.extend(filter.states.iter().map(|s| s.as_str().to_string()));
    }
    if let Some(t) = &filter.template {
        sql.push_str(" AND o.template = ?");
        binds.push(t.clone());
    }
    if let Some(l) = filter.lead {
        sql.push_str(" AND o.lead_id = ?");
        binds.push(l.0.to_string());
    }
    if let Some(c) = &filter.campaign {
        sql.push_str(" AND o.campaign = ?");
        binds.push(c.clone());
    }
    (sql, binds)
}

/// The states of `filter` that an operator command may act on: those asked for among
/// `allowed`, or all of `allowed` when none were asked for.
fn operable(filter: &OutboxFilter, allowed: &[OutboxState]) -> OutboxFilter {
    let mut f = filter.clone();
    f.states = if filter.states.is_empty() {
        allowed.to_vec()
    } else {
        filter
            .states
            .iter()
            .copied()
            .filter(|s| allowed.contains(s))
            .collect()
    };
    f
}

impl SqliteStore {
    pub(in crate::store) async fn outbox_list(
        &self,
        filter: &OutboxFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let (clause, binds) = filter_clause(filter);
        let sql = format!("{OUTBOX_ROW}{clause} ORDER BY o.requested_at DESC, o.id DESC LIMIT ?");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(outbox_row).collect()
    }

    pub(in crate::store) async fn outbox_retry(
        &self,
        filter: &OutboxFilter,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        use OutboxState::*;
        self.operate(
            &operable(filter, &[Failed, Expired, Stale, Held, Retry, Cancelled]),
            // Due at once, whatever clock the next tick runs on (`--now` may be earlier).
            "state = 'queued', next_attempt_at = 0 * ?, released_at = ?, ended_at = NULL, last_error = 'retried by the operator'",
            now,
        )
        .await
    }

    pub(in crate::store) async fn outbox_cancel(
        &self,
        filter: &OutboxFilter,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        use OutboxState::*;
        self.operate(
            &operable(filter, &[Queued, Retry, Held]),
            "state = 'cancelled', ended_at = ?, lease_until = NULL, last_error = 'cancelled by the operator' , released_at = COALESCE(released_at, ?)",
            now,
        )
        .await
    }

    /// Applies `set` (which binds `now` twice) to the rows of `filter`, if it names a
    /// state at all.
    async fn operate(&self, filter: &OutboxFilter, set: &str, now: DateTime<Utc>) -> Result<u64> {
        if filter.states.is_empty() {
            return Ok(0);
        }
        let (clause, binds) = filter_clause(filter);
        let sql =
            format!("UPDATE outbox SET {set} WHERE id IN (SELECT o.id FROM outbox o{clause})");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ms(now))
            .bind(ms(now));
        for b in &binds {
            q = q.bind(b);
        }
        Ok(q.execute(self.pool()).await?.rows_affected())
    }
}
