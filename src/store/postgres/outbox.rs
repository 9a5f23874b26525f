//! The outbox in PostgreSQL: claiming rows, recording their outcomes, reading them
//! back. Several daemons may send from one database, so the claim is written for
//! concurrent claimers (`FOR UPDATE SKIP LOCKED`); every other write is one statement.

use super::{PgStore, from_ms, ms};
use crate::domain::{EmailAddress, LeadId, StageId, TemplateName};
use crate::store::{Claimed, Origin, OutboxRow, OutboxState, Result, StoreError, Unsent};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// The columns of an [`OutboxRow`], with the lead's address: every read of whole rows
/// selects these, and [`outbox_row`] reads them back.
pub(super) const OUTBOX_ROW: &str = "SELECT o.id, o.lead_id, l.email, o.template, o.dedupe_key, o.state, o.rule, o.campaign, \
     o.requested_at, o.next_attempt_at, o.sent_at, o.ended_at, o.attempts, o.last_error, o.message_id \
     FROM outbox o JOIN leads l ON l.id = o.lead_id";

/// The columns of a [`Claimed`] row, as `claim_due` returns them and `pending_of`
/// selects them.
const CLAIMED_COLUMNS: &str = "id, lead_id, template, dedupe_key, stage, campaign, requested_at, attempts, message_id, released_at";

/// Rows a crashed sender left `sending` whose lease has run out (bound: `now`).
const LAPSED: &str = "state = 'sending' AND lease_until < $2";

/// Rows waiting whose time has come (bound: `now`): the predicate of the partial index
/// `outbox_waiting`, whose order (next_attempt_at, id) is the claim's.
const WAITING: &str = "state IN ('queued', 'retry', 'held') AND next_attempt_at <= $2";

