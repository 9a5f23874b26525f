//! Leads, their tags, attributes, events and stage history.

use super::{Result, Store, StoreError, from_ms, ms};
use crate::domain::{
    EmailAddress, Event, Lead, LeadId, SendRecord, StageId, TemplateName, Value, ValueMap,
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use std::collections::{BTreeSet, HashMap};

/// A lead as it arrives from a CSV row or the HTTP API.
#[derive(Debug, Clone)]
pub struct LeadUpsert {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub stage: Option<StageId>,
    pub tags: Vec<String>,
    pub locale: Option<String>,
    pub timezone: Option<Tz>,
    pub created_at: Option<DateTime<Utc>>,
    pub attrs: ValueMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertResult {
    Created(LeadId),
    Updated(LeadId),
}

impl UpsertResult {
    pub fn id(&self) -> LeadId {
        match self {
            UpsertResult::Created(id) | UpsertResult::Updated(id) => *id,
        }
    }
}

/// The most recent events of each kind loaded for an evaluation. A lead whose shop
/// sends thousands of page views costs no more to evaluate than one with a thousand:
/// the older ones are only counted (see [`OlderEvents`]).
pub const EVENTS_PER_KIND: i64 = 1000;

/// A lead with the history its rules read, as of one clock.
#[derive(Debug, Clone)]
pub struct LoadedLead {
    pub lead: Lead,
    /// The lead's events up to the clock, at most [`EVENTS_PER_KIND`] of each kind
    /// (the most recent), oldest first.
    pub events: Vec<Event>,
    /// Per kind, the events older than those loaded.
    pub older: HashMap<String, OlderEvents>,
    pub sends: Vec<SendRecord>,
}

/// Events of one kind older than the [`EVENTS_PER_KIND`] loaded: how many, and the
/// time of the first, so `count(kind)` stays exact and `count(kind, within)` is exact
/// whenever its window takes in all of them or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OlderEvents {
    pub count: u64,
    pub first_at: DateTime<Utc>,
}

/// An outbox row a rule asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend {
    pub template: TemplateName,
    pub key: String,
    /// The lead's stage when the rule asked.
    pub stage: StageId,
    pub rule: String,
}

/// Everything one evaluation changed for one lead; committed in one transaction.
#[derive(Debug, Clone)]
pub struct LeadChanges {
    pub before: Lead,
    pub after: Lead,
    /// (from, to, cause) in the order they happened.
    pub moves: Vec<(StageId, StageId, String)>,
    pub sends: Vec<NewSend>,
}

impl LeadChanges {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.sends.is_empty() && self.before == self.after
    }
}

const LEAD_COLUMNS: &str =
    "id, email, name, stage, locale, timezone, created_at, stage_entered_at, unsubscribed_at";

fn lead_from_row(r: &SqliteRow) -> Result<Lead> {
    let email: String = r.try_get("email")?;
    let stage: String = r.try_get("stage")?;
    let tz: Option<String> = r.try_get("timezone")?;
    Ok(Lead {
        id: LeadId(r.try_get("id")?),
        email: EmailAddress::parse(&email).map_err(StoreError::Corrupt)?,
        name: r.try_get("name")?,
        stage: StageId::parse(&stage).map_err(StoreError::Corrupt)?,
        tags: BTreeSet::new(),
        attrs: ValueMap::new(),
        locale: r.try_get("locale")?,
        timezone: tz.and_then(|t| t.parse::<Tz>().ok()),
        created_at: from_ms(r.try_get("created_at")?),
        stage_entered_at: from_ms(r.try_get("stage_entered_at")?),
        unsubscribed_at: r.try_get::<Option<i64>, _>("unsubscribed_at")?.map(from_ms),
    })
}

