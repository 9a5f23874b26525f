//! Campaign bookkeeping in SQL.

use super::{SqliteStore, from_ms, ms};
use crate::domain::{LeadId, TemplateName};
use crate::store::{Firing, FiringState, Result};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use std::collections::HashSet;

impl SqliteStore {
    pub(in crate::store) async fn campaign_first_seen(
        &self,
        campaign: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        sqlx::query(
            "INSERT INTO campaigns_seen (campaign, first_loaded_at) VALUES (?, ?) ON CONFLICT (campaign) DO NOTHING",
        )
        .bind(campaign)
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        let t: i64 =
            sqlx::query_scalar("SELECT first_loaded_at FROM campaigns_seen WHERE campaign = ?")
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
            sqlx::query_scalar("SELECT first_loaded_at FROM campaigns_seen WHERE campaign = ?")
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
        let r = sqlx::query(
            "SELECT campaign, key, scheduled_at, state, audience, queued, note FROM campaign_firings WHERE campaign = ? AND key = ?",
        )
        .bind(campaign)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(firing).transpose()
    }

    pub(in crate::store) async fn last_firing(&self, campaign: &str) -> Result<Option<Firing>> {
        let r = sqlx::query(
            "SELECT campaign, key, scheduled_at, state, audience, queued, note FROM campaign_firings WHERE campaign = ? ORDER BY scheduled_at DESC LIMIT 1",
        )
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
        sqlx::query(
            "INSERT INTO campaign_firings (campaign, key, scheduled_at, state, started_at) VALUES (?, ?, ?, 'running', ?)
             ON CONFLICT (campaign, key) DO NOTHING",
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (campaign, key) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at,
               audience = excluded.audience, note = excluded.note,
               queued = (SELECT COUNT(*) FROM outbox WHERE campaign = excluded.campaign AND dedupe_key = excluded.key)",
        )
        .bind(campaign)
        .bind(key)
        .bind(ms(scheduled_at))
        .bind(state.as_str())
        .bind(ms(now))
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
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT lead_id FROM outbox WHERE template = ? AND dedupe_key = ?")
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
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for (lead, stage, at) in rows {
            n += sqlx::query(
                "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, campaign, next_attempt_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (lead_id, template, dedupe_key) DO NOTHING",
            )
            .bind(lead.0)
            .bind(template.as_str())
            .bind(key)
            .bind(ms(requested_at))
            .bind(stage)
            .bind(campaign)
            .bind(ms(*at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// A `campaign_firings` row.
fn firing(r: &SqliteRow) -> Result<Firing> {
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
