//! The outbox: rows claimed with a lease, sent outside any transaction, then recorded.

use super::{Result, Store, from_ms, ms};
use crate::domain::LeadId;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::Row;

/// The states of an outbox row (see the contract's "Sending").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Queued,
    Sending,
    Sent,
    Retry,
    Held,
    Failed,
    Stale,
    Expired,
    /// The lead unsubscribed or the address is suppressed (bounced, forgotten).
    Suppressed,
    /// Cancelled by the operator (`embudo outbox cancel`).
    Cancelled,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Retry => "retry",
            OutboxState::Held => "held",
            OutboxState::Failed => "failed",
            OutboxState::Stale => "stale",
            OutboxState::Expired => "expired",
            OutboxState::Suppressed => "suppressed",
            OutboxState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        OutboxState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub const ALL: [OutboxState; 10] = [
        OutboxState::Queued,
        OutboxState::Sending,
        OutboxState::Sent,
        OutboxState::Retry,
        OutboxState::Held,
        OutboxState::Failed,
        OutboxState::Stale,
        OutboxState::Expired,
        OutboxState::Suppressed,
        OutboxState::Cancelled,
    ];
}

/// A row claimed for delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub lead_id: LeadId,
    pub template: String,
    pub key: String,
    pub stage: String,
    pub campaign: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// An operator's `outbox retry`: the expiry clock restarts here.
    pub released_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    /// Kept across retries, so a resend after a crash carries the same Message-ID.
    pub message_id: Option<String>,
}

