//! The outbox in SQL: claiming rows, recording their outcomes, reading them back.

use super::{IN_LIST, SqliteStore, from_ms, ms, placeholders};
use crate::domain::{EmailAddress, LeadId, StageId, TemplateName};
use crate::store::{Claimed, Origin, OutboxRow, OutboxState, Result, StoreError, Unsent};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// The columns of an [`OutboxRow`], with the lead's address: every read of whole rows
/// selects these, and [`outbox_row`] reads them back.
pub(super) const OUTBOX_ROW: &str = "SELECT o.id, o.lead_id, l.email, o.template, o.dedupe_key, o.state, o.rule, o.campaign, \
     o.requested_at, o.next_attempt_at, o.sent_at, o.ended_at, o.attempts, o.last_error, o.message_id \
     FROM outbox o JOIN leads l ON l.id = o.lead_id";

impl SqliteStore {
    pub(in crate::store) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: TimeDelta,
        paused_campaigns: &[String],
    ) -> Result<Vec<Claimed>> {
        let mut tx = self.begin_write().await?;
        let mut out = Vec::new();
        // Rows a crashed sender left `sending` are few (a batch at most): the state
        // finds them and their order costs nothing. Then the waiting rows, read in the
        // order of `outbox_waiting`, so no claim sorts the queue.
        for (rows, index) in [
            ("state = 'sending' AND lease_until < ?", ""),
            (
                "state IN ('queued', 'retry', 'held') AND next_attempt_at <= ?",
                CLAIM_ORDER,
            ),
        ] {
            let left = limit - out.len() as i64;
            if left <= 0 {
                break;
            }
            let sql = claim_sql(rows, index, paused_campaigns.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ms(now + lease))
                .bind(ms(now));
            for c in paused_campaigns {
                q = q.bind(c);
            }
            let claimed = q.bind(left).fetch_all(&mut *tx).await?;
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
             FROM outbox WHERE lead_id = ? AND state IN ('queued', 'retry', 'held') ORDER BY next_attempt_at, id"
        )))
        .bind(lead.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(claimed_row).collect()
    }

    pub(in crate::store) async fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = 'in flight when the previous sender stopped' WHERE state = 'sending'",
        )
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn recover_expired_claims(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = 'in flight when the previous sender stopped' WHERE state = 'sending' AND lease_until < ?",
        )
        .bind(ms(now))
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    pub(in crate::store) async fn unclaim(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE outbox SET state = CASE WHEN attempts > 1 THEN 'retry' ELSE 'queued' END, lease_until = NULL, attempts = attempts - 1 WHERE state = 'sending' AND id IN ({})",
            placeholders(ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id);
        }
        Ok(q.execute(self.pool()).await?.rows_affected())
    }

    pub(in crate::store) async fn set_aside(&self, rows: &[Unsent]) -> Result<()> {
        let mut held = Vec::new();
        let mut ended = Vec::new();
        for row in rows {
            match row {
                Unsent::Held { .. } => held.push(row),
                Unsent::Ended { .. } => ended.push(row),
            }
        }
        let mut tx = self.begin_write().await?;
        for (sql, rows) in [(HOLD, held), (END_UNSENT, ended)] {
            for chunk in rows.chunks(IN_LIST / 4) {
                let sql = format!("{sql} {}{SET_ASIDE_WHERE}", unsent_values(chunk.len()));
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    q = match row {
                        Unsent::Held { id, until, reason } => {
                            q.bind(id).bind(ms(*until)).bind(reason).bind("held")
                        }
                        Unsent::Ended {
                            id,
                            state,
                            reason,
                            at,
                        } => q.bind(id).bind(ms(*at)).bind(reason).bind(state.as_str()),
                    };
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await
    }

    pub(in crate::store) async fn sent_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox WHERE state = 'sent' AND sent_at >= ? GROUP BY template",
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
        let mut out = Vec::new();
        for chunk in leads.chunks(IN_LIST) {
            // By lead (outbox_by_lead): a batch's leads have few rows each, while the
            // window may hold many sends of other leads.
            let sql = format!(
                "SELECT lead_id, id, template, sent_at FROM outbox INDEXED BY outbox_by_lead
                 WHERE lead_id IN ({}) AND state = 'sent' AND sent_at >= ?",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for lead in chunk {
                q = q.bind(lead.0);
            }
            let rows: Vec<(i64, i64, String, i64)> =
                q.bind(ms(since)).fetch_all(self.pool()).await?;
            out.extend(
                rows.into_iter()
                    .map(|(lead, id, t, at)| (LeadId(lead), id, t, from_ms(at))),
            );
        }
        Ok(out)
    }

    pub(in crate::store) async fn mark_sent(
        &self,
        id: i64,
        sent_at: DateTime<Utc>,
        message_id: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'sent', sent_at = ?, ended_at = ?, message_id = COALESCE(message_id, ?), lease_until = NULL, last_error = NULL WHERE id = ?")
            .bind(ms(sent_at))
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
        sqlx::query("UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = ?, message_id = COALESCE(message_id, ?) WHERE id = ?")
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
        sqlx::query("UPDATE outbox SET state = ?, lease_until = NULL, last_error = ?, ended_at = ? WHERE id = ?")
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
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state IN ('queued', 'retry', 'held') AND next_attempt_at > ?",
        )
        .bind(ms(after))
        .fetch_one(self.pool())
        .await?;
        Ok(t.map(from_ms))
    }

    pub(in crate::store) async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub(in crate::store) async fn outbox_of(&self, lead: LeadId) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{OUTBOX_ROW} WHERE o.lead_id = ? ORDER BY o.requested_at, o.id"
        )))
        .bind(lead.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }
}

