//! The commit of evaluations' changes: a page of leads in one transaction, written with
//! a few multi-row statements per table (stage, moves, tags, attributes, sends), never
//! several statements per lead. The driver runs each statement on its worker thread,
//! so a statement per row costs a cross-thread round trip per row; a page of 500 leads
//! that each queue an email costs one `INSERT` here.

use super::{SqliteStore, ms};
use crate::domain::LeadChanges;
use crate::store::Result;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

/// The most rows one statement writes: full statements share one prepared statement,
/// and the variables stay well under SQLite's limit.
const ROWS_PER_STATEMENT: usize = 250;

/// One bound value of a row.
#[derive(Clone, Copy)]
enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

/// The rows of one multi-row statement: `head`, then `VALUES` and a `row` template for
/// each row (its `?` bound in order from the row's values), then `tail`.
struct Batch<'a> {
    head: &'static str,
    row: &'static str,
    tail: &'static str,
    rows: Vec<Vec<Arg<'a>>>,
}

impl<'a> Batch<'a> {
    fn new(head: &'static str, row: &'static str, tail: &'static str) -> Batch<'a> {
        Batch {
            head,
            row,
            tail,
            rows: Vec::new(),
        }
    }

    /// Runs the statements (none for no rows); returns the rows they changed.
    async fn run(&self, tx: &mut SqliteConnection) -> Result<u64> {
        let mut changed = 0;
        for chunk in self.rows.chunks(ROWS_PER_STATEMENT) {
            let values = vec![self.row; chunk.len()].join(", ");
            let sql = format!("{} VALUES {values} {}", self.head, self.tail);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for arg in chunk.iter().flatten() {
                q = match *arg {
                    Arg::Int(v) => q.bind(v),
                    Arg::Text(v) => q.bind(v),
                };
            }
            changed += q.execute(&mut *tx).await?.rows_affected();
        }
        Ok(changed)
    }
}

/// Every table's rows for a page of changes, each lead's in the order it made them.
struct Writes<'a> {
    stages: Batch<'a>,
    moves: Batch<'a>,
    tags_added: Batch<'a>,
    tags_removed: Batch<'a>,
    attrs_set: Batch<'a>,
    attrs_removed: Batch<'a>,
    sends: Batch<'a>,
}

impl<'a> Writes<'a> {
    fn new() -> Writes<'a> {
        Writes {
            stages: Batch::new(
                "UPDATE leads SET stage = v.column2, stage_entered_at = v.column3, updated_at = v.column4 FROM (",
                "(?, ?, ?, ?)",
                ") AS v WHERE leads.id = v.column1",
            ),
            moves: Batch::new(
                "INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause)",
                "(?, ?, ?, ?, ?)",
                "",
            ),
            tags_added: Batch::new(
                "INSERT INTO lead_tags (lead_id, tag)",
                "(?, ?)",
                "ON CONFLICT DO NOTHING",
            ),
            tags_removed: Batch::new(
                "DELETE FROM lead_tags WHERE (lead_id, tag) IN (",
                "(?, ?)",
                ")",
            ),
            attrs_set: Batch::new(
                "INSERT INTO lead_attrs (lead_id, key, value)",
                "(?, ?, ?)",
                "ON CONFLICT (lead_id, key) DO UPDATE SET value = excluded.value",
            ),
            attrs_removed: Batch::new(
                "DELETE FROM lead_attrs WHERE (lead_id, key) IN (",
                "(?, ?)",
                ")",
            ),
            sends: Batch::new(
                "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, rule, state, next_attempt_at)",
                "(?, ?, ?, ?, ?, ?, 'queued', ?)",
                "ON CONFLICT (lead_id, template, dedupe_key) DO NOTHING",
            ),
        }
    }

    /// One lead's changes: its stage, the moves, tags and attributes that differ (the
    /// attributes' JSON in `json`, borrowed by the rows), and the sends asked for.
    fn add(&mut self, c: &'a LeadChanges, json: &'a [(&'a str, String)], now: i64) {
        let id = Arg::Int(c.after.id.0);
        if c.before.stage != c.after.stage || c.before.stage_entered_at != c.after.stage_entered_at
        {
            let entered = Arg::Int(ms(c.after.stage_entered_at));
            self.stages.rows.push(vec![
                id,
                Arg::Text(c.after.stage.as_str()),
                entered,
                Arg::Int(now),
            ]);
        }
        for (from, to, cause) in &c.moves {
            let (from, to) = (Arg::Text(from.as_str()), Arg::Text(to.as_str()));
            self.moves
                .rows
                .push(vec![id, from, to, Arg::Int(now), Arg::Text(cause)]);
        }
        for tag in c.after.tags.difference(&c.before.tags) {
            self.tags_added.rows.push(vec![id, Arg::Text(tag)]);
        }
        for tag in c.before.tags.difference(&c.after.tags) {
            self.tags_removed.rows.push(vec![id, Arg::Text(tag)]);
        }
        for (k, v) in json {
            self.attrs_set
                .rows
                .push(vec![id, Arg::Text(k), Arg::Text(v)]);
        }
        for k in c
            .before
            .attrs
            .keys()
            .filter(|k| !c.after.attrs.contains_key(*k))
        {
            self.attrs_removed.rows.push(vec![id, Arg::Text(k)]);
        }
        for s in &c.sends {
            let (template, stage) = (Arg::Text(s.template.as_str()), Arg::Text(s.stage.as_str()));
            let row = vec![
                id,
                template,
                Arg::Text(&s.key),
                Arg::Int(now),
                stage,
                Arg::Text(&s.rule),
                Arg::Int(now),
            ];
            self.sends.rows.push(row);
        }
    }

    /// Writes every table's rows; returns the outbox rows inserted (a send whose dedupe
    /// key is already there inserts none).
    async fn run(&self, tx: &mut SqliteConnection) -> Result<usize> {
        self.stages.run(tx).await?;
        self.moves.run(tx).await?;
        self.tags_added.run(tx).await?;
        self.tags_removed.run(tx).await?;
        self.attrs_set.run(tx).await?;
        self.attrs_removed.run(tx).await?;
        Ok(self.sends.run(tx).await? as usize)
    }
}

/// Per lead, the attributes that differ from before, as the JSON stored.
fn attrs_changed(c: &LeadChanges) -> Vec<(&str, String)> {
    c.after
        .attrs
        .iter()
        .filter(|(k, v)| c.before.attrs.get(*k) != Some(*v))
        .map(|(k, v)| (k.as_str(), v.to_json()))
        .collect()
}

impl SqliteStore {
    pub(in crate::store) async fn apply_all(
        &self,
        changes: &[LeadChanges],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        let json: Vec<Vec<(&str, String)>> = changes.iter().map(attrs_changed).collect();
        let mut writes = Writes::new();
        for (c, json) in changes.iter().zip(&json) {
            writes.add(c, json, ms(now));
        }
        let mut tx = self.begin_write().await?;
        let inserted = writes.run(&mut tx).await?;
        tx.commit().await?;
        Ok(inserted)
    }
}
