//! The commit of evaluations' changes on PostgreSQL: a page of leads in one
//! transaction, written with one statement per table (stage, moves, tags, attributes,
//! sends), each taking its rows as arrays read by `UNNEST`, never a statement per lead.
//!
//! **Why a plain transaction, not the write lock.** Several daemons commit pages of
//! different leads at once; the write lock would make them take turns for nothing.
//! Nothing here reads before it writes: every statement is a blind write of what the
//! evaluation computed (as on SQLite, where the page was loaded in an earlier
//! transaction, so holding the lock here would protect no read either). Pages of
//! different leads touch different rows of `leads`, `lead_tags`, `lead_attrs` and
//! `stage_history`, so they neither block nor deadlock each other (the foreign keys'
//! `KEY SHARE` locks on `leads` do not conflict with an update of its stage). The one
//! rule that matters across writers, a send at most once per (lead, template, key),
//! is the outbox's UNIQUE dedupe key: `ON CONFLICT DO NOTHING` waits for a concurrent
//! insert of the same key to commit and then skips it, so the count of rows inserted
//! stays exact. Each page stays all-or-nothing: one transaction.

use crate::domain::LeadChanges;
use crate::store::Result;
use crate::store::postgres::{PgStore, ms};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;

/// Every table's rows for a page of changes, one array per column, each lead's rows in
/// the order it made them.
#[derive(Default)]
struct Writes<'a> {
    /// Lead, stage, entered at: one entry a lead (the last change of it wins).
    stages: HashMap<i64, (&'a str, i64)>,
    /// Lead, from, to, cause.
    moves: (Vec<i64>, Texts<'a>, Texts<'a>, Texts<'a>),
    tags_added: (Vec<i64>, Vec<&'a str>),
    tags_removed: (Vec<i64>, Vec<&'a str>),
    /// Lead and key → the JSON stored: one entry a key (the last change wins), since
    /// PostgreSQL refuses to update a row twice in one statement.
    attrs_set: HashMap<(i64, &'a str), &'a str>,
    attrs_removed: (Vec<i64>, Vec<&'a str>),
    sends: Sends<'a>,
}

/// One text column's values.
type Texts<'a> = Vec<&'a str>;

/// The outbox rows asked for, a column each.
#[derive(Default)]
struct Sends<'a> {
    leads: Vec<i64>,
    templates: Texts<'a>,
    keys: Texts<'a>,
    stages: Texts<'a>,
    rules: Texts<'a>,
}

impl<'a> Writes<'a> {
    /// One lead's changes: its stage, the moves, tags and attributes that differ (the
    /// attributes' JSON in `json`, borrowed by the rows), and the sends asked for.
    fn add(&mut self, c: &'a LeadChanges, json: &'a [(&'a str, String)]) {
        let id = c.after.id.0;
        if c.before.stage != c.after.stage || c.before.stage_entered_at != c.after.stage_entered_at
        {
            let entered = ms(c.after.stage_entered_at);
            self.stages.insert(id, (c.after.stage.as_str(), entered));
        }
        for (from, to, cause) in &c.moves {
            self.moves.0.push(id);
            self.moves.1.push(from.as_str());
            self.moves.2.push(to.as_str());
            self.moves.3.push(cause);
        }
        for tag in c.after.tags.difference(&c.before.tags) {
            self.tags_added.0.push(id);
            self.tags_added.1.push(tag);
        }
        for tag in c.before.tags.difference(&c.after.tags) {
            self.tags_removed.0.push(id);
            self.tags_removed.1.push(tag);
        }
        for (k, v) in json {
            self.attrs_set.insert((id, *k), v.as_str());
        }
        for k in c.before.attrs.keys() {
            if !c.after.attrs.contains_key(k) {
                self.attrs_removed.0.push(id);
                self.attrs_removed.1.push(k);
            }
        }
        for s in &c.sends {
            self.sends.leads.push(id);
            self.sends.templates.push(s.template.as_str());
            self.sends.keys.push(&s.key);
            self.sends.stages.push(s.stage.as_str());
            self.sends.rules.push(&s.rule);
        }
    }

    /// Writes every table's rows, in SQLite's order; returns the outbox rows inserted
    /// (a send whose dedupe key is already there, or earlier on the page, inserts none).
    async fn run(&self, tx: &mut PgConnection, now: i64) -> Result<usize> {
        self.write_stages(tx, now).await?;
        self.write_moves(tx, now).await?;
        self.write_tags(tx).await?;
        self.write_attrs(tx).await?;
        self.write_sends(tx, now).await
    }

    async fn write_stages(&self, tx: &mut PgConnection, now: i64) -> Result<()> {
        if self.stages.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<(i64, &str, i64)> = self
            .stages
            .iter()
            .map(|(&id, &(s, at))| (id, s, at))
            .collect();
        // In id order: concurrent pages lock their leads in one order.
        rows.sort_unstable_by_key(|r| r.0);
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let stages: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let entered: Vec<i64> = rows.iter().map(|r| r.2).collect();
        sqlx::query(
            "UPDATE leads SET stage = r.stage, stage_entered_at = r.entered, updated_at = $4
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) AS r(id, stage, entered)
             WHERE leads.id = r.id",
        )
        .bind(&ids)
        .bind(&stages)
        .bind(&entered)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// The moves, their ids in the order they happened (history reads by time, id).
    async fn write_moves(&self, tx: &mut PgConnection, now: i64) -> Result<()> {
        if self.moves.0.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause)
             SELECT id, from_stage, to_stage, $5, cause
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
               AS r(id, from_stage, to_stage, cause, n)
             ORDER BY n",
        )
        .bind(&self.moves.0)
        .bind(&self.moves.1)
        .bind(&self.moves.2)
        .bind(&self.moves.3)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Tags added, then tags removed.
    async fn write_tags(&self, tx: &mut PgConnection) -> Result<()> {
        if !self.tags_added.0.is_empty() {
            sqlx::query(
                "INSERT INTO lead_tags (lead_id, tag)
                 SELECT * FROM UNNEST($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&self.tags_added.0)
            .bind(&self.tags_added.1)
            .execute(&mut *tx)
            .await?;
        }
        if !self.tags_removed.0.is_empty() {
            sqlx::query(
                "DELETE FROM lead_tags t USING UNNEST($1::bigint[], $2::text[]) AS r(id, tag)
                 WHERE t.lead_id = r.id AND t.tag = r.tag",
            )
            .bind(&self.tags_removed.0)
            .bind(&self.tags_removed.1)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Attributes set, then attributes removed.
    async fn write_attrs(&self, tx: &mut PgConnection) -> Result<()> {
        if !self.attrs_set.is_empty() {
            let (mut ids, mut keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
            for (&(id, k), &v) in &self.attrs_set {
                ids.push(id);
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
        }
        if !self.attrs_removed.0.is_empty() {
            sqlx::query(
                "DELETE FROM lead_attrs a USING UNNEST($1::bigint[], $2::text[]) AS r(id, key)
                 WHERE a.lead_id = r.id AND a.key = r.key",
            )
            .bind(&self.attrs_removed.0)
            .bind(&self.attrs_removed.1)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// The sends asked for, in order (a repeated key: the first is kept).
    async fn write_sends(&self, tx: &mut PgConnection, now: i64) -> Result<usize> {
        if self.sends.leads.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, rule, state, next_attempt_at)
             SELECT id, template, dedupe_key, $6, stage, rule, 'queued', $6
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
               AS r(id, template, dedupe_key, stage, rule, n)
             ORDER BY n
             ON CONFLICT (lead_id, template, dedupe_key) DO NOTHING",
        )
        .bind(&self.sends.leads)
        .bind(&self.sends.templates)
        .bind(&self.sends.keys)
        .bind(&self.sends.stages)
        .bind(&self.sends.rules)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(done.rows_affected() as usize)
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

impl PgStore {
    pub(in crate::store) async fn apply_all(
        &self,
        changes: &[LeadChanges],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        let json: Vec<Vec<(&str, String)>> = changes.iter().map(attrs_changed).collect();
        let mut writes = Writes::default();
        for (c, json) in changes.iter().zip(&json) {
            writes.add(c, json);
        }
        // A plain transaction: see the module's note.
        let mut tx = self.begin().await?;
        let inserted = writes.run(&mut tx, ms(now)).await?;
        tx.commit().await?;
        Ok(inserted)
    }
}