impl Store {
    /// Claims up to `limit` rows due at `now` (queued, held or retry rows whose time
    /// has come, or sending with an expired lease after a crash), oldest first, leasing
    /// them until `now + lease`. Rows of `paused_campaigns` are left alone.
    pub async fn claim_due(
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
                vec!["?"; paused_campaigns.len()].join(", ")
            )
        };
        let sql = format!(
            "UPDATE outbox SET state = 'sending', lease_until = ?, attempts = attempts + 1
             WHERE id IN (
               SELECT id FROM outbox
               WHERE ((state IN ('queued', 'retry', 'held') AND next_attempt_at <= ?)
                  OR (state = 'sending' AND lease_until < ?)){not_paused}
               ORDER BY next_attempt_at, id LIMIT ?)
             RETURNING id, lead_id, template, dedupe_key, stage, campaign, requested_at, attempts, message_id, released_at"
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

    /// A lead's rows still to go (queued, retry, held), as the sender would claim them.
    pub async fn pending_of(&self, lead: LeadId) -> Result<Vec<Claimed>> {
        let rows = sqlx::query(
            "SELECT id, lead_id, template, dedupe_key, stage, campaign, requested_at, attempts, message_id, released_at
             FROM outbox WHERE lead_id = ? AND state IN ('queued', 'retry', 'held') ORDER BY next_attempt_at, id",
        )
        .bind(lead.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(claimed).collect()
    }

    /// After a crash: rows left `sending` by a sender that is gone go back to `retry`
    /// at once, keeping their Message-ID. Only the one sender of a database may call it.
    pub async fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = 'in flight when the previous sender stopped' WHERE state = 'sending'",
        )
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Rows left `sending` whose own claim has run out go back to `retry`, keeping their
    /// Message-ID; rows still within their claim are left to the sender that holds them.
    pub async fn recover_expired_claims(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = 'in flight when the previous sender stopped' WHERE state = 'sending' AND lease_until < ?",
        )
        .bind(ms(now))
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Claimed rows that a round did not start (sending paused, the daemon stopping)
    /// go back to waiting as they were, with the attempt they did not make undone.
    pub async fn unclaim(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE outbox SET state = CASE WHEN attempts > 1 THEN 'retry' ELSE 'queued' END, lease_until = NULL, attempts = attempts - 1 WHERE state = 'sending' AND id IN ({})",
            vec!["?"; ids.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id);
        }
        Ok(q.execute(self.pool()).await?.rows_affected())
    }

    /// The policy holds a row back until `until`; a hold is not an attempt.
    pub async fn mark_held(&self, id: i64, until: DateTime<Utc>, reason: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'held', next_attempt_at = ?, lease_until = NULL, last_error = ?, attempts = attempts - 1 WHERE id = ?")
            .bind(ms(until))
            .bind(reason)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Emails sent since `since`, per template (the daily capacity counts marketing).
    pub async fn sent_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox WHERE state = 'sent' AND sent_at >= ? GROUP BY template",
        )
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?)
    }

    /// A lead's emails sent since `since`: (row id, template, sent_at).
    pub async fn lead_sent_since(
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

    /// Gives a claimed row its Message-ID unless it has one; returns the row's id.
    pub async fn assign_message_id(&self, id: i64, message_id: &str) -> Result<String> {
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

    pub async fn mark_sent(&self, id: i64, sent_at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'sent', sent_at = ?, ended_at = ?, lease_until = NULL, last_error = NULL WHERE id = ?")
            .bind(ms(sent_at))
            .bind(ms(sent_at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Puts a row back for another attempt at `at`.
    pub async fn mark_retry(&self, id: i64, at: DateTime<Utc>, error: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET state = 'retry', next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?")
            .bind(ms(at))
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends a row without sending it (failed, stale, expired), with the reason.
    pub async fn mark_final(
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

    /// Rows per state, for summaries and tests.
    /// The earliest instant after `after` at which a queued, held or retry row falls
    /// due: where a simulation's sender wakes between evaluation passes.
    pub async fn next_due_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let t: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state IN ('queued', 'retry', 'held') AND next_attempt_at > ?",
        )
        .bind(ms(after))
        .fetch_one(self.pool())
        .await?;
        Ok(t.map(from_ms))
    }

    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// A lead's outbox rows: (template, key, state, requested_at, sent_at, message_id).
    #[allow(clippy::type_complexity)]
    pub async fn outbox_of(
        &self,
        lead: LeadId,
    ) -> Result<
        Vec<(
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<String>,
        )>,
    > {
        let rows: Vec<(String, String, String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT template, dedupe_key, state, requested_at, sent_at, message_id FROM outbox WHERE lead_id = ? ORDER BY requested_at, id",
        )
        .bind(lead.0)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(t, k, s, r, sent, m)| (t, k, s, from_ms(r), sent.map(from_ms), m))
            .collect())
    }
}

impl Store {
    /// Templates of rows still to be sent: a reload may not remove them.
    pub async fn pending_templates(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox WHERE state IN ('queued', 'sending', 'retry', 'held') GROUP BY template ORDER BY template",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Stages that leads are in, with how many: a reload may not remove them.
    pub async fn stages_in_use(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT stage, COUNT(*) FROM leads GROUP BY stage ORDER BY stage")
                .fetch_all(self.pool())
                .await?,
        )
    }
}

/// A row in the column order of `claim_due`'s RETURNING.
fn claimed(r: &sqlx::sqlite::SqliteRow) -> Result<Claimed> {
    Ok(Claimed {
        id: r.try_get(0)?,
        lead_id: LeadId(r.try_get(1)?),
        template: r.try_get(2)?,
        key: r.try_get(3)?,
        stage: r.try_get(4)?,
        campaign: r.try_get(5)?,
        requested_at: from_ms(r.try_get(6)?),
        attempts: r.try_get(7)?,
        message_id: r.try_get(8)?,
        released_at: r.try_get::<Option<i64>, _>(9)?.map(from_ms),
    })
}

/// Which rows an operator command acts on.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub states: Vec<OutboxState>,
    pub template: Option<String>,
    pub lead: Option<LeadId>,
    pub campaign: Option<String>,
}

/// One row as `outbox list` shows it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub lead: LeadId,
    pub email: String,
    pub template: String,
    pub key: String,
    pub state: String,
    pub requested_at: DateTime<Utc>,
    /// For pending rows, the next attempt or release; for ended rows, when they ended.
    pub at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub reason: String,
}

