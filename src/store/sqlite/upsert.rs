//! The upsert of imported and posted leads, a batch at a time.
//!
//! **Why a batch is folded in memory first.** sqlx runs every SQLite statement on its
//! worker thread: a statement per row was a cross-thread round trip per row (75 % of
//! an import's syscall time was futex). Here a batch costs a fixed handful of
//! statements whatever its size: one look-up of the addresses already stored, then one
//! statement each for the new leads, the updated ones, the stage history, the tags and
//! the attributes. Each takes its rows as one JSON array read by `json_each` (one
//! parameter, so one statement text, prepared once and cached by sqlx, serves every
//! batch size). The fold of the rows (the outcome of upserting them one by one) is
//! [`Plan`], shared with the PostgreSQL backend.

use super::ms;
use crate::domain::{EmailAddress, StageId};
use crate::store::leads::plan::{Fields, Plan, Target};
use crate::store::{LeadUpsert, Result, StoreError, UpsertResult};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use std::collections::HashMap;

/// The id and stage of each stored lead among `emails` (absent ones are left out),
/// in one statement. They come back as one JSON row: sqlx hands rows over from its
/// worker thread through a channel of 50, so thousands of rows would cost a thread
/// wake-up every few dozen.
pub(super) async fn leads_by_email<'e>(
    conn: &mut SqliteConnection,
    emails: impl IntoIterator<Item = &'e EmailAddress>,
) -> Result<HashMap<String, (i64, String)>> {
    let mut list: Vec<&str> = emails.into_iter().map(EmailAddress::as_str).collect();
    // In the index's order: each probe starts where the last one ended, on pages
    // SQLite's small cache still holds, not anywhere in an index of a million.
    list.sort_unstable();
    list.dedup();
    if list.is_empty() {
        return Ok(HashMap::new());
    }
    let found: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(leads.email, leads.id, leads.stage))
         FROM jsonb_each(?) AS j JOIN leads ON leads.email = j.value",
    )
    .bind(json(&list))
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<(String, i64, String)> = serde_json::from_str(&found)
        .map_err(|e| StoreError::Corrupt(format!("leads by email: {e}")))?;
    Ok(rows.into_iter().map(|(e, id, s)| (e, (id, s))).collect())
}

/// [`SqliteStore::upsert_leads`](super::SqliteStore) inside the caller's write
/// transaction: the rows folded into what to write (see the module's note), then
/// written a statement per table.
pub(super) async fn upsert_leads_in(
    tx: &mut SqliteConnection,
    rows: &[LeadUpsert],
    initial: &StageId,
    update_stage: bool,
    now: DateTime<Utc>,
) -> Result<Vec<UpsertResult>> {
    let stored = leads_by_email(tx, rows.iter().map(|r| &r.email)).await?;
    let mut plan = Plan::new(stored, update_stage);
    for row in rows {
        plan.add(row, initial);
    }
    let created = insert_leads(tx, &plan.creates, now).await?;
    let id = |t: Target| t.id(&created);
    update_leads(tx, &plan.updates, now).await?;
    write_history(tx, &plan.moves, id, now).await?;
    write_tags(tx, &plan.tags, id).await?;
    write_attrs(tx, &plan.attrs, id).await?;
    Ok(plan.results(&created))
}

/// The batch's new leads, in one statement; their ids in the order given. The ids are
/// the ones SQLite would choose (the highest plus one, in order), given here so that
/// none has to come back row by row: the write lock is held, nobody else inserts.
async fn insert_leads(
    tx: &mut SqliteConnection,
    creates: &[Fields<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    if creates.is_empty() {
        return Ok(Vec::new());
    }
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM leads")
        .fetch_one(&mut *tx)
        .await?;
    let ids: Vec<i64> = (1..=creates.len() as i64).map(|i| last + i).collect();
    let mut rows: Vec<_> = creates
        .iter()
        .zip(&ids)
        .map(|(f, id)| {
            let created = ms(f.created_at.unwrap_or(now));
            (id, f.email, f.name, &f.stage, f.locale, f.timezone, created)
        })
        .collect();
    // Written in address order: the unique index on email takes them in its order.
    rows.sort_unstable_by_key(|r| r.1);
    sqlx::query(
        "INSERT INTO leads (id, email, name, stage, locale, timezone, created_at, stage_entered_at, updated_at)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, ?2, ?2
         FROM jsonb_each(?1)",
    )
    .bind(json(&rows))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(ids)
}

/// The batch's stored leads: name, locale and time zone where given, the stage where
/// moved, `updated_at` always; in one statement.
async fn update_leads(
    tx: &mut SqliteConnection,
    updates: &[(i64, Fields<'_>)],
    now: DateTime<Utc>,
) -> Result<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = updates
        .iter()
        .map(|(id, f)| (id, f.name, f.locale, f.timezone, &f.stage, f.moved))
        .collect();
    sqlx::query(
        "UPDATE leads SET name = COALESCE(j.value ->> 1, leads.name),
           locale = COALESCE(j.value ->> 2, leads.locale),
           timezone = COALESCE(j.value ->> 3, leads.timezone),
           stage = CASE WHEN j.value ->> 5 THEN j.value ->> 4 ELSE leads.stage END,
           stage_entered_at = CASE WHEN j.value ->> 5 THEN ?2 ELSE leads.stage_entered_at END,
           updated_at = ?2
         FROM jsonb_each(?1) AS j WHERE leads.id = j.value ->> 0",
    )
    .bind(json(&rows))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The batch's stage history entries, in the order they happened.
async fn write_history(
    tx: &mut SqliteConnection,
    moves: &[(Target, Option<String>, String, &str)],
    id: impl Fn(Target) -> i64,
    now: DateTime<Utc>,
) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = moves
        .iter()
        .map(|(t, from, to, cause)| (id(*t), from, to, cause))
        .collect();
    sqlx::query(
        "INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause)
         SELECT value ->> 0, value ->> 1, value ->> 2, ?2, value ->> 3 FROM jsonb_each(?1)",
    )
    .bind(json(&rows))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The rows' tags added to their leads' (a tag already there stays).
async fn write_tags(
    tx: &mut SqliteConnection,
    tags: &[(Target, &str)],
    id: impl Fn(Target) -> i64,
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = tags.iter().map(|(t, tag)| (id(*t), tag)).collect();
    // `WHERE true`: without it SQLite would read ON CONFLICT as a join's ON.
    sqlx::query(
        "INSERT INTO lead_tags (lead_id, tag) SELECT value ->> 0, value ->> 1 FROM jsonb_each(?)
         WHERE true ON CONFLICT DO NOTHING",
    )
    .bind(json(&rows))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The rows' attributes merged into their leads' (applied in row order, so a later
/// row's value of a key wins).
async fn write_attrs(
    tx: &mut SqliteConnection,
    attrs: &[(Target, &str, String)],
    id: impl Fn(Target) -> i64,
) -> Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = attrs.iter().map(|(t, k, v)| (id(*t), k, v)).collect();
    sqlx::query(
        "INSERT INTO lead_attrs (lead_id, key, value)
         SELECT value ->> 0, value ->> 1, value ->> 2 FROM jsonb_each(?) WHERE true
         ON CONFLICT (lead_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(json(&rows))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Rows as one JSON array (of arrays: tuples serialise so), the parameter `json_each`
/// reads.
pub(super) fn json(rows: &impl serde::Serialize) -> String {
    serde_json::to_string(rows).expect("rows of strings and numbers always serialise")
}
