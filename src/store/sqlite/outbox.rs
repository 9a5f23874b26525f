//! The outbox in SQL: claiming rows, recording their outcomes, reading them back.

use super::{SqliteStore, from_ms, ms, placeholders};
use crate::domain::{EmailAddress, LeadId, StageId, TemplateName};
use crate::store::{Claimed, Origin, OutboxRow, OutboxState, Result, StoreError};
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
        let not_paused = if paused_campaigns.is_empty() {
            String::new()
        } else {
            format!(
                " AND (campaign IS NULL OR campaign NOT IN ({}))",
                placeholders(paused_campaigns.len())
            )
        };
        let sql = format!(
            "UPDATE outbox SET state = 'sending', lease_until = ?, attempts = attempts + 1
             WHERE id IN (
               SELECT id FROM outbox
               WHERE ((state IN ('queued', 'retry', 'held') AND next_attempt_at <= ?)
                  OR (state = 'sending' AND lease_until < ?)){not_paused}
               ORDER BY next_attempt_at, id LIMIT ?)
             RETURNING {CLAIMED_COLUMNS}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ms(now + lease))
            .bind(ms(now))
            .bind(ms(now));
        for c in paused_campaigns {
            q = q.bind(c);
        }
        let rows = q.bind(limit).fetch_all(self.pool()).await?;
        let mut out = rows.iter().map(claimed).collect::<Result<Vec<_>>>()?;
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
        rows.iter().map(claimed).collect()
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

    pub(in crate::store) async fn mark_held(
        &self,
        id: i64,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'held', next_attempt_at = ?, lease_until = NULL, last_error = ?, attempts = attempts - 1 WHERE id = ?")
            .bind(ms(until))
            .bind(reason)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
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

    pub(in crate::store) async fn lead_sent_since(
        &self,
        lead: LeadId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, String, DateTime<Utc>)>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, template, sent_at FROM outbox WHERE lead_id = ? AND state = 'sent' AND sent_at >= ?",
        )
        .bind(lead.0)
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, t, at)| (id, t, from_ms(at)))
            .collect())
    }

    pub(in crate::store) async fn assign_message_id(
        &self,
        id: i64,
        message_id: &str,
    ) -> Result<String> {
        sqlx::query("UPDATE outbox SET message_id = ? WHERE id = ? AND message_id IS NULL")
            .bind(message_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        let mid: Option<String> = sqlx::query_scalar("SELECT message_id FROM outbox WHERE id = ?")
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        Ok(mid.unwrap_or_else(|| message_id.to_string()))
    }

    pub(in crate::store) async fn mark_sent(&self, id: i64, sent_at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'sent', sent_at = ?, ended_at = ?, lease_until = NULL, last_error = NULL WHERE id = ?")
            .bind(ms(sent_at))
            .bind(ms(sent_at))
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
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?")
            .bind(ms(at))
            .bind(error)
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

/// The columns of a [`Claimed`] row, as `claim_due` returns them and `pending_of`
/// selects them.
const CLAIMED_COLUMNS: &str = "id, lead_id, template, dedupe_key, stage, campaign, requested_at, attempts, message_id, released_at";

/// A row with [`CLAIMED_COLUMNS`].
fn claimed(r: &SqliteRow) -> Result<Claimed> {
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
