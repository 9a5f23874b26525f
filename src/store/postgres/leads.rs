//! PostgreSQL: the `leads` concern of the store interface. The upsert of imported and
//! posted leads (`leads/upsert.rs`), their loading for evaluation (`leads/load.rs`) and
//! the commit of an evaluation's changes (`leads/apply.rs`) each have their own file;
//! here are the look-ups and the stage history.

mod apply;
mod load;
pub(super) mod upsert;

use super::{PgStore, from_ms};
use crate::domain::{EmailAddress, LeadId, StageId};
use crate::store::{HistoryEntry, LeadUpsert, Result, StoreError, UpsertResult};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use upsert::{leads_by_email, upsert_leads_in};

impl PgStore {
    /// Under the write lock: the look-up of the stored addresses and the writes are a
    /// read-then-write, and the batch's ids are drawn in one block (SQLite's semantics).
    pub(in crate::store) async fn upsert_leads(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        update_stage: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertResult>> {
        let mut tx = self.begin_write().await?;
        let out = upsert_leads_in(&mut tx, rows, initial, update_stage, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(in crate::store) async fn lead_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads")
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    pub(in crate::store) async fn find_lead_id(&self, who: &str) -> Result<Option<LeadId>> {
        if let Ok(id) = who.trim().parse::<i64>() {
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            return Ok(found.map(LeadId));
        }
        match EmailAddress::parse(who) {
            Ok(email) => self.lead_id_by_email(&email).await,
            Err(_) => Ok(None),
        }
    }

    pub(in crate::store) async fn lead_id_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<LeadId>> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(found.map(LeadId))
    }

    pub(in crate::store) async fn lead_ids_by_email(
        &self,
        emails: &[EmailAddress],
    ) -> Result<Vec<Option<LeadId>>> {
        let mut conn = self.pool().acquire().await?;
        let found = leads_by_email(&mut conn, emails).await?;
        Ok(emails
            .iter()
            .map(|e| found.get(e.as_str()).map(|(id, _)| LeadId(*id)))
            .collect())
    }

    pub(in crate::store) async fn find_lead_ids(
        &self,
        who: &[String],
    ) -> Result<Vec<Option<LeadId>>> {
        // As find_lead_id reads each: digits name an id, anything else an address.
        let named: Vec<Result<i64, Option<EmailAddress>>> = who
            .iter()
            .map(|w| {
                w.trim()
                    .parse::<i64>()
                    .map_err(|_| EmailAddress::parse(w).ok())
            })
            .collect();
        let ids: Vec<i64> = named
            .iter()
            .filter_map(|n| n.as_ref().ok().copied())
            .collect();
        let emails: Vec<EmailAddress> = named
            .iter()
            .filter_map(|n| n.as_ref().err()?.clone())
            .collect();
        let by_id: HashSet<i64> = if ids.is_empty() {
            HashSet::new()
        } else {
            sqlx::query_scalar("SELECT id FROM leads WHERE id = ANY($1::bigint[])")
                .bind(&ids)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .collect()
        };
        let found = self.lead_ids_by_email(&emails).await?;
        let by_email: HashMap<&str, LeadId> = emails
            .iter()
            .zip(found)
            .filter_map(|(e, id)| Some((e.as_str(), id?)))
            .collect();
        Ok(named
            .iter()
            .map(|n| match n {
                Ok(id) => by_id.contains(id).then_some(LeadId(*id)),
                Err(Some(email)) => by_email.get(email.as_str()).copied(),
                Err(None) => None,
            })
            .collect())
    }

    pub(in crate::store) async fn stage_history(&self, id: LeadId) -> Result<Vec<HistoryEntry>> {
        let rows: Vec<(Option<String>, String, i64, String)> = sqlx::query_as(
            "SELECT from_stage, to_stage, at, cause FROM stage_history WHERE lead_id = $1 ORDER BY at, id",
        )
        .bind(id.0)
        .fetch_all(self.pool())
        .await?;
        let stage = |s: &str| StageId::parse(s).map_err(StoreError::Corrupt);
        rows.into_iter()
            .map(|(from, to, at, cause)| {
                Ok(HistoryEntry {
                    from: from.as_deref().map(stage).transpose()?,
                    to: stage(&to)?,
                    at: from_ms(at),
                    cause,
                })
            })
            .collect()
    }

    /// Ordered by the stages' bytes (`COLLATE "C"`), as SQLite orders text.
    pub(in crate::store) async fn stages_in_use(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT stage, COUNT(*) FROM leads GROUP BY stage ORDER BY stage COLLATE \"C\"",
        )
        .fetch_all(self.pool())
        .await?)
    }
}
