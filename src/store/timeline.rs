//! What happened in a window of time, read back for `simulate` (and later `report`):
//! outbox rows with their outcome, stage moves, and the events that make rules react.

use super::{Result, Store, from_ms, ms};
use crate::domain::LeadId;
use chrono::{DateTime, Utc};
use std::path::Path;

/// One outbox row as the timeline shows it.
#[derive(Debug, Clone)]
pub struct SendRow {
    pub lead: LeadId,
    pub email: String,
    pub template: String,
    pub key: String,
    pub state: String,
    pub requested_at: DateTime<Utc>,
    /// When it reached its end state (sent, stale, expired, failed); `None` while pending.
    pub ended_at: Option<DateTime<Utc>>,
    /// The rule or campaign that asked for it.
    pub by: String,
    /// Why it ended as it did, or why it is waiting.
    pub detail: String,
}

/// One stage move.
#[derive(Debug, Clone)]
pub struct MoveRow {
    pub lead: LeadId,
    pub email: String,
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
    pub cause: String,
}

type SendTuple = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Outbox rows requested or ended at or after `since`, oldest first.
    pub async fn sends_since(&self, since: DateTime<Utc>) -> Result<Vec<SendRow>> {
        let rows: Vec<SendTuple> = sqlx::query_as(
            "SELECT o.lead_id, l.email, o.template, o.dedupe_key, o.state, o.requested_at, o.ended_at, o.rule, o.campaign, o.last_error \
             FROM outbox o JOIN leads l ON l.id = o.lead_id \
             WHERE o.requested_at >= ? OR o.ended_at >= ? ORDER BY o.requested_at, o.id",
        )
        .bind(ms(since))
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(lead, email, template, key, state, req, ended, rule, campaign, error)| SendRow {
                    lead: LeadId(lead),
                    email,
                    template,
                    key,
                    state,
                    requested_at: from_ms(req),
                    ended_at: ended.map(from_ms),
                    // Written as stage_history's `cause` is, so both read alike.
                    by: campaign
                        .map(|c| format!("campaign:{c}"))
                        .or(rule.map(|r| format!("rule:{r}")))
                        .unwrap_or_default(),
                    detail: error.unwrap_or_default(),
                },
            )
            .collect())
    }

    /// Stage moves (not first entries) at or after `since`, oldest first.
    pub async fn moves_since(&self, since: DateTime<Utc>) -> Result<Vec<MoveRow>> {
        let rows: Vec<(i64, String, String, String, i64, String)> = sqlx::query_as(
            "SELECT h.lead_id, l.email, h.from_stage, h.to_stage, h.at, h.cause \
             FROM stage_history h JOIN leads l ON l.id = h.lead_id \
             WHERE h.from_stage IS NOT NULL AND h.at >= ? ORDER BY h.at, h.id",
        )
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(lead, email, from, to, at, cause)| MoveRow {
                lead: LeadId(lead),
                email,
                from,
                to,
                at: from_ms(at),
                cause,
            })
            .collect())
    }

    /// Every lead's current stage, by id.
    pub async fn stages(&self) -> Result<Vec<(LeadId, String)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, stage FROM leads ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|(id, s)| (LeadId(id), s)).collect())
    }

    /// Each (time, lead) with an event in `(after, until]`: the moments the rules react.
    pub async fn event_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, LeadId)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT DISTINCT at, lead_id FROM events WHERE at > ? AND at <= ? ORDER BY at, lead_id",
        )
        .bind(ms(after))
        .bind(ms(until))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, lead)| (from_ms(at), LeadId(lead)))
            .collect())
    }

    /// A consistent copy of the whole database into a new SQLite file (`VACUUM INTO`),
    /// taken while others may be writing: simulate's scratch copy.
    pub async fn copy_into(&self, path: &Path) -> Result<()> {
        sqlx::query("VACUUM INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