impl PgStore {
    /// Why concurrent claims cannot race: each claim locks the rows it picks with
    /// `FOR UPDATE SKIP LOCKED`, skipping rows another open claim has locked (so it
    /// never waits on one), and turns them `sending` in the same transaction. A row
    /// another claim took and committed after this one's snapshot is locked afresh
    /// and re-checked against its latest version (read committed): no longer waiting,
    /// nor lapsed (its lease renewed), it drops out. So no row is claimed twice, and
    /// the lock is held to the commit, which also publishes the new state.
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: TimeDelta,
        paused_campaigns: &[String],
    ) -> Result<Vec<Claimed>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::new();
        // Lapsed leases first (a batch at most), then the waiting rows, oldest first.
        for rows in [LAPSED, WAITING] {
            let left = limit - out.len() as i64;
            if left <= 0 {
                break;
            }
            let claimed = sqlx::query(sqlx::AssertSqlSafe(claim_sql(rows)))
                .bind(ms(now + lease))
                .bind(ms(now))
                .bind(paused_campaigns)
                .bind(left)
                .fetch_all(&mut *tx)
                .await?;
            for r in &claimed {
                out.push(claimed_row(r)?);
            }
        }
        tx.commit().await?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    pub(in crate::store) async fn pending_of(&self, lead: LeadId) -> Result<Vec<Claimed>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLAIMED_COLUMNS}
             FROM outbox WHERE lead_id = $1 AND state IN ('queued', 'retry', 'held') ORDER BY next_attempt_at, id"
        )))
        .bind(lead.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(claimed_row).collect()
    }

    pub(in crate::store) async fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'retry', next_attempt_at = $1, lease_until = NULL, last_error = 'in flight when the previous sender stopped' WHERE state = 'sending'",
        )
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// One statement: a row a claim holds is waited for and re-checked, so a lease the
    /// claim just renewed is left alone.
    pub(in crate::store) async fn recover_expired_claims(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'retry', next_attempt_at = $1, lease_until = NULL, last_error = 'in flight when the previous sender stopped' WHERE state = 'sending' AND lease_until < $1",
        )
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn unclaim(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let r = sqlx::query(
            "UPDATE outbox SET state = CASE WHEN attempts > 1 THEN 'retry' ELSE 'queued' END, lease_until = NULL, attempts = attempts - 1 WHERE state = 'sending' AND id = ANY($1)",
        )
        .bind(ids)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// A plain transaction: it only writes, and only rows the caller's claim holds.
    pub(in crate::store) async fn set_aside(&self, rows: &[Unsent]) -> Result<()> {
        let mut held = Unnest::default();
        let mut ended = Unnest::default();
        for row in rows {
            match row {
                Unsent::Held { id, until, reason } => held.push(*id, *until, reason, "held"),
                Unsent::Ended {
                    id,
                    state,
                    reason,
                    at,
                } => ended.push(*id, *at, reason, state.as_str()),
            }
        }
        let mut tx = self.begin().await?;
        for (sql, v) in [(HOLD, held), (END_UNSENT, ended)] {
            if v.ids.is_empty() {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("{sql}{SET_ASIDE_FROM}")))
                .bind(v.ids)
                .bind(v.ats)
                .bind(v.reasons)
                .bind(v.states)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn sent_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox WHERE state = 'sent' AND sent_at >= $1 GROUP BY template ORDER BY template COLLATE \"C\"",
        )
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn leads_sent_since(
        &self,
        leads: &[LeadId],
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, i64, String, DateTime<Utc>)>> {
        if leads.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = leads.iter().map(|l| l.0).collect();
        // By lead (outbox_by_lead), in its order, as SQLite reads them.
        let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT lead_id, id, template, sent_at FROM outbox
             WHERE lead_id = ANY($1) AND state = 'sent' AND sent_at >= $2
             ORDER BY lead_id, requested_at, id",
        )
        .bind(ids)
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(lead, id, t, at)| (LeadId(lead), id, t, from_ms(at)))
            .collect())
    }

    pub(in crate::store) async fn mark_sent(
        &self,
        id: i64,
        sent_at: DateTime<Utc>,
        message_id: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'sent', sent_at = $1, ended_at = $1, message_id = COALESCE(message_id, $2), lease_until = NULL, last_error = NULL WHERE id = $3")
            .bind(ms(sent_at))
            .bind(message_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn mark_retry(
        &self,
        id: i64,
        at: DateTime<Utc>,
        error: &str,
        message_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'retry', next_attempt_at = $1, lease_until = NULL, last_error = $2, message_id = COALESCE(message_id, $3) WHERE id = $4")
            .bind(ms(at))
            .bind(error)
            .bind(message_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn mark_final(
        &self,
        id: i64,
        state: OutboxState,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = $1, lease_until = NULL, last_error = $2, ended_at = $3 WHERE id = $4")
            .bind(state.as_str())
            .bind(reason)
            .bind(ms(at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn next_due_after(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state IN ('queued', 'retry', 'held') AND next_attempt_at > $1",
        )
        .bind(ms(after))
        .fetch_one(self.pool())
        .await?;
        Ok(t.map(from_ms))
    }

    pub(in crate::store) async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state COLLATE \"C\"",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn outbox_of(&self, lead: LeadId) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{OUTBOX_ROW} WHERE o.lead_id = $1 ORDER BY o.requested_at, o.id"
        )))
        .bind(lead.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    pub(in crate::store) async fn pending_templates(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox WHERE state IN ('queued', 'sending', 'retry', 'held') GROUP BY template ORDER BY template COLLATE \"C\"",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

/// The claim of up to `$4` rows matching `rows` (bound: `$1` the lease's end, `$2`
/// `now`, `$3` the paused campaigns, `$4` the limit), oldest first. The CTE locks the
/// rows it picks and is evaluated once (a locking CTE is never inlined).
fn claim_sql(rows: &str) -> String {
    format!(
        "WITH picked AS (
           SELECT id FROM outbox
           WHERE {rows} AND (campaign IS NULL OR campaign <> ALL($3::text[]))
           ORDER BY next_attempt_at, id LIMIT $4
           FOR UPDATE SKIP LOCKED)
         UPDATE outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1
         FROM picked WHERE outbox.id = picked.id
         RETURNING {}",
        CLAIMED_COLUMNS
            .split(", ")
            .map(|c| format!("outbox.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The rows a `set_aside` writes, one array a column, for `UNNEST`.
#[derive(Default)]
struct Unnest {
    ids: Vec<i64>,
    ats: Vec<i64>,
    reasons: Vec<String>,
    states: Vec<String>,
}

impl Unnest {
    fn push(&mut self, id: i64, at: DateTime<Utc>, reason: &str, state: &str) {
        self.ids.push(id);
        self.ats.push(ms(at));
        self.reasons.push(reason.to_string());
        self.states.push(state.to_string());
    }
}

/// Held rows wait for their release; the attempt their claim counted is undone.
/// Completed by [`SET_ASIDE_FROM`].
const HOLD: &str = "UPDATE outbox SET state = v.state, next_attempt_at = v.at, lease_until = NULL, \
     last_error = v.reason, attempts = attempts - 1";

/// Rows that end unsent, in their own state, at their time.
const END_UNSENT: &str = "UPDATE outbox SET state = v.state, ended_at = v.at, lease_until = NULL, \
     last_error = v.reason";

const SET_ASIDE_FROM: &str = " FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) \
     AS v(id, at, reason, state) WHERE outbox.id = v.id";

/// A row selected with [`OUTBOX_ROW`]'s columns.
pub(super) fn outbox_row(r: &PgRow) -> Result<OutboxRow> {
    let email: String = r.try_get("email")?;
    let template: String = r.try_get("template")?;
    let rule: Option<String> = r.try_get("rule")?;
    let campaign: Option<String> = r.try_get("campaign")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        lead: LeadId(r.try_get("lead_id")?),
        email: EmailAddress::parse(&email).map_err(StoreError::Corrupt)?,
        template: TemplateName::parse(&template).map_err(StoreError::Corrupt)?,
        key: r.try_get("dedupe_key")?,
        state: OutboxState::stored(r.try_get("state")?)?,
        // A campaign's row names its campaign; a rule's, its rule.
        origin: campaign.map(Origin::Campaign).or(rule.map(Origin::Rule)),
        requested_at: from_ms(r.try_get("requested_at")?),
        next_attempt_at: from_ms(r.try_get("next_attempt_at")?),
        sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(from_ms),
        ended_at: r.try_get::<Option<i64>, _>("ended_at")?.map(from_ms),
        attempts: r.try_get("attempts")?,
        reason: r.try_get("last_error")?,
        message_id: r.try_get("message_id")?,
    })
}

/// A row with [`CLAIMED_COLUMNS`].
fn claimed_row(r: &PgRow) -> Result<Claimed> {
    let template: String = r.try_get("template")?;
    let stage: String = r.try_get("stage")?;
    Ok(Claimed {
        id: r.try_get("id")?,
        lead_id: LeadId(r.try_get("lead_id")?),
        template: TemplateName::parse(&template).map_err(StoreError::Corrupt)?,
        key: r.try_get("dedupe_key")?,
        stage: StageId::parse(&stage).map_err(StoreError::Corrupt)?,
        campaign: r.try_get("campaign")?,
        requested_at: from_ms(r.try_get("requested_at")?),
        attempts: r.try_get("attempts")?,
        message_id: r.try_get("message_id")?,
        released_at: r.try_get::<Option<i64>, _>("released_at")?.map(from_ms),
    })
}

/// Tests reach the database beside the interface, to set up rows and read them back.
#[cfg(test)]
impl PgStore {
    pub(in crate::store) fn test_pool(&self) -> &sqlx::PgPool {
        self.pool()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::testing::postgres;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn pg(store: &Store) -> PgStore {
        match &store.backend {
            crate::store::Backend::Postgres(db) => db.clone(),
            crate::store::Backend::Sqlite(_) => unreachable!("a PostgreSQL store"),
        }
    }

    /// Lead 1, with rows 1..=300 queued and due (at 0..49 ms), 301..=310 left `sending`
    /// by a crashed sender (lapsed), 311..=320 not yet due and 321..=330 still leased.
    async fn queue(db: &PgStore) {
        let rows = |ids: &str, state: &str, next: &str, lease: &str| {
            format!(
                "INSERT INTO outbox (id, lead_id, template, dedupe_key, requested_at, stage,
                                     state, attempts, next_attempt_at, lease_until)
                 SELECT g, 1, 'welcome', g::text, 0, 'interest', '{state}', 0, {next}, {lease}
                 FROM generate_series({ids}) g"
            )
        };
        for sql in [
            "INSERT INTO leads (id, email, stage, created_at, stage_entered_at, updated_at)
             VALUES (1, 'ana@example.com', 'interest', 0, 0, 0)"
                .to_string(),
            rows("1, 300", "queued", "g % 50", "NULL"),
            rows("301, 310", "sending", "0", "500"),
            rows("311, 320", "retry", "5000", "NULL"),
            rows("321, 330", "sending", "0", "9000"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(db.pool())
                .await
                .unwrap();
        }
    }

    /// Several senders on one database, started together, each claiming batches of 7
    /// until nothing is left: the ids each claimed.
    async fn claim_together(store: &Store, senders: usize, now: DateTime<Utc>) -> Vec<Vec<i64>> {
        let start = Arc::new(tokio::sync::Barrier::new(senders));
        let mut tasks = Vec::new();
        for _ in 0..senders {
            let (store, start) = (store.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let mut mine = Vec::new();
                loop {
                    let lease = TimeDelta::minutes(5);
                    let batch = store.claim_due(now, 7, lease, &[]).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_get_disjoint_rows_that_together_are_every_due_row() {
        let Some(store) = postgres().await else {
            return;
        };
        queue(&pg(&store)).await;
        let now = from_ms(1_000);
        let claims = claim_together(&store, 6, now).await;
        let total: usize = claims.iter().map(Vec::len).sum();
        let seen: BTreeSet<i64> = claims.into_iter().flatten().collect();
        assert_eq!(total, seen.len(), "a row was claimed twice");
        assert_eq!(seen, (1..=310).collect::<BTreeSet<i64>>());
        let sending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE state = 'sending' AND attempts = 1 AND lease_until = $1",
        )
        .bind(ms(now + TimeDelta::minutes(5)))
        .fetch_one(pg(&store).pool())
        .await
        .unwrap();
        assert_eq!(sending, 310);
    }

    #[tokio::test]
    async fn a_claim_skips_rows_another_claim_holds_without_waiting_for_them() {
        let Some(store) = postgres().await else {
            return;
        };
        let db = pg(&store);
        queue(&db).await;
        // Another claim, still open, holds rows 1 and 301.
        let mut other = db.begin().await.unwrap();
        sqlx::query("SELECT id FROM outbox WHERE id IN (1, 301) FOR UPDATE")
            .execute(&mut *other)
            .await
            .unwrap();
        let lease = TimeDelta::minutes(5);
        let claim = store.claim_due(from_ms(1_000), 400, lease, &[]);
        let claimed = tokio::time::timeout(std::time::Duration::from_secs(10), claim)
            .await
            .expect("a claim waited on a row another claim holds")
            .unwrap();
        let ids: BTreeSet<i64> = claimed.iter().map(|c| c.id).collect();
        let want: BTreeSet<i64> = (2..=300).chain(302..=310).collect();
        assert_eq!(ids, want);
        other.rollback().await.unwrap();
        let rest = store.claim_due(from_ms(1_000), 400, lease, &[]).await;
        let rest: Vec<i64> = rest.unwrap().iter().map(|c| c.id).collect();
        assert_eq!(rest, [1, 301]);
    }
}
