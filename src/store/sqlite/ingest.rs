//! Events and `Idempotency-Key`s in SQL.

use super::upsert::{json, upsert_leads_in};
use super::{SqliteStore, ms};
use crate::domain::{Event, LeadId, StageId, Value};
use crate::store::{
    IDEMPOTENCY_TTL, IdempotencyKey, LeadUpsert, Recorded, Replay, Result, UpsertResult,
};
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

impl SqliteStore {
    pub(in crate::store) async fn insert_events(
        &self,
        events: &[(LeadId, Event)],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let with_ids: Vec<(LeadId, Event, Option<String>)> =
            events.iter().map(|(l, e)| (*l, e.clone(), None)).collect();
        Ok(self.record_events(&with_ids, now).await?.recorded)
    }

    pub(in crate::store) async fn record_events(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        let mut tx = self.begin_write().await?;
        let r = insert_events_in(&mut tx, events, now).await?;
        tx.commit().await?;
        Ok(r)
    }

    pub(in crate::store) async fn record_tracking(
        &self,
        lead: LeadId,
        event: &Event,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let props = Value::map_to_json(&event.props);
        let mut tx = self.begin_write().await?;
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM events WHERE lead_id = ? AND at > ? AND at <= ? AND kind = ? AND props = ? LIMIT 1",
        )
        .bind(lead.0)
        .bind(ms(event.at - window))
        .bind(ms(event.at))
        .bind(&event.kind)
        .bind(&props)
        .fetch_optional(&mut *tx)
        .await?;
        if seen.is_some() {
            // Nothing written: ending the transaction is all that is left.
            tx.commit().await?;
            return Ok(false);
        }
        insert_events_in(&mut tx, &[(lead, event.clone(), None)], now).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(in crate::store) async fn upsert_leads_once(
        &self,
        rows: &[LeadUpsert],
        initial: &StageId,
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(&[UpsertResult]) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<String, Replay>> {
        let mut tx = self.begin_write().await?;
        if let Some(seen) = replay_of(&mut tx, key, now).await? {
            // Nothing written: ending the transaction is all that is left.
            tx.commit().await?;
            return Ok(Err(seen));
        }
        let results = upsert_leads_in(&mut tx, rows, initial, false, now).await?;
        let text = answer(&results);
        if let Some(k) = key {
            idempotency_save(&mut tx, k, 200, &text, now).await?;
        }
        tx.commit().await?;
        Ok(Ok(text))
    }

    pub(in crate::store) async fn record_events_once(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(Recorded) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<Recorded, Replay>> {
        let mut tx = self.begin_write().await?;
        if let Some(seen) = replay_of(&mut tx, key, now).await? {
            tx.commit().await?;
            return Ok(Err(seen));
        }
        let recorded = insert_events_in(&mut tx, events, now).await?;
        if let Some(k) = key {
            idempotency_save(&mut tx, k, 200, &answer(recorded), now).await?;
        }
        tx.commit().await?;
        Ok(Ok(recorded))
    }

    pub(in crate::store) async fn idempotency_update(
        &self,
        k: &IdempotencyKey,
        status: u16,
        response: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?, response = ? WHERE endpoint = ? AND key = ? AND request_hash = ?",
        )
        .bind(i64::from(status))
        .bind(response)
        .bind(&k.endpoint)
        .bind(&k.key)
        .bind(&k.hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Records events inside the caller's write transaction, in one statement whatever
/// their number (a statement per event was a cross-thread round trip per event). The
/// only unique index on events is (lead_id, external_id) for ids given: a repeat of
/// one, stored before or earlier in the same batch, is skipped and counted a duplicate.
async fn insert_events_in(
    tx: &mut SqliteConnection,
    events: &[(LeadId, Event, Option<String>)],
    now: DateTime<Utc>,
) -> Result<Recorded> {
    if events.is_empty() {
        return Ok(Recorded::default());
    }
    let mut rows: Vec<_> = events
        .iter()
        .map(|(lead, e, id)| (lead.0, &e.kind, ms(e.at), Value::map_to_json(&e.props), id))
        .collect();
    // By lead (stable: a lead's events keep their order, so the first of a repeated id
    // is the one kept): the index by lead takes them in its order.
    rows.sort_by_key(|r| r.0);
    // `WHERE true`: without it SQLite would read ON CONFLICT as a join's ON.
    let done = sqlx::query(
        "INSERT INTO events (lead_id, kind, at, props, recorded_at, external_id)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ?2, value ->> 4
         FROM jsonb_each(?1) WHERE true ON CONFLICT DO NOTHING",
    )
    .bind(json(&rows))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?
    .rows_affected() as usize;
    Ok(Recorded {
        recorded: done,
        duplicates: events.len() - done,
    })
}

/// What a key already seen says, inside the write transaction that will do the work;
/// `None` when there is no key or it is fresh.
async fn replay_of(
    tx: &mut SqliteConnection,
    key: Option<&IdempotencyKey>,
    now: DateTime<Utc>,
) -> Result<Option<Replay>> {
    let Some(k) = key else { return Ok(None) };
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE endpoint = ? AND key = ? AND created_at > ?",
    )
    .bind(&k.endpoint)
    .bind(&k.key)
    .bind(ms(now - IDEMPOTENCY_TTL))
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match row {
        None => None,
        Some((hash, status, response)) if hash == k.hash => Some(Replay::Same {
            status: u16::try_from(status).unwrap_or(200),
            response,
        }),
        Some(_) => Some(Replay::Conflict),
    })
}

/// Keeps a request's answer under its key, in the transaction that did the work; keys
/// older than [`IDEMPOTENCY_TTL`] are dropped on the way.
async fn idempotency_save(
    tx: &mut SqliteConnection,
    k: &IdempotencyKey,
    status: u16,
    response: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= ?")
        .bind(ms(now - IDEMPOTENCY_TTL))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (endpoint, key, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (endpoint, key) DO UPDATE SET request_hash = excluded.request_hash, status = excluded.status,
           response = excluded.response, created_at = excluded.created_at",
    )
    .bind(&k.endpoint)
    .bind(&k.key)
    .bind(&k.hash)
    .bind(i64::from(status))
    .bind(response)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
