//! The timeline of `simulate` in SQL.

use super::outbox::{OUTBOX_ROW, outbox_row};
use super::{SqliteStore, from_ms, ms};
use crate::domain::LeadId;
use crate::store::{MoveRow, OutboxRow, Result};
use chrono::{DateTime, Utc};
use std::path::Path;

impl SqliteStore {
    pub(in crate::store) async fn sends_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{OUTBOX_ROW} WHERE o.requested_at >= ? OR o.ended_at >= ? ORDER BY o.requested_at, o.id"
        )))
        .bind(ms(since))
        .bind(ms(since))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    pub(in crate::store) async fn moves_since(&self, since: DateTime<Utc>) -> Result<Vec<MoveRow>> {
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

    pub(in crate::store) async fn copy_into(&self, path: &Path) -> Result<()> {
        sqlx::query("VACUUM INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
