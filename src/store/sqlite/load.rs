//! Leads loaded for evaluation: a page of leads, then their tags, attributes, recent
//! events, older-event counts and sends, one query each for the whole page (never one
//! per lead: a pass over a million leads pays per page).

use super::{SqliteStore, from_ms, ms};
use crate::domain::{
    EVENTS_PER_KIND, EmailAddress, Event, Lead, LeadId, LoadedLead, OlderEvents, SendRecord,
    StageId, TemplateName, Value, ValueMap,
};
use crate::store::{Result, StoreError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use std::collections::{BTreeSet, HashMap};

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

/// Leads sorted by id being filled in: each query covers the ids `lo..=hi` and hands
/// each row to its lead.
struct Page {
    leads: Vec<LoadedLead>,
    index: HashMap<i64, usize>,
    lo: i64,
    hi: i64,
}

impl Page {
    /// `None` for no leads.
    fn new(leads: Vec<Lead>) -> Option<Page> {
        let lo = leads.first()?.id.0;
        let hi = leads.last()?.id.0;
        let leads: Vec<LoadedLead> = leads
            .into_iter()
            .map(|lead| LoadedLead {
                lead,
                events: Vec::new(),
                older: HashMap::new(),
                sends: Vec::new(),
            })
            .collect();
        let index = leads
            .iter()
            .enumerate()
            .map(|(i, l)| (l.lead.id.0, i))
            .collect();
        Some(Page {
            leads,
            index,
            lo,
            hi,
        })
    }

    /// The lead of a row whose first column is its lead's id; `None` for an id in
    /// the range that is not on the page.
    fn lead_of(&mut self, r: &SqliteRow) -> Result<Option<&mut LoadedLead>> {
        let id: i64 = r.try_get(0)?;
        Ok(self.index.get(&id).map(|&i| &mut self.leads[i]))
    }
}

impl SqliteStore {
    pub(in crate::store) async fn load_page(
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

    pub(in crate::store) async fn load_lead(
        &self,
        id: LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<LoadedLead>> {
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
        let Some(mut page) = Page::new(leads) else {
            return Ok(Vec::new());
        };
        self.attach_tags(&mut page).await?;
        self.attach_attrs(&mut page).await?;
        self.attach_recent_events(&mut page, now).await?;
        self.attach_older_events(&mut page, now).await?;
        self.attach_sends(&mut page, now).await?;
        Ok(page.leads)
    }

    async fn attach_tags(&self, page: &mut Page) -> Result<()> {
        let rows = sqlx::query("SELECT lead_id, tag FROM lead_tags WHERE lead_id BETWEEN ? AND ?")
            .bind(page.lo)
            .bind(page.hi)
            .fetch_all(self.pool())
            .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                l.lead.tags.insert(r.try_get(1)?);
            }
        }
        Ok(())
    }

    async fn attach_attrs(&self, page: &mut Page) -> Result<()> {
        let rows =
            sqlx::query("SELECT lead_id, key, value FROM lead_attrs WHERE lead_id BETWEEN ? AND ?")
                .bind(page.lo)
                .bind(page.hi)
                .fetch_all(self.pool())
                .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                let raw: String = r.try_get(2)?;
                let v = Value::from_json(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("attribute value {raw}: {e}")))?;
                l.lead.attrs.insert(r.try_get(1)?, v);
            }
        }
        Ok(())
    }

    /// The most recent [`EVENTS_PER_KIND`] events of each kind up to `now`, oldest first.
    async fn attach_recent_events(&self, page: &mut Page, now: DateTime<Utc>) -> Result<()> {
        let rows = sqlx::query(
            "SELECT lead_id, kind, at, props FROM (
               SELECT lead_id, kind, at, props, id,
                      ROW_NUMBER() OVER (PARTITION BY lead_id, kind ORDER BY at DESC, id DESC) AS recent
               FROM events WHERE lead_id BETWEEN ? AND ? AND at <= ?)
             WHERE recent <= ? ORDER BY lead_id, at, id",
        )
        .bind(page.lo)
        .bind(page.hi)
        .bind(ms(now))
        .bind(EVENTS_PER_KIND)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                let raw: String = r.try_get(3)?;
                let props = Value::map_from_json(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("event props {raw}: {e}")))?;
                l.events.push(Event {
                    kind: r.try_get(1)?,
                    at: from_ms(r.try_get(2)?),
                    props,
                });
            }
        }
        Ok(())
    }

    /// Per kind with more than [`EVENTS_PER_KIND`] events, how many more and the first.
    async fn attach_older_events(&self, page: &mut Page, now: DateTime<Utc>) -> Result<()> {
        let rows = sqlx::query(
            "SELECT lead_id, kind, COUNT(*) - ?, MIN(at) FROM events
             WHERE lead_id BETWEEN ? AND ? AND at <= ?
             GROUP BY lead_id, kind HAVING COUNT(*) > ?",
        )
        .bind(EVENTS_PER_KIND)
        .bind(page.lo)
        .bind(page.hi)
        .bind(ms(now))
        .bind(EVENTS_PER_KIND)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                l.older.insert(
                    r.try_get(1)?,
                    OlderEvents {
                        count: r.try_get::<i64, _>(2)? as u64,
                        first_at: from_ms(r.try_get(3)?),
                    },
                );
            }
        }
        Ok(())
    }

    /// The outbox rows asked for up to `now`, as rules count them.
    async fn attach_sends(&self, page: &mut Page, now: DateTime<Utc>) -> Result<()> {
        let rows = sqlx::query(
            "SELECT lead_id, template, dedupe_key, requested_at FROM outbox
             WHERE lead_id BETWEEN ? AND ? AND requested_at <= ? ORDER BY lead_id, requested_at, id",
        )
        .bind(page.lo)
        .bind(page.hi)
        .bind(ms(now))
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                let t: String = r.try_get(1)?;
                l.sends.push(SendRecord {
                    template: TemplateName::parse(&t).map_err(StoreError::Corrupt)?,
                    key: r.try_get(2)?,
                    requested_at: from_ms(r.try_get(3)?),
                });
            }
        }
        Ok(())
    }
}
