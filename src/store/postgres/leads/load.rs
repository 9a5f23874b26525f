//! Leads loaded for evaluation on PostgreSQL, as on SQLite: a page of leads, then their
//! tags and attributes, recent events with older-event counts, and sends, one query
//! each for the whole page (never one per lead). A page is a range of ids (a pass) or
//! a list of them (the leads of an event batch, bound as one array).

use crate::domain::{EVENTS_PER_KIND, EmailAddress, Lead, LeadId, LoadedLead, StageId, ValueMap};
use crate::store::loading::{Loading, add_event, add_send, add_tag_or_attr};
use crate::store::postgres::{PgStore, from_ms, ms};
use crate::store::{Result, StoreError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::Row;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Postgres, query::Query};
use std::collections::BTreeSet;

const LEAD_COLUMNS: &str =
    "id, email, name, stage, locale, timezone, created_at, stage_entered_at, unsubscribed_at";

/// The most ids one `load_leads` query takes: a page's worth, as on SQLite.
const IDS_PER_QUERY: usize = 500;

fn lead_from_row(r: &PgRow) -> Result<Lead> {
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

/// Which leads a page's queries cover: the ids `lo..=hi` (a pass's page, where every
/// id in the range is on it), or these ids (an event batch's leads, anywhere).
enum Scope {
    Range(i64, i64),
    Ids(Vec<i64>),
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

impl Scope {
    /// The condition on `column` that selects the scope's rows, on the first
    /// parameters; and the number of the next parameter. Bind with [`Scope::bind`].
    fn condition(&self, column: &str) -> (String, usize) {
        match self {
            Scope::Range(..) => (format!("{column} BETWEEN $1 AND $2"), 3),
            Scope::Ids(_) => (format!("{column} = ANY($1::bigint[])"), 2),
        }
    }

    fn bind<'q>(&self, q: PgQuery<'q>) -> PgQuery<'q> {
        match self {
            Scope::Range(lo, hi) => q.bind(*lo).bind(*hi),
            Scope::Ids(ids) => q.bind(ids.clone()),
        }
    }
}

/// A page's leads being filled in, and the [`Scope`] its queries cover.
struct Page {
    loading: Loading,
    scope: Scope,
}

impl Page {
    /// `None` for no leads. `range`: the leads are every lead between the first and
    /// the last (a pass's page), so the queries may ask for the range.
    fn new(leads: Vec<Lead>, range: bool) -> Option<Page> {
        let lo = leads.first()?.id.0;
        let hi = leads.last()?.id.0;
        let scope = if range {
            Scope::Range(lo, hi)
        } else {
            Scope::Ids(leads.iter().map(|l| l.id.0).collect())
        };
        Some(Page {
            loading: Loading::new(leads),
            scope,
        })
    }

    /// The lead of a row whose first column is its lead's id; `None` for an id in
    /// the range that is not on the page.
    fn lead_of(&mut self, r: &PgRow) -> Result<Option<&mut LoadedLead>> {
        Ok(self.loading.lead(r.try_get(0)?))
    }

    /// Adds event rows `(lead_id, kind, at, props, total, first)`, each lead's oldest
    /// first.
    fn add_events(&mut self, rows: &[PgRow]) -> Result<()> {
        for r in rows {
            if let Some(l) = self.lead_of(r)? {
                let props: String = r.try_get(3)?;
                let (at, first) = (from_ms(r.try_get(2)?), from_ms(r.try_get(5)?));
                add_event(l, r.try_get(1)?, at, &props, r.try_get(4)?, first)?;
            }
        }
        Ok(())
    }
}

impl PgStore {
    pub(in crate::store) async fn load_page(
        &self,
        after: i64,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let leads = rows.iter().map(lead_from_row).collect::<Result<Vec<_>>>()?;
        self.attach(leads, true, now).await
    }

