//! The operator's outbox commands in PostgreSQL: `outbox list`, `retry` and `cancel`.

use super::outbox::{OUTBOX_ROW, outbox_row};
use super::{PgStore, ms};
use crate::store::{OutboxFilter, OutboxRow, OutboxState, Result};
use chrono::{DateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

/// A value a filter binds, typed as its column is.
enum Bind {
    States(Vec<String>),
    Text(String),
    Id(i64),
}

/// The `WHERE` clause of `filter` over `outbox o`, its placeholders numbered from
/// `$first`, and the values it binds in order.
fn filter_clause(filter: &OutboxFilter, first: usize) -> (String, Vec<Bind>) {
    let mut conds = Vec::new();
    if !filter.states.is_empty() {
        let states = filter.states.iter().map(|s| s.as_str().to_string());
        conds.push(("o.state = ANY($?)", Bind::States(states.collect())));
    }
    if let Some(t) = &filter.template {
        conds.push(("o.template = $?", Bind::Text(t.clone())));
    }
    if let Some(l) = filter.lead {
        conds.push(("o.lead_id = $?", Bind::Id(l.0)));
    }
    if let Some(c) = &filter.campaign {
        conds.push(("o.campaign = $?", Bind::Text(c.clone())));
    }
    let mut sql = String::from(" WHERE 1 = 1");
    for (i, (cond, _)) in conds.iter().enumerate() {
        sql.push_str(" AND ");
        sql.push_str(&cond.replace("$?", &format!("${}", first + i)));
    }
    (sql, conds.into_iter().map(|(_, b)| b).collect())
}

/// Binds a filter's values to `q`, in the order of its clause.
fn bind_all<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    binds: Vec<Bind>,
) -> Query<'q, Postgres, PgArguments> {
    for b in binds {
        q = match b {
            Bind::States(s) => q.bind(s),
            Bind::Text(t) => q.bind(t),
            Bind::Id(i) => q.bind(i),
        };
    }
    q
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

impl PgStore {
    pub(in crate::store) async fn outbox_list(
        &self,
        filter: &OutboxFilter,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let (clause, binds) = filter_clause(filter, 1);
        let sql = format!(
            "{OUTBOX_ROW}{clause} ORDER BY o.requested_at DESC, o.id DESC LIMIT ${}",
            binds.len() + 1
        );
        let q = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds);
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
            "state = 'queued', next_attempt_at = 0, released_at = $1, ended_at = NULL, last_error = 'retried by the operator'",
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
            "state = 'cancelled', ended_at = $1, lease_until = NULL, last_error = 'cancelled by the operator', released_at = COALESCE(released_at, $1)",
            now,
        )
        .await
    }

    /// Applies `set` (which binds `now` as `$1`) to the rows of `filter`, if it names a
    /// state at all. One statement: a row a sender claims meanwhile is waited for and
    /// re-checked, and as `sending` it is no longer one the command may touch.
    async fn operate(&self, filter: &OutboxFilter, set: &str, now: DateTime<Utc>) -> Result<u64> {
        if filter.states.is_empty() {
            return Ok(0);
        }
        let (clause, binds) = filter_clause(filter, 2);
        let sql = format!("UPDATE outbox o SET {set}{clause}");
        let q = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ms(now)), binds);
        Ok(q.execute(self.pool()).await?.rows_affected())
    }
}