impl Store {
    /// Inserts or updates a lead by email, with the contract's merge rules: name, locale
    /// and timezone overwrite when given, tags union, attrs merge, and the stage is set
    /// only for a new lead unless `update_stage` (which records the move).
    pub async fn upsert_leads(
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
    /// How many leads the database holds.
    pub async fn lead_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads")
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    /// Finds a lead by its email or its id, as the CLI names one.
    pub async fn find_lead_id(&self, who: &str) -> Result<Option<LeadId>> {
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

    pub async fn lead_id_by_email(&self, email: &EmailAddress) -> Result<Option<LeadId>> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(found.map(LeadId))
    }

    /// Records events; returns how many were stored.
    pub async fn insert_events(
        &self,
        events: &[(LeadId, Event)],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let with_ids: Vec<(LeadId, Event, Option<String>)> =
            events.iter().map(|(l, e)| (*l, e.clone(), None)).collect();
        Ok(self.record_events(&with_ids, now).await?.recorded)
    }

    /// Records events, each with its optional id: an id already recorded for its lead
    /// (or earlier in the same batch) is skipped and counted as a duplicate.
    pub async fn record_events(
        &self,
        events: &[(LeadId, Event, Option<String>)],
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        let mut tx = self.begin_write().await?;
        let r = insert_events_in(&mut tx, events, now).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// Records an open or a click unless the same one (lead, kind and props: what
    /// its token names) was recorded within `window` before `now`. Returns whether it
    /// was recorded; a repeat records nothing.
    pub async fn record_tracking(
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

    /// Updates the answer kept for an idempotency key (a request's final answer, once
    /// known after its own transaction).
    pub async fn idempotency_update(
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

    /// Up to `limit` leads with id > `after`, in id order, with the events and sends at
    /// or before `now`: one page of a tick's stream, so memory stays flat.
    pub async fn load_page(
        &self,
        after: i64,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id > ? ORDER BY id LIMIT ?"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let leads = rows.iter().map(lead_from_row).collect::<Result<Vec<_>>>()?;
        self.attach(leads, now).await
    }

    /// One lead with its history as of `now`.
    pub async fn load_lead(&self, id: LeadId, now: DateTime<Utc>) -> Result<Option<LoadedLead>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?"
        )))
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let lead = lead_from_row(&row)?;
        Ok(self.attach(vec![lead], now).await?.pop())
    }