    pub(in crate::store) async fn load_leads(
        &self,
        ids: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        let mut ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LEAD_COLUMNS} FROM leads WHERE id = ANY($1::bigint[]) ORDER BY id"
            )))
            .bind(chunk)
            .fetch_all(self.pool())
            .await?;
            let leads = rows.iter().map(lead_from_row).collect::<Result<Vec<_>>>()?;
            out.extend(self.attach(leads, false, now).await?);
        }
        Ok(out)
    }

    pub(in crate::store) async fn load_lead(
        &self,
        id: LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<LoadedLead>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let lead = lead_from_row(&row)?;
        Ok(self.attach(vec![lead], true, now).await?.pop())
    }

    /// Fills tags, attrs, events and sends for leads sorted by id, with three queries
    /// for the page (`range`: see [`Page::new`]).
    async fn attach(
        &self,
        leads: Vec<Lead>,
        range: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        let Some(mut page) = Page::new(leads, range) else {
            return Ok(Vec::new());
        };
        self.attach_tags_and_attrs(&mut page).await?;
        self.attach_events(&mut page, now).await?;
        self.attach_sends(&mut page, now).await?;
        Ok(page.loading.into_leads())
    }

    /// Tags and attributes in one query: a tag is a row without a value. Both halves
    /// read the scope's parameters.
    async fn attach_tags_and_attrs(&self, page: &mut Page) -> Result<()> {
        let (cond, _) = page.scope.condition("lead_id");
        let sql = format!(
            "SELECT lead_id, key, value FROM lead_attrs WHERE {cond}
             UNION ALL SELECT lead_id, tag, NULL FROM lead_tags WHERE {cond}"
        );
        let rows = page
            .scope
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(self.pool())
            .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                let value: Option<String> = r.try_get(2)?;
                add_tag_or_attr(l, r.try_get(1)?, value.as_deref())?;
            }
        }
        Ok(())
    }

    /// The most recent [`EVENTS_PER_KIND`] events of each kind up to `now`, oldest
    /// first; and per kind with more, how many more and the first. As on SQLite, the
    /// leads under the cap are read by a plain scan of the `(lead_id, at)` index, and
    /// only the leads over it (counted on the index) by the windowed query.
    async fn attach_events(&self, page: &mut Page, now: DateTime<Utc>) -> Result<()> {
        let heavy = self.leads_over_cap(page, now).await?;
        let (cond, n) = page.scope.condition("lead_id");
        let sql = format!(
            "SELECT lead_id, kind, at, props, 0::bigint, 0::bigint FROM events
             WHERE {cond} AND at <= ${n} AND NOT (lead_id = ANY(${}::bigint[]))
             ORDER BY lead_id, at, id",
            n + 1
        );
        let rows = page
            .scope
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .bind(ms(now))
            .bind(&heavy)
            .fetch_all(self.pool())
            .await?;
        page.add_events(&rows)?;
        if heavy.is_empty() {
            return Ok(());
        }
        let heavy = Scope::Ids(heavy);
        let (cond, n) = heavy.condition("lead_id");
        let sql = format!(
            "SELECT lead_id, kind, at, props, total, first FROM (
               SELECT lead_id, kind, at, props, id,
                      ROW_NUMBER() OVER (PARTITION BY lead_id, kind ORDER BY at DESC, id DESC) AS recent,
                      COUNT(*) OVER (PARTITION BY lead_id, kind) AS total,
                      MIN(at) OVER (PARTITION BY lead_id, kind) AS first
               FROM events WHERE {cond} AND at <= ${n}) AS e
             WHERE recent <= ${} ORDER BY lead_id, at, id",
            n + 1
        );
        let rows = heavy
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .bind(ms(now))
            .bind(EVENTS_PER_KIND)
            .fetch_all(self.pool())
            .await?;
        page.add_events(&rows)
    }

    /// The page's leads with more than [`EVENTS_PER_KIND`] events up to `now` (of
    /// all kinds together: a bound on each kind's), counted on the index.
    async fn leads_over_cap(&self, page: &Page, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let (cond, n) = page.scope.condition("lead_id");
        let sql = format!(
            "SELECT lead_id FROM events WHERE {cond} AND at <= ${n}
             GROUP BY lead_id HAVING COUNT(*) > ${}",
            n + 1
        );
        let rows = page
            .scope
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .bind(ms(now))
            .bind(EVENTS_PER_KIND)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// The outbox rows asked for up to `now`, as rules count them.
    async fn attach_sends(&self, page: &mut Page, now: DateTime<Utc>) -> Result<()> {
        let (cond, n) = page.scope.condition("lead_id");
        let sql = format!(
            "SELECT lead_id, template, dedupe_key, requested_at FROM outbox
             WHERE {cond} AND requested_at <= ${n} ORDER BY lead_id, requested_at, id"
        );
        let rows = page
            .scope
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .bind(ms(now))
            .fetch_all(self.pool())
            .await?;
        for r in &rows {
            if let Some(l) = page.lead_of(r)? {
                let template: String = r.try_get(1)?;
                add_send(l, &template, r.try_get(2)?, from_ms(r.try_get(3)?))?;
            }
        }
        Ok(())
    }
}
