//! Leads in SQL: the upsert of imported and posted leads, look-ups and the stage
//! history (the commit of an evaluation's changes is `apply.rs`).

use super::tx::WriteTx;
use super::{SqliteStore, from_ms, ms, placeholders};
use crate::domain::{EmailAddress, LeadId, StageId, Value};
use crate::store::{HistoryEntry, LeadUpsert, Result, StoreError, UpsertResult};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use std::collections::{HashMap, HashSet};

/// The most leads looked up by one statement (well under SQLite's limit on variables).
const LOOKUPS_PER_QUERY: usize = 500;

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
        let emails: Vec<&str> = named
            .iter()
            .filter_map(|n| n.as_ref().err()?.as_ref().map(EmailAddress::as_str))
            .collect();
        let mut by_id = HashSet::new();
        let mut by_email = HashMap::new();
        for chunk in ids.chunks(LOOKUPS_PER_QUERY) {
            let sql = format!(
                "SELECT id FROM leads WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let q = chunk
                .iter()
                .fold(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), |q, id| {
                    q.bind(*id)
                });
            by_id.extend(
                q.fetch_all(self.pool())
                    .await?
                    .into_iter()
                    .map(|id: i64| id),
            );
        }
        for chunk in emails.chunks(LOOKUPS_PER_QUERY) {
            let sql = format!(
                "SELECT email, id FROM leads WHERE email IN ({})",
                placeholders(chunk.len())
            );
            let q = chunk
                .iter()
                .fold(sqlx::query_as(sqlx::AssertSqlSafe(sql)), |q, e| q.bind(*e));
            let rows: Vec<(String, i64)> = q.fetch_all(self.pool()).await?;
            by_email.extend(rows);
        }
        Ok(named
            .iter()
            .map(|n| match n {
                Ok(id) => by_id.contains(id).then_some(LeadId(*id)),
                Err(Some(email)) => by_email.get(email.as_str()).map(|id| LeadId(*id)),
                Err(None) => None,
            })
            .collect())
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

/// [`SqliteStore::upsert_leads`] inside the caller's write transaction: per row, the
/// lead is found by its address, then created or updated, then given its tags and
/// attributes.
pub(super) async fn upsert_leads_in(
    tx: &mut SqliteConnection,
    rows: &[LeadUpsert],
    initial: &StageId,
    update_stage: bool,
    now: DateTime<Utc>,
) -> Result<Vec<UpsertResult>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let result = match find_by_email(tx, &row.email).await? {
            None => UpsertResult::Created(insert_lead(tx, row, initial, now).await?),
            Some((id, stage)) => {
                update_lead(tx, id, row, now).await?;
                if update_stage
                    && let Some(new) = &row.stage
                    && new.as_str() != stage
                {
                    move_by_import(tx, id, &stage, new, now).await?;
                }
                UpsertResult::Updated(id)
            }
        };
        merge_tags_and_attrs(tx, result.id(), row).await?;
        out.push(result);
    }
    Ok(out)
}

/// The id and stage of the lead with this address, if any.
async fn find_by_email(
    tx: &mut SqliteConnection,
    email: &EmailAddress,
) -> Result<Option<(LeadId, String)>> {
    let found: Option<(i64, String)> =
        sqlx::query_as("SELECT id, stage FROM leads WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    Ok(found.map(|(id, stage)| (LeadId(id), stage)))
}

/// A new lead in its given stage (or `initial`), with its first history entry.
async fn insert_lead(
    tx: &mut SqliteConnection,
    row: &LeadUpsert,
    initial: &StageId,
    now: DateTime<Utc>,
) -> Result<LeadId> {
    let stage = row.stage.as_ref().unwrap_or(initial);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO leads (email, name, stage, locale, timezone, created_at, stage_entered_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(row.email.as_str())
    .bind(&row.name)
    .bind(stage.as_str())
    .bind(&row.locale)
    .bind(row.timezone.map(|t| t.name().to_string()))
    .bind(ms(row.created_at.unwrap_or(now)))
    .bind(ms(now))
    .bind(ms(now))
    .fetch_one(&mut *tx)
    .await?;
    insert_history(tx, id, None, stage.as_str(), now, "import").await?;
    Ok(LeadId(id))
}

/// An existing lead's name, locale and time zone, where the row gives them.
async fn update_lead(
    tx: &mut SqliteConnection,
    id: LeadId,
    row: &LeadUpsert,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE leads SET name = COALESCE(?, name), locale = COALESCE(?, locale),
         timezone = COALESCE(?, timezone), updated_at = ? WHERE id = ?",
    )
    .bind(&row.name)
    .bind(&row.locale)
    .bind(row.timezone.map(|t| t.name().to_string()))
    .bind(ms(now))
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `import --update-stage`: an existing lead moved to the row's stage, recorded.
async fn move_by_import(
    tx: &mut SqliteConnection,
    id: LeadId,
    from: &str,
    to: &StageId,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE leads SET stage = ?, stage_entered_at = ? WHERE id = ?")
        .bind(to.as_str())
        .bind(ms(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    insert_history(
        tx,
        id.0,
        Some(from),
        to.as_str(),
        now,
        "import --update-stage",
    )
    .await
}

/// The row's tags added to the lead's, its attributes merged into the lead's.
async fn merge_tags_and_attrs(
    tx: &mut SqliteConnection,
    id: LeadId,
    row: &LeadUpsert,
) -> Result<()> {
    for tag in &row.tags {
        add_tag(tx, id.0, tag).await?;
    }
    for (k, v) in &row.attrs {
        upsert_attr(tx, id.0, k, v).await?;
    }
    Ok(())
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