impl OutboxFilter {
    fn clause(&self) -> (String, Vec<String>) {
        let mut sql = String::from(" WHERE 1 = 1");
        let mut binds = Vec::new();
        if !self.states.is_empty() {
            sql.push_str(&format!(
                " AND o.state IN ({})",
                vec!["?"; self.states.len()].join(", ")
            ));
            binds.extend(self.states.iter().map(|s| s.as_str().to_string()));
        }
        if let Some(t) = &self.template {
            sql.push_str(" AND o.template = ?");
            binds.push(t.clone());
        }
        if let Some(l) = self.lead {
            sql.push_str(" AND o.lead_id = ?");
            binds.push(l.0.to_string());
        }
        if let Some(c) = &self.campaign {
            sql.push_str(" AND o.campaign = ?");
            binds.push(c.clone());
        }
        (sql, binds)
    }
}

type ListTuple = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
);

impl Store {
    /// Rows matching `filter`, newest request first, at most `limit`.
    pub async fn outbox_list(&self, filter: &OutboxFilter, limit: i64) -> Result<Vec<OutboxRow>> {
        let (clause, binds) = filter.clause();
        let sql = format!(
            "SELECT o.id, o.lead_id, l.email, o.template, o.dedupe_key, o.state, o.requested_at, o.next_attempt_at, o.ended_at, o.attempts, o.last_error
             FROM outbox o JOIN leads l ON l.id = o.lead_id{clause} ORDER BY o.requested_at DESC, o.id DESC LIMIT ?"
        );
        let mut q = sqlx::query_as::<_, ListTuple>(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.bind(limit).fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, lead, email, template, key, state, req, next, ended, attempts, err)| {
                    let pending = matches!(state.as_str(), "queued" | "retry" | "held" | "sending");
                    OutboxRow {
                        id,
                        lead: LeadId(lead),
                        email,
                        template,
                        key,
                        requested_at: from_ms(req),
                        at: if pending {
                            Some(from_ms(next))
                        } else {
                            ended.map(from_ms)
                        },
                        state,
                        attempts,
                        reason: err.unwrap_or_default(),
                    }
                },
            )
            .collect())
    }

    /// Puts matching rows that did not go (failed, expired, stale, held, retry,
    /// cancelled) back in the queue at `now`, keeping their Message-IDs; the sending
    /// policy and consent still apply. Sent and suppressed rows are never touched.
    pub async fn outbox_retry(&self, filter: &OutboxFilter, now: DateTime<Utc>) -> Result<u64> {
        self.operate(
            filter,
            &["failed", "expired", "stale", "held", "retry", "cancelled"],
            // Due at once, whatever clock the next tick runs on (`--now` may be earlier).
            "state = 'queued', next_attempt_at = 0 * ?, released_at = ?, ended_at = NULL, last_error = 'retried by the operator'",
            now,
        )
        .await
    }

    /// Cancels matching rows that have not gone yet (queued, retry, held).
    pub async fn outbox_cancel(&self, filter: &OutboxFilter, now: DateTime<Utc>) -> Result<u64> {
        self.operate(
            filter,
            &["queued", "retry", "held"],
            "state = 'cancelled', ended_at = ?, lease_until = NULL, last_error = 'cancelled by the operator' , released_at = COALESCE(released_at, ?)",
            now,
        )
        .await
    }

    async fn operate(
        &self,
        filter: &OutboxFilter,
        allowed: &[&str],
        set: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut f = filter.clone();
        f.states = if filter.states.is_empty() {
            allowed
                .iter()
                .filter_map(|s| OutboxState::parse(s))
                .collect()
        } else {
            filter
                .states
                .iter()
                .copied()
                .filter(|s| allowed.contains(&s.as_str()))
                .collect()
        };
        if f.states.is_empty() {
            return Ok(0);
        }
        let (clause, binds) = f.clause();
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