    /// Fills tags, attrs, events and sends for leads sorted by id, with one query each.
    async fn attach(&self, leads: Vec<Lead>, now: DateTime<Utc>) -> Result<Vec<LoadedLead>> {
        let (Some(lo), Some(hi)) = (leads.first().map(|l| l.id.0), leads.last().map(|l| l.id.0))
        else {
            return Ok(Vec::new());
        };
        let mut out: Vec<LoadedLead> = leads
            .into_iter()
            .map(|lead| LoadedLead {
                lead,
                events: Vec::new(),
                older: HashMap::new(),
                sends: Vec::new(),
            })
            .collect();
        let index: HashMap<i64, usize> = out
            .iter()
            .enumerate()
            .map(|(i, l)| (l.lead.id.0, i))
            .collect();

        for r in sqlx::query("SELECT lead_id, tag FROM lead_tags WHERE lead_id BETWEEN ? AND ?")
            .bind(lo)
            .bind(hi)
            .fetch_all(self.pool())
            .await?
        {
            if let Some(&i) = index.get(&r.try_get::<i64, _>(0)?) {
                out[i].lead.tags.insert(r.try_get(1)?);
            }
        }
        for r in
            sqlx::query("SELECT lead_id, key, value FROM lead_attrs WHERE lead_id BETWEEN ? AND ?")
                .bind(lo)
                .bind(hi)
                .fetch_all(self.pool())
                .await?
        {
            if let Some(&i) = index.get(&r.try_get::<i64, _>(0)?) {
                let raw: String = r.try_get(2)?;
                let v = Value::from_json(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("attribute value {raw}: {e}")))?;
                out[i].lead.attrs.insert(r.try_get(1)?, v);
            }
        }
        for r in sqlx::query(
            "SELECT lead_id, kind, at, props FROM (
               SELECT lead_id, kind, at, props, id,
                      ROW_NUMBER() OVER (PARTITION BY lead_id, kind ORDER BY at DESC, id DESC) AS recent
               FROM events WHERE lead_id BETWEEN ? AND ? AND at <= ?)
             WHERE recent <= ? ORDER BY lead_id, at, id",
        )
        .bind(lo)
        .bind(hi)
        .bind(ms(now))
        .bind(EVENTS_PER_KIND)
        .fetch_all(self.pool())
        .await?
        {
            if let Some(&i) = index.get(&r.try_get::<i64, _>(0)?) {
                let raw: String = r.try_get(3)?;
                let props = Value::map_from_json(&raw).map_err(|e| StoreError::Corrupt(format!("event props {raw}: {e}")))?;
                out[i].events.push(Event { kind: r.try_get(1)?, at: from_ms(r.try_get(2)?), props });
            }
        }
        for r in sqlx::query(
            "SELECT lead_id, kind, COUNT(*) - ?, MIN(at) FROM events
             WHERE lead_id BETWEEN ? AND ? AND at <= ?
             GROUP BY lead_id, kind HAVING COUNT(*) > ?",
        )
        .bind(EVENTS_PER_KIND)
        .bind(lo)
        .bind(hi)
        .bind(ms(now))
        .bind(EVENTS_PER_KIND)
        .fetch_all(self.pool())
        .await?
        {
            if let Some(&i) = index.get(&r.try_get::<i64, _>(0)?) {
                out[i].older.insert(
                    r.try_get(1)?,
                    OlderEvents {
                        count: r.try_get::<i64, _>(2)? as u64,
                        first_at: from_ms(r.try_get(3)?),
                    },
                );
            }
        }
        for r in sqlx::query(
            "SELECT lead_id, template, dedupe_key, requested_at FROM outbox WHERE lead_id BETWEEN ? AND ? AND requested_at <= ? ORDER BY lead_id, requested_at, id",
        )
        .bind(lo)
        .bind(hi)
        .bind(ms(now))
        .fetch_all(self.pool())
        .await?
        {
            if let Some(&i) = index.get(&r.try_get::<i64, _>(0)?) {
                let t: String = r.try_get(1)?;
                out[i].sends.push(SendRecord {
                    template: TemplateName::parse(&t).map_err(StoreError::Corrupt)?,
                    key: r.try_get(2)?,
                    requested_at: from_ms(r.try_get(3)?),
                });
            }
        }
        Ok(out)
    }

    /// Commits what one evaluation changed for one lead, in one transaction. Returns
    /// how many outbox rows were new (a dedupe key already present adds nothing).
    pub async fn apply(&self, c: &LeadChanges, now: DateTime<Utc>) -> Result<usize> {
        self.apply_all(std::slice::from_ref(c), now).await
    }

    /// Commits the changes of several leads (a page of a pass) in one transaction:
    /// each lead's changes stay all-or-nothing, and the page pays for one commit.
    pub async fn apply_all(&self, changes: &[LeadChanges], now: DateTime<Utc>) -> Result<usize> {
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

    /// The stage history of a lead: (from, to, at, cause).
    pub async fn stage_history(
        &self,
        id: LeadId,
    ) -> Result<Vec<(Option<String>, String, DateTime<Utc>, String)>> {
        let rows: Vec<(Option<String>, String, i64, String)> =
            sqlx::query_as("SELECT from_stage, to_stage, at, cause FROM stage_history WHERE lead_id = ? ORDER BY at, id")
                .bind(id.0)
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(f, t, a, c)| (f, t, from_ms(a), c))
            .collect())
    }
}

