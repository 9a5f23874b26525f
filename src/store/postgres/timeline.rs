//! The timeline of `simulate` in SQL (`copy_into` is in `copy.rs`).

use super::{PgStore, from_ms, ms};
use crate::domain::{EmailAddress, LeadId, TemplateName};
use crate::store::{MoveRow, Origin, OutboxRow, OutboxState, Result, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// The columns of an [`OutboxRow`], with its lead's address.
const OUTBOX_ROW: &str = "SELECT o.id, o.lead_id, l.email, o.template, o.dedupe_key, o.state, o.rule, o.campaign, \
     o.requested_at, o.next_attempt_at, o.sent_at, o.ended_at, o.attempts, o.last_error, o.message_id \
     FROM outbox o JOIN leads l ON l.id = o.lead_id";

impl PgStore {
    pub(in crate::store) async fn sends_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{OUTBOX_ROW} WHERE o.requested_at >= $1 OR o.ended_at >= $1 ORDER BY o.requested_at, o.id"
        )))
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    pub(in crate::store) async fn moves_since(&self, since: DateTime<Utc>) -> Result<Vec<MoveRow>> {
        let rows: Vec<(i64, String, String, String, i64, String)> = sqlx::query_as(
            "SELECT h.lead_id, l.email, h.from_stage, h.to_stage, h.at, h.cause \
             FROM stage_history h JOIN leads l ON l.id = h.lead_id \
             WHERE h.from_stage IS NOT NULL AND h.at >= $1 ORDER BY h.at, h.id",
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

    pub(in crate::store) async fn stages(&self) -> Result<Vec<(LeadId, String)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, stage FROM leads ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|(id, s)| (LeadId(id), s)).collect())
    }

    pub(in crate::store) async fn event_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, LeadId)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT DISTINCT at, lead_id FROM events WHERE at > $1 AND at <= $2 ORDER BY at, lead_id",
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
}

/// A row selected with [`OUTBOX_ROW`]'s columns.
fn outbox_row(r: &PgRow) -> Result<OutboxRow> {
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
