//! PostgreSQL: events and `Idempotency-Key`s.
//!
//! A batch of events is one `INSERT … SELECT FROM UNNEST`, whatever its size. Recording
//! events alone is that one statement, straight on the pool: the only thing it decides
//! (whether an event's id is already there) is decided by the unique index with
//! `ON CONFLICT DO NOTHING`, which waits for a concurrent insert of the same id and then
//! skips it, so concurrent writers count duplicates exactly. A repeated tracking hit and
//! an idempotency key are read before anything is written, and nothing unique would
//! stop a concurrent twin, so those take the write lock, as on SQLite.

use super::leads::upsert::upsert_leads_in;
use super::{PgStore, ms};
use crate::domain::{Event, LeadId, StageId, Value};
use crate::store::{
    IDEMPOTENCY_TTL, IdempotencyKey, LeadUpsert, Recorded, Replay, Result, UpsertResult,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

impl PgStore {
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
        let mut conn = self.pool().acquire().await?;
        insert_events_in(&mut conn, events, now).await
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
            "SELECT id FROM events WHERE lead_id = $1 AND at > $2 AND at <= $3 AND kind = $4 AND props = $5 LIMIT 1",
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
            "UPDATE idempotency_keys SET status = $1, response = $2 WHERE endpoint = $3 AND key = $4 AND request_hash = $5",
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

/// Records events in one statement whatever their number. The only unique index on
/// events is (lead_id, external_id) for ids given: a repeat of one, stored before or
/// earlier in the same batch, is skipped and counted a duplicate. The rows go in by
/// lead, each lead's in the order given (so the first of a repeated id is kept).
async fn insert_events_in(
    conn: &mut PgConnection,
    events: &[(LeadId, Event, Option<String>)],
    now: DateTime<Utc>,
) -> Result<Recorded> {
    if events.is_empty() {
        return Ok(Recorded::default());
    }
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].0); // stable
    let leads: Vec<i64> = order.iter().map(|&i| events[i].0.0).collect();
    let kinds: Vec<&str> = order.iter().map(|&i| events[i].1.kind.as_str()).collect();
    let at: Vec<i64> = order.iter().map(|&i| ms(events[i].1.at)).collect();
    let props: Vec<String> = order
        .iter()
        .map(|&i| Value::map_to_json(&events[i].1.props))
        .collect();
    let ids: Vec<Option<&str>> = order.iter().map(|&i| events[i].2.as_deref()).collect();
    let done = sqlx::query(
        "INSERT INTO events (lead_id, kind, at, props, recorded_at, external_id)
         SELECT lead_id, kind, at, props, $6, external_id
         FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY
           AS r(lead_id, kind, at, props, external_id, n)
         ORDER BY n
         ON CONFLICT DO NOTHING",
    )
    .bind(&leads)
    .bind(&kinds)
    .bind(&at)
    .bind(&props)
    .bind(&ids)
    .bind(ms(now))
    .execute(&mut *conn)
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
    tx: &mut PgConnection,
    key: Option<&IdempotencyKey>,
    now: DateTime<Utc>,
) -> Result<Option<Replay>> {
    let Some(k) = key else { return Ok(None) };
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE endpoint = $1 AND key = $2 AND created_at > $3",
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
    tx: &mut PgConnection,
    k: &IdempotencyKey,
    status: u16,
    response: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
        .bind(ms(now - IDEMPOTENCY_TTL))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (endpoint, key, request_hash, status, response, created_at) VALUES ($1, $2, $3, $4, $5, $6)
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