/// One lead's changes, inside the caller's transaction.
async fn apply_one(
    tx: &mut sqlx::SqliteConnection,
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
        sqlx::query("INSERT INTO lead_tags (lead_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
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

async fn insert_history(
    tx: &mut sqlx::SqliteConnection,
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

async fn upsert_attr(
    tx: &mut sqlx::SqliteConnection,
    lead: i64,
    key: &str,
    v: &Value,
) -> Result<()> {
    sqlx::query("INSERT INTO lead_attrs (lead_id, key, value) VALUES (?, ?, ?) ON CONFLICT (lead_id, key) DO UPDATE SET value = excluded.value")
        .bind(lead)
        .bind(key)
        .bind(v.to_json())
        .execute(tx)
        .await?;
    Ok(())
}

/// [`Store::upsert_leads`] inside the caller's write transaction.
pub(crate) async fn upsert_leads_in(
    tx: &mut sqlx::SqliteConnection,
    rows: &[LeadUpsert],
    initial: &StageId,
    update_stage: bool,
    now: DateTime<Utc>,
) -> Result<Vec<UpsertResult>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, stage FROM leads WHERE email = ?")
                .bind(row.email.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            None => {
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
                out.push(UpsertResult::Created(LeadId(id)));
                id
            }
            Some((id, stage)) => {
                sqlx::query(
                    "UPDATE leads SET name = COALESCE(?, name), locale = COALESCE(?, locale),
                     timezone = COALESCE(?, timezone), updated_at = ? WHERE id = ?",
                )
                .bind(&row.name)
                .bind(&row.locale)
                .bind(row.timezone.map(|t| t.name().to_string()))
                .bind(ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if update_stage
                    && let Some(new) = &row.stage
                    && new.as_str() != stage
                {
                    sqlx::query("UPDATE leads SET stage = ?, stage_entered_at = ? WHERE id = ?")
                        .bind(new.as_str())
                        .bind(ms(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    insert_history(
                        tx,
                        id,
                        Some(&stage),
                        new.as_str(),
                        now,
                        "import --update-stage",
                    )
                    .await?;
                }
                out.push(UpsertResult::Updated(LeadId(id)));
                id
            }
        };
        for tag in &row.tags {
            sqlx::query(
                "INSERT INTO lead_tags (lead_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        }
        for (k, v) in &row.attrs {
            upsert_attr(tx, id, k, v).await?;
        }
    }
    Ok(out)
}

/// How many events a batch recorded, and how many it skipped as already recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub recorded: usize,
    pub duplicates: usize,
}

/// [`Store::record_events`] inside the caller's write transaction.
pub(crate) async fn insert_events_in(
    tx: &mut sqlx::SqliteConnection,
    events: &[(LeadId, Event, Option<String>)],
    now: DateTime<Utc>,
) -> Result<Recorded> {
    let mut r = Recorded::default();
    for (lead, e, id) in events {
        // The only unique index on events is (lead_id, external_id) for ids given.
        let done = sqlx::query(
            "INSERT INTO events (lead_id, kind, at, props, recorded_at, external_id) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(lead.0)
        .bind(&e.kind)
        .bind(ms(e.at))
        .bind(Value::map_to_json(&e.props))
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 1 {
            r.recorded += 1;
        } else {
            r.duplicates += 1;
        }
    }
    Ok(r)
}

/// How long a request's answer is kept for its `Idempotency-Key`.
pub const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::hours(24);

/// A request's `Idempotency-Key`: the endpoint, the key and the hash of the body.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub endpoint: String,
    pub key: String,
    pub hash: String,
}

/// What the store knows of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Not seen within 24 h: do the work.
    Fresh,
    /// Seen with the same body: answer this again, record nothing.
    Same { status: u16, response: String },
    /// Seen with another body.
    Conflict,
}

/// Looks a key up, inside the write transaction that will do the work.
pub(crate) async fn idempotency_lookup(
    tx: &mut sqlx::SqliteConnection,
    k: &IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<Replay> {
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE endpoint = ? AND key = ? AND created_at > ?",
    )
    .bind(&k.endpoint)
    .bind(&k.key)
    .bind(ms(now - IDEMPOTENCY_TTL))
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match row {
        None => Replay::Fresh,
        Some((hash, status, response)) if hash == k.hash => Replay::Same {
            status: u16::try_from(status).unwrap_or(200),
            response,
        },
        Some(_) => Replay::Conflict,
    })
}

/// Keeps a request's answer under its key, in the transaction that did the work; keys
/// older than 24 h are dropped on the way.
pub(crate) async fn idempotency_save(
    tx: &mut sqlx::SqliteConnection,
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
