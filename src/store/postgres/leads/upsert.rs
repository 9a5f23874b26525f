//! The upsert of imported and posted leads, a batch at a time, on PostgreSQL.
//!
//! A batch costs a fixed handful of statements whatever its size, as on SQLite: one
//! look-up of the addresses already stored, then one statement each for the new leads'
//! ids, the new leads, the updated ones, the stage history, the tags and the
//! attributes. Each takes its rows as a few arrays (one per column) read by `UNNEST`,
//! so one statement text serves every batch size and the 65,535-parameter limit never
//! applies. The fold of the rows (the outcome of upserting them one by one) is
//! [`Plan`], shared with the SQLite backend.

use crate::domain::{EmailAddress, StageId};
use crate::store::leads::plan::{Fields, Plan, Target};
use crate::store::postgres::ms;
use crate::store::{LeadUpsert, Result, UpsertResult};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;

/// The id and stage of each stored lead among `emails` (absent ones are left out),
/// in one statement.
pub(in crate::store::postgres) async fn leads_by_email<'e>(
    conn: &mut PgConnection,
    emails: impl IntoIterator<Item = &'e EmailAddress>,
) -> Result<HashMap<String, (i64, String)>> {
    let mut list: Vec<&str> = emails.into_iter().map(EmailAddress::as_str).collect();
    list.sort_unstable();
    list.dedup();
    if list.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT email, id, stage FROM leads WHERE email = ANY($1::text[])")
            .bind(&list)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(e, id, s)| (e, (id, s))).collect())
}

/// [`PgStore::upsert_leads`](crate::store::postgres::PgStore) inside the caller's
/// write transaction (which holds the write lock: the look-up and the writes are a
/// read-then-write), the rows folded into what to write, then written a statement per
/// table.
pub(in crate::store::postgres) async fn upsert_leads_in(
    tx: &mut PgConnection,
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
/// drawn from the identity's sequence first, in ascending order, so the first lead
/// created gets the lowest, as on SQLite, and none has to be matched back to its row.
async fn insert_leads(
    tx: &mut PgConnection,
    creates: &[Fields<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    if creates.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('leads', 'id')) AS id
         FROM generate_series(1, $1) ORDER BY id",
    )
    .bind(creates.len() as i64)
    .fetch_all(&mut *tx)
    .await?;
    let col = |f: for<'b> fn(&'b Fields<'b>) -> Option<&'b str>| {
        creates.iter().map(f).collect::<Vec<_>>()
    };
    let created: Vec<i64> = creates
        .iter()
        .map(|f| ms(f.created_at.unwrap_or(now)))
        .collect();
    sqlx::query(
        "INSERT INTO leads (id, email, name, stage, locale, timezone, created_at, stage_entered_at, updated_at)
         SELECT id, email, name, stage, locale, tz, created, $8, $8
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
           AS r(id, email, name, stage, locale, tz, created)",
    )
    .bind(&ids)
    .bind(col(|f| Some(f.email)))
    .bind(col(|f| f.name))
    .bind(col(|f| Some(f.stage.as_str())))
    .bind(col(|f| f.locale))
    .bind(col(|f| f.timezone))
    .bind(&created)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(ids)
}

/// The batch's stored leads (each once: the plan keeps one entry a lead): name, locale
/// and time zone where given, the stage where moved, `updated_at` always.
async fn update_leads(
    tx: &mut PgConnection,
    updates: &[(i64, Fields<'_>)],
    now: DateTime<Utc>,
) -> Result<()> {
    if updates.is_empty() {
        return Ok(());
    }
    let col = |f: for<'b> fn(&'b Fields<'b>) -> Option<&'b str>| {
        updates.iter().map(|(_, x)| f(x)).collect::<Vec<_>>()
    };
    let ids: Vec<i64> = updates.iter().map(|(id, _)| *id).collect();
    let moved: Vec<bool> = updates.iter().map(|(_, f)| f.moved).collect();
    sqlx::query(
        "UPDATE leads SET name = COALESCE(r.name, leads.name),
           locale = COALESCE(r.locale, leads.locale),
           timezone = COALESCE(r.tz, leads.timezone),
           stage = CASE WHEN r.moved THEN r.stage ELSE leads.stage END,
           stage_entered_at = CASE WHEN r.moved THEN $7 ELSE leads.stage_entered_at END,
           updated_at = $7
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
           AS r(id, name, locale, tz, stage, moved)
         WHERE leads.id = r.id",
    )
    .bind(&ids)
    .bind(col(|f| f.name))
    .bind(col(|f| f.locale))
    .bind(col(|f| f.timezone))
    .bind(col(|f| Some(f.stage.as_str())))
    .bind(&moved)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The batch's stage history entries, in the order they happened (their ids too:
/// the history is read back by time, then id).
async fn write_history(
    tx: &mut PgConnection,
    moves: &[(Target, Option<String>, String, &str)],
    id: impl Fn(Target) -> i64,
    now: DateTime<Utc>,
) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = moves.iter().map(|m| id(m.0)).collect();
    let from: Vec<Option<&str>> = moves.iter().map(|m| m.1.as_deref()).collect();
    let to: Vec<&str> = moves.iter().map(|m| m.2.as_str()).collect();
    let cause: Vec<&str> = moves.iter().map(|m| m.3).collect();
    sqlx::query(
        "INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause)
         SELECT id, from_stage, to_stage, $5, cause
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
           AS r(id, from_stage, to_stage, cause, n)
         ORDER BY n",
    )
    .bind(&ids)
    .bind(&from)
    .bind(&to)
    .bind(&cause)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The rows' tags added to their leads' (a tag already there, or twice in the batch,
/// stays once).
async fn write_tags(
    tx: &mut PgConnection,
    tags: &[(Target, &str)],
    id: impl Fn(Target) -> i64,
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = tags.iter().map(|t| id(t.0)).collect();
    let names: Vec<&str> = tags.iter().map(|t| t.1).collect();
    sqlx::query(
        "INSERT INTO lead_tags (lead_id, tag)
         SELECT * FROM UNNEST($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The rows' attributes merged into their leads' (in row order, so a later row's value
/// of a key wins). PostgreSQL refuses to update one row twice in a statement, so the
/// batch keeps only the last value of each (lead, key) first: the same outcome.
async fn write_attrs(
    tx: &mut PgConnection,
    attrs: &[(Target, &str, String)],
    id: impl Fn(Target) -> i64,
) -> Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<(i64, &str), &str> = HashMap::new();
    for (t, k, v) in attrs {
        last.insert((id(*t), *k), v.as_str());
    }
    let (mut ids, mut keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for (&(lead, k), &v) in &last {
        ids.push(lead);
        keys.push(k);
        values.push(v);
    }
    sqlx::query(
        "INSERT INTO lead_attrs (lead_id, key, value)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])
         ON CONFLICT (lead_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&values)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