impl SqliteStore {
    pub(in crate::store) async fn pending_templates(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox WHERE state IN ('queued', 'sending', 'retry', 'held') GROUP BY template ORDER BY template",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

/// A row selected with [`OUTBOX_ROW`]'s columns.
pub(super) fn outbox_row(r: &SqliteRow) -> Result<OutboxRow> {
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

/// Makes a claim read the waiting rows in `outbox_waiting`'s order. Named, not left
/// to the planner: without statistics it prefers `outbox_due` and sorts every due row
/// for each batch; and a query that could not use the index fails rather than slows.
const CLAIM_ORDER: &str = "INDEXED BY outbox_waiting";

/// The claim of up to `?` rows matching `rows` (bound: the lease's end, `now`, the
/// paused campaigns, the limit), oldest first.
fn claim_sql(rows: &str, index: &str, paused: usize) -> String {
    let not_paused = if paused == 0 {
        String::new()
    } else {
        format!(
            " AND (campaign IS NULL OR campaign NOT IN ({}))",
            placeholders(paused)
        )
    };
    format!(
        "UPDATE outbox SET state = 'sending', lease_until = ?, attempts = attempts + 1
         WHERE id IN (
           SELECT id FROM outbox {index}
           WHERE {rows}{not_paused}
           ORDER BY next_attempt_at, id LIMIT ?)
         RETURNING {CLAIMED_COLUMNS}"
    )
}

/// Held rows wait for their release; the attempt their claim counted is undone.
/// Completed by [`unsent_values`] and [`SET_ASIDE_WHERE`].
const HOLD: &str = "UPDATE outbox SET state = v.state, next_attempt_at = v.at, lease_until = NULL, \
     last_error = v.reason, attempts = attempts - 1 FROM (SELECT column1 AS id, column2 AS at, \
     column3 AS reason, column4 AS state FROM (VALUES";

/// Rows that end unsent, in their own state, at their time.
const END_UNSENT: &str = "UPDATE outbox SET state = v.state, ended_at = v.at, lease_until = NULL, \
     last_error = v.reason FROM (SELECT column1 AS id, column2 AS at, column3 AS reason, \
     column4 AS state FROM (VALUES";

const SET_ASIDE_WHERE: &str = ")) AS v WHERE outbox.id = v.id";

/// `(?, ?, ?, ?), …`: `n` rows of (id, at, reason, state).
fn unsent_values(n: usize) -> String {
    vec!["(?, ?, ?, ?)"; n].join(", ")
}

/// The columns of a [`Claimed`] row, as `claim_due` returns them and `pending_of`
/// selects them.
const CLAIMED_COLUMNS: &str = "id, lead_id, template, dedupe_key, stage, campaign, requested_at, attempts, message_id, released_at";

/// A row with [`CLAIMED_COLUMNS`].
fn claimed_row(r: &SqliteRow) -> Result<Claimed> {
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
impl SqliteStore {
    pub(in crate::store) fn test_pool(&self) -> &sqlx::SqlitePool {
        self.pool()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> SqliteStore {
        let s = SqliteStore::open("sqlite::memory:").await.unwrap();
        s.migrate().await.unwrap();
        sqlx::query(
            "INSERT INTO leads (id, email, stage, created_at, stage_entered_at, updated_at)
             VALUES (1, 'ana@example.com', 'interest', 0, 0, 0)",
        )
        .execute(s.pool())
        .await
        .unwrap();
        s
    }

    async fn plan(s: &SqliteStore, sql: &str) -> String {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(s.pool())
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn a_claim_reads_the_waiting_rows_in_index_order_without_sorting_the_queue() {
        let s = store().await;
        for paused in [0, 2] {
            let sql = claim_sql(
                "state IN ('queued', 'retry', 'held') AND next_attempt_at <= ?",
                CLAIM_ORDER,
                paused,
            );
            let plan = plan(&s, &sql).await;
            assert!(plan.contains("USING INDEX outbox_waiting"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
