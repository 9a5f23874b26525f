//! Leads loaded for evaluation: a page of leads, then their tags, attributes, recent
//! events, older-event counts and sends, one query each for the whole page (never one
//! per lead: a pass over a million leads pays per page). A page is a range of ids (a
//! pass) or a list of them (the leads of an event batch).
//!
//! These reads are the pass's hot path, so they do not go through the driver's
//! statement interface, which runs each statement on the connection's worker thread
//! and hands every result row across threads (a page brings thousands of event rows;
//! at that rate the hand-over, not SQLite, was the pass's cost). They run on the
//! pooled connection's own handle instead ([`raw::with_handle`]; one lead, as the
//! sender loads it per email, on the calling thread), synchronously, in one read
//! transaction: every query of a page sees the same snapshot.

use super::{SqliteStore, from_ms, ms, placeholders, raw};
use crate::domain::{EVENTS_PER_KIND, EmailAddress, Lead, LeadId, LoadedLead, StageId, ValueMap};
use crate::store::loading::{Loading, add_event, add_send, add_tag_or_attr};
use crate::store::{Result, StoreError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, Row, params_from_iter};
use std::collections::BTreeSet;

const LEAD_COLUMNS: &str =
    "id, email, name, stage, locale, timezone, created_at, stage_entered_at, unsubscribed_at";

/// A text column, borrowed from the row.
fn text<'r>(r: &'r Row, i: usize) -> Result<&'r str> {
    r.get_ref(i)?
        .as_str()
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn lead_from_row(r: &Row) -> Result<Lead> {
    let tz: Option<String> = r.get(5)?;
    Ok(Lead {
        id: LeadId(r.get(0)?),
        email: EmailAddress::parse(text(r, 1)?).map_err(StoreError::Corrupt)?,
        name: r.get(2)?,
        stage: StageId::parse(text(r, 3)?).map_err(StoreError::Corrupt)?,
        tags: BTreeSet::new(),
        attrs: ValueMap::new(),
        locale: r.get(4)?,
        timezone: tz.and_then(|t| t.parse::<Tz>().ok()),
        created_at: from_ms(r.get(6)?),
        stage_entered_at: from_ms(r.get(7)?),
        unsubscribed_at: r.get::<_, Option<i64>>(8)?.map(from_ms),
    })
}

/// The leads of `SELECT … FROM leads WHERE {condition}`, with `args` bound in order.
fn select_leads(c: &Connection, condition: &str, args: Vec<i64>) -> Result<Vec<Lead>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE {condition}"
    ))?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut leads = Vec::new();
    while let Some(r) = rows.next()? {
        leads.push(lead_from_row(r)?);
    }
    Ok(leads)
}

/// The most ids bound in one `IN (…)` list: well under SQLite's limit on variables,
/// and a page's worth.
const IDS_PER_QUERY: usize = 500;

/// Which leads a page's queries cover: the ids `lo..=hi` (a pass's page, where every
/// id in the range is on it), or these ids (an event batch's leads, anywhere).
enum Scope {
    Range(i64, i64),
    Ids(Vec<i64>),
}

impl Scope {
    /// The condition on `column` that selects the scope's rows; its arguments come
    /// first in [`Scope::args`].
    fn condition(&self, column: &str) -> String {
        match self {
            Scope::Range(..) => format!("{column} BETWEEN ? AND ?"),
            Scope::Ids(ids) => format!("{column} IN ({})", placeholders(ids.len())),
        }
    }

