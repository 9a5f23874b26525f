//! Campaign bookkeeping in SQL.
//!
//! Written for several daemons on one database, without the write lock: each write
//! is one statement whose `ON CONFLICT` settles a race on the row's key (a firing is
//! recorded once, by whoever inserts it first; a campaign's email is queued once per
//! lead and key), and every read after it sees the committed row.

use super::{PgStore, from_ms, ms};
use crate::domain::{LeadId, TemplateName};
use crate::store::{Firing, FiringState, Result};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::HashSet;

/// The columns of a [`Firing`].
const FIRING: &str =
    "SELECT campaign, key, scheduled_at, state, audience, queued, note FROM campaign_firings";

/// Outbox rows inserted by one statement of `enqueue_campaign`: its arrays are bound
/// as one value each, so this only bounds a statement's size.
const ENQUEUE_BATCH: usize = 5_000;

impl PgStore {
    pub(in crate::store) async fn campaign_first_seen(
        &self,
        campaign: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        sqlx::query(
            "INSERT INTO campaigns_seen (campaign, first_loaded_at) VALUES ($1, $2) ON CONFLICT (campaign) DO NOTHING",
        )
        .bind(campaign)
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        let t: i64 =
            sqlx::query_scalar("SELECT first_loaded_at FROM campaigns_seen WHERE campaign = $1")
                .bind(campaign)
                .fetch_one(self.pool())
                .await?;
        Ok(from_ms(t))
    }

    pub(in crate::store) async fn campaign_seen(
        &self,
        campaign: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let t: Option<i64> =
            sqlx::query_scalar("SELECT first_loaded_at FROM campaigns_seen WHERE campaign = $1")
                .bind(campaign)
                .fetch_optional(self.pool())
                .await?;
        Ok(t.map(from_ms))
    }

    pub(in crate::store) async fn firing(
        &self,
        campaign: &str,
        key: &str,
    ) -> Result<Option<Firing>> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{FIRING} WHERE campaign = $1 AND key = $2"
        )))
        .bind(campaign)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(firing).transpose()
    }

    pub(in crate::store) async fn last_firing(&self, campaign: &str) -> Result<Option<Firing>> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{FIRING} WHERE campaign = $1 ORDER BY scheduled_at DESC LIMIT 1"
        )))
        .bind(campaign)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(firing).transpose()
    }

    pub(in crate::store) async fn begin_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // Several daemons at once: one INSERT records the firing, the others find its
        // row (the conflict waits for the inserting transaction) and leave it as is.
        sqlx::query(
            "INSERT INTO campaign_firings (campaign, key, scheduled_at, state, started_at)
             VALUES ($1, $2, $3, 'running', $4) ON CONFLICT (campaign, key) DO NOTHING",
        )
        .bind(campaign)
        .bind(key)
        .bind(ms(scheduled_at))
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(self
            .firing(campaign, key)
            .await?
            .is_some_and(|f| f.state == FiringState::Running))
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::store) async fn finish_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        state: FiringState,
        audience: i64,
        queued: i64,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO campaign_firings (campaign, key, scheduled_at, state, started_at, finished_at, audience, queued, note)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)
             ON CONFLICT (campaign, key) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at,
               audience = excluded.audience, note = excluded.note,
               queued = (SELECT COUNT(*) FROM outbox WHERE campaign = excluded.campaign AND dedupe_key = excluded.key)",
        )
        .bind(campaign)
        .bind(key)
        .bind(ms(scheduled_at))
        .bind(state.as_str())
        .bind(ms(now))
        .bind(audience)
        .bind(queued)
        .bind(note)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn leads_with_key(
        &self,
        template: &str,
        key: &str,
    ) -> Result<HashSet<LeadId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT lead_id FROM outbox WHERE template = $1 AND dedupe_key = $2",
        )
        .bind(template)
        .bind(key)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(LeadId).collect())
    }

    pub(in crate::store) async fn enqueue_campaign(
        &self,
        campaign: &str,
        template: &TemplateName,
        key: &str,
        rows: &[(LeadId, String, DateTime<Utc>)],
        requested_at: DateTime<Utc>,
    ) -> Result<u64> {
        // No write lock: the dedupe key's ON CONFLICT DO NOTHING lets each (lead,
        // template, key) in once, whoever else inserts it at the same time. One
        // transaction, as on SQLite: all of `rows` are queued or none.
        let mut tx = self.begin().await?;
        let mut n = 0;
        for batch in rows.chunks(ENQUEUE_BATCH) {
            let leads: Vec<i64> = batch.iter().map(|(l, _, _)| l.0).collect();
            let stages: Vec<&str> = batch.iter().map(|(_, s, _)| s.as_str()).collect();
            let due: Vec<i64> = batch.iter().map(|(_, _, at)| ms(*at)).collect();
            // WITH ORDINALITY and ORDER BY: ids are given in the order of `rows`.
            n += sqlx::query(
                "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, campaign, next_attempt_at)
                 SELECT u.lead, $4, $5, $6, u.stage, $7, u.due
                 FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) WITH ORDINALITY AS u(lead, stage, due, i)
                 ORDER BY u.i
                 ON CONFLICT (lead_id, template, dedupe_key) DO NOTHING",
            )
            .bind(leads)
            .bind(stages)
            .bind(due)
            .bind(template.as_str())
            .bind(key)
            .bind(ms(requested_at))
            .bind(campaign)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// A `campaign_firings` row.
fn firing(r: &PgRow) -> Result<Firing> {
    Ok(Firing {
        campaign: r.try_get("campaign")?,
        key: r.try_get("key")?,
        scheduled_at: from_ms(r.try_get("scheduled_at")?),
        state: FiringState::parse(r.try_get("state")?)?,
        audience: r.try_get("audience")?,
        queued: r.try_get("queued")?,
        note: r.try_get("note")?,
    })
}
