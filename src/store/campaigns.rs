//! Campaign bookkeeping: when each campaign was first seen, and each firing's fate.

use super::{Result, Store, from_ms, ms};
use crate::domain::{LeadId, TemplateName};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringState {
    Running,
    Done,
    Skipped,
}

impl FiringState {
    pub fn as_str(self) -> &'static str {
        match self {
            FiringState::Running => "running",
            FiringState::Done => "done",
            FiringState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> FiringState {
        match s {
            "done" => FiringState::Done,
            "skipped" => FiringState::Skipped,
            _ => FiringState::Running,
        }
    }
}

/// A recorded firing.
#[derive(Debug, Clone)]
pub struct Firing {
    pub campaign: String,
    pub key: String,
    pub scheduled_at: DateTime<Utc>,
    pub state: FiringState,
    pub audience: i64,
    pub queued: i64,
    pub note: Option<String>,
}

type FiringTuple = (String, String, i64, String, i64, i64, Option<String>);

impl Store {
    /// When `campaign` was first loaded, recording `now` if it never was.
    pub async fn campaign_first_seen(
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

    /// When `campaign` was first loaded, if it ever was (reads only).
    pub async fn campaign_seen(&self, campaign: &str) -> Result<Option<DateTime<Utc>>> {
        let t: Option<i64> =
            sqlx::query_scalar("SELECT first_loaded_at FROM campaigns_seen WHERE campaign = ?")
                .bind(campaign)
                .fetch_optional(self.pool())
                .await?;
        Ok(t.map(from_ms))
    }

    pub async fn firing(&self, campaign: &str, key: &str) -> Result<Option<Firing>> {
        let r: Option<FiringTuple> = sqlx::query_as(
            "SELECT campaign, key, scheduled_at, state, audience, queued, note FROM campaign_firings WHERE campaign = ? AND key = ?",
        )
        .bind(campaign)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(firing))
    }

    /// The latest recorded firing of `campaign`, by scheduled time.
    pub async fn last_firing(&self, campaign: &str) -> Result<Option<Firing>> {
        let r: Option<FiringTuple> = sqlx::query_as(
            "SELECT campaign, key, scheduled_at, state, audience, queued, note FROM campaign_firings WHERE campaign = ? ORDER BY scheduled_at DESC LIMIT 1",
        )
        .bind(campaign)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(firing))
    }

    /// Claims a firing: `true` if this caller records it now (new) or resumes it (left
    /// `running` by a crash); `false` if it is done or skipped.
    pub async fn begin_firing(
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
    pub async fn finish_firing(
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

    /// Leads that already have an outbox row for (template, key).
    pub async fn leads_with_key(
        &self,
        template: &str,
        key: &str,
    ) -> Result<std::collections::HashSet<LeadId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT lead_id FROM outbox WHERE template = ? AND dedupe_key = ?")
                .bind(template)
                .bind(key)
                .fetch_all(self.pool())
                .await?;
        Ok(ids.into_iter().map(LeadId).collect())
    }

    /// Queues a campaign's email for each (lead, stage, send time); the dedupe key
    /// makes it once per lead and key however often a firing is resumed. Returns the
    /// rows inserted.
    pub async fn enqueue_campaign(
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

fn firing((campaign, key, at, state, audience, queued, note): FiringTuple) -> Firing {
    Firing {
        campaign,
        key,
        scheduled_at: from_ms(at),
        state: FiringState::parse(&state),
        audience,
        queued,
        note,
    }
}