    /// The condition's arguments, then `more`.
    fn args(&self, more: &[i64]) -> Vec<i64> {
        let mut args = match self {
            Scope::Range(lo, hi) => vec![*lo, *hi],
            Scope::Ids(ids) => ids.clone(),
        };
        args.extend_from_slice(more);
        args
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

    /// Runs `sql` with `args` and hands each row to the lead of its first column
    /// (rows of an id in the range that is not on the page are skipped).
    fn each_row(
        &mut self,
        c: &Connection,
        sql: &str,
        args: Vec<i64>,
        mut add: impl FnMut(&mut LoadedLead, &Row) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = c.prepare(sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            if let Some(l) = self.loading.lead(r.get(0)?) {
                add(l, r)?;
            }
        }
        Ok(())
    }

    /// Fills tags, attrs, events and sends.
    fn attach(mut self, c: &Connection, now: i64) -> Result<Vec<LoadedLead>> {
        self.attach_tags_and_attrs(c)?;
        self.attach_events(c, now)?;
        self.attach_sends(c, now)?;
        Ok(self.loading.into_leads())
    }

    /// Tags and attributes in one query: a tag is a row without a value.
    fn attach_tags_and_attrs(&mut self, c: &Connection) -> Result<()> {
        let sql = format!(
            "SELECT lead_id, key, value FROM lead_attrs WHERE {0}
             UNION ALL SELECT lead_id, tag, NULL FROM lead_tags WHERE {0}",
            self.scope.condition("lead_id")
        );
        let mut args = self.scope.args(&[]);
        args.extend(self.scope.args(&[]));
        self.each_row(c, &sql, args, |l, r| {
            let value = r.get_ref(2)?.as_str_or_null();
            let value = value.map_err(|e| StoreError::Corrupt(format!("attribute value: {e}")))?;
            add_tag_or_attr(l, r.get(1)?, value)
        })
    }

    /// The most recent [`EVENTS_PER_KIND`] events of each kind up to `now`, oldest
    /// first; and per kind with more, how many more and the first.
    ///
    /// Almost every lead has fewer events than that in all: theirs are read by a plain
    /// scan of the `(lead_id, at)` index, already in order. Only the few leads over the
    /// cap (found by counting the same index, without reading a row) pay for the
    /// windowed query that ranks and counts per kind, which sorts every event it reads
    /// and costs ten times the scan.
    fn attach_events(&mut self, c: &Connection, now: i64) -> Result<()> {
        let heavy = self.leads_over_cap(c, now)?;
        let light = if heavy.is_empty() {
            String::new()
        } else {
            format!("AND lead_id NOT IN ({})", placeholders(heavy.len()))
        };
        let sql = format!(
            "SELECT lead_id, kind, at, props, 0, 0 FROM events
             WHERE {} AND at <= ? {light} ORDER BY lead_id, at, id",
            self.scope.condition("lead_id")
        );
        let mut args = self.scope.args(&[now]);
        args.extend_from_slice(&heavy);
        self.each_row(c, &sql, args, add_event_row)?;
        if heavy.is_empty() {
            return Ok(());
        }
        let heavy = Scope::Ids(heavy);
        let sql = format!(
            "SELECT lead_id, kind, at, props, total, first FROM (
               SELECT lead_id, kind, at, props, id,
                      ROW_NUMBER() OVER (PARTITION BY lead_id, kind ORDER BY at DESC, id DESC) AS recent,
                      COUNT(*) OVER (PARTITION BY lead_id, kind) AS total,
                      MIN(at) OVER (PARTITION BY lead_id, kind) AS first
               FROM events WHERE {} AND at <= ?)
             WHERE recent <= ? ORDER BY lead_id, at, id",
            heavy.condition("lead_id")
        );
        self.each_row(c, &sql, heavy.args(&[now, EVENTS_PER_KIND]), add_event_row)
    }

    /// The page's leads with more than [`EVENTS_PER_KIND`] events up to `now` (of
    /// all kinds together: a bound on each kind's), counted on the index alone.
    fn leads_over_cap(&self, c: &Connection, now: i64) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT lead_id FROM events WHERE {} AND at <= ?
             GROUP BY lead_id HAVING COUNT(*) > ?",
            self.scope.condition("lead_id")
        );
        let mut stmt = c.prepare(&sql)?;
        let ids = stmt
            .query_map(
                params_from_iter(self.scope.args(&[now, EVENTS_PER_KIND])),
                |r| r.get(0),
            )?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    /// The outbox rows asked for up to `now`, as rules count them.
    fn attach_sends(&mut self, c: &Connection, now: i64) -> Result<()> {
        let sql = format!(
            "SELECT lead_id, template, dedupe_key, requested_at FROM outbox
             WHERE {} AND requested_at <= ? ORDER BY lead_id, requested_at, id",
            self.scope.condition("lead_id")
        );
        self.each_row(c, &sql, self.scope.args(&[now]), |l, r| {
            add_send(l, text(r, 1)?, r.get(2)?, from_ms(r.get(3)?))
        })
    }
}

/// An event row `(lead_id, kind, at, props, total, first)` to its lead.
fn add_event_row(l: &mut LoadedLead, r: &Row) -> Result<()> {
    let (at, first) = (from_ms(r.get(2)?), from_ms(r.get(5)?));
    add_event(l, r.get(1)?, at, text(r, 3)?, r.get(4)?, first)
}

/// The leads found by `condition` (see [`select_leads`]), loaded; `range` as in
/// [`Page::new`].
fn load(
    c: &Connection,
    condition: &str,
    args: Vec<i64>,
    range: bool,
    now: i64,
) -> Result<Vec<LoadedLead>> {
    let leads = select_leads(c, condition, args)?;
    match Page::new(leads, range) {
        Some(page) => page.attach(c, now),
        None => Ok(Vec::new()),
    }
}

impl SqliteStore {
    pub(in crate::store) async fn load_page(
        &self,
        after: i64,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        let now = ms(now);
        raw::with_handle(self.pool(), move |c| {
            load(
                c,
                "id > ? ORDER BY id LIMIT ?",
                vec![after, limit],
                true,
                now,
            )
        })
        .await
    }

    pub(in crate::store) async fn load_leads(
        &self,
        ids: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<Vec<LoadedLead>> {
        let mut ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let now = ms(now);
        raw::with_handle(self.pool(), move |c| {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let condition = format!("id IN ({}) ORDER BY id", placeholders(chunk.len()));
                out.extend(load(c, &condition, chunk.to_vec(), false, now)?);
            }
            Ok(out)
        })
        .await
    }

    pub(in crate::store) async fn load_lead(
        &self,
        id: LeadId,
        now: DateTime<Utc>,
    ) -> Result<Option<LoadedLead>> {
        let now = ms(now);
        raw::with_handle_here(self.pool(), |c| {
            Ok(load(c, "id = ?", vec![id.0], true, now)?.pop())
        })
        .await
    }
}
