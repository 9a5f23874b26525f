//! Leads in SQL: the upsert of imported and posted leads, look-ups, the commit of an
//! evaluation's changes, and the stage history.

use super::tx::WriteTx;
use super::upsert::{leads_by_email, upsert_leads_in};
use super::{SqliteStore, from_ms, ms};
use crate::domain::{EmailAddress, LeadChanges, LeadId, StageId, Value};
use crate::store::{HistoryEntry, LeadUpsert, Result, StoreError, UpsertResult};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

impl SqliteStore {
    pub(in crate::store) async fn upsert_leads(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        update_stage: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<UpsertResult>> {
        let mut tx: WriteTx = self.begin_write().await?;
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
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE id = ?")
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
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE email = ?")
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

    pub(in crate::store) async fn apply_all(
        &self,
        changes: &[LeadChanges],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut inserted = 0;
        for c in changes {
            inserted += apply_one(&mut tx, c, now).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    pub(in crate::store) async fn stage_history(&self, id: LeadId) -> Result<Vec<HistoryEntry>> {
        let rows: Vec<(Option<String>, String, i64, String)> =
            sqlx::query_as("SELECT from_stage, to_stage, at, cause FROM stage_history WHERE lead_id = ? ORDER BY at, id")
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

    pub(in crate::store) async fn stages_in_use(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT stage, COUNT(*) FROM leads GROUP BY stage ORDER BY stage")
                .fetch_all(self.pool())
                .await?,
        )
    }
}

/// One lead's changes, inside the caller's transaction: its stage, the moves, tags and
/// attributes that differ, and the sends asked for.
async fn apply_one(
    tx: &mut SqliteConnection,
    c: &LeadChanges,
    now: DateTime<Utc>,
) -> Result<usize> {
    let id = c.after.id.0;
    if c.before.stage != c.after.stage || c.before.stage_entered_at != c.after.stage_entered_at {
        sqlx::query(
            "UPDATE leads SET stage = ?, stage_entered_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(c.after.stage.as_str())
        .bind(ms(c.after.stage_entered_at))
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    for (from, to, cause) in &c.moves {
        insert_history(tx, id, Some(from.as_str()), to.as_str(), now, cause).await?;
    }
    for tag in c.after.tags.difference(&c.before.tags) {
        add_tag(tx, id, tag).await?;
    }
    for tag in c.before.tags.difference(&c.after.tags) {
        sqlx::query("DELETE FROM lead_tags WHERE lead_id = ? AND tag = ?")
            .bind(id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
    }
    for (k, v) in &c.after.attrs {
        if c.before.attrs.get(k) != Some(v) {
            upsert_attr(tx, id, k, v).await?;
        }
    }
    for k in c
        .before
        .attrs
        .keys()
        .filter(|k| !c.after.attrs.contains_key(*k))
    {
        sqlx::query("DELETE FROM lead_attrs WHERE lead_id = ? AND key = ?")
            .bind(id)
            .bind(k)
            .execute(&mut *tx)
            .await?;
    }
    let mut inserted = 0;
    for s in &c.sends {
        let r = sqlx::query(
            "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, rule, state, next_attempt_at)
             VALUES (?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT (lead_id, template, dedupe_key) DO NOTHING",
        )
        .bind(id)
        .bind(s.template.as_str())
        .bind(&s.key)
        .bind(ms(now))
        .bind(s.stage.as_str())
        .bind(&s.rule)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        inserted += r.rows_affected() as usize;
    }
    Ok(inserted)
}

async fn add_tag(tx: &mut SqliteConnection, lead: i64, tag: &str) -> Result<()> {
    sqlx::query("INSERT INTO lead_tags (lead_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .bind(lead)
        .bind(tag)
        .execute(tx)
        .await?;
    Ok(())
}

async fn insert_history(
    tx: &mut SqliteConnection,
    lead: i64,
    from: Option<&str>,
    to: &str,
    at: DateTime<Utc>,
    cause: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES (?, ?, ?, ?, ?)")
        .bind(lead)
        .bind(from)
        .bind(to)
        .bind(ms(at))
        .bind(cause)
        .execute(tx)
        .await?;
    Ok(())
}

async fn upsert_attr(tx: &mut SqliteConnection, lead: i64, key: &str, v: &Value) -> Result<()> {
    sqlx::query("INSERT INTO lead_attrs (lead_id, key, value) VALUES (?, ?, ?) ON CONFLICT (lead_id, key) DO UPDATE SET value = excluded.value")
        .bind(lead)
        .bind(key)
        .bind(v.to_json())
        .execute(tx)
        .await?;
    Ok(())
}
