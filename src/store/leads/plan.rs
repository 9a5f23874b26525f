//! The fold of an upsert batch into what to write, shared by every backend (no SQL
//! here): the rows of a batch are folded in memory in their order, so the outcome is
//! the one of upserting them one by one: the first row of a new address creates the
//! lead, a later row of the same address updates it (name, locale and time zone
//! overwrite when given, tags union, attributes merge, `update_stage` moves and
//! records the move), and history rows are written in the order they happened. A
//! backend then writes each table's rows with one statement.

use crate::domain::{LeadId, StageId};
use crate::store::{LeadUpsert, UpsertResult};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A lead a row names: one already stored (its id), or the `i`th created by this batch.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) enum Target {
    Old(i64),
    New(usize),
}

/// A lead as it will be written: created by the batch, or stored and updated by it.
pub(in crate::store) struct Fields<'a> {
    pub(in crate::store) email: &'a str,
    pub(in crate::store) name: Option<&'a str>,
    pub(in crate::store) locale: Option<&'a str>,
    pub(in crate::store) timezone: Option<&'static str>,
    pub(in crate::store) stage: String,
    /// Moved by `update_stage` (a stored lead's stage and stage_entered_at change).
    pub(in crate::store) moved: bool,
    pub(in crate::store) created_at: Option<DateTime<Utc>>,
}

/// What a batch writes, in the order its rows asked for it.
pub(in crate::store) struct Plan<'a> {
    update_stage: bool,
    /// The stored leads of the batch's addresses: id and stage.
    stored: HashMap<String, (i64, String)>,
    /// Each address seen so far, and where its lead's fields are kept.
    seen: HashMap<&'a str, Slot>,
    pub(in crate::store) creates: Vec<Fields<'a>>,
    pub(in crate::store) updates: Vec<(i64, Fields<'a>)>,
    /// Stage history: lead, from, to, cause.
    pub(in crate::store) moves: Vec<(Target, Option<String>, String, &'static str)>,
    pub(in crate::store) tags: Vec<(Target, &'a str)>,
    pub(in crate::store) attrs: Vec<(Target, &'a str, String)>,
    /// Per row: its lead, and whether the row created it.
    results: Vec<(Target, bool)>,
}

/// Where a seen address's fields are: `creates[i]` or `updates[i]`.
#[derive(Clone, Copy)]
enum Slot {
    Create(usize),
    Update(usize),
}

impl<'a> Plan<'a> {
    pub(in crate::store) fn new(
        stored: HashMap<String, (i64, String)>,
        update_stage: bool,
    ) -> Plan<'a> {
        Plan {
            update_stage,
            stored,
            seen: HashMap::new(),
            creates: Vec::new(),
            updates: Vec::new(),
            moves: Vec::new(),
            tags: Vec::new(),
            attrs: Vec::new(),
            results: Vec::new(),
        }
    }

    /// One row, as if upserted alone after the rows before it.
    pub(in crate::store) fn add(&mut self, row: &'a LeadUpsert, initial: &StageId) {
        let email = row.email.as_str();
        let slot = match self.seen.get(email) {
            Some(&slot) => slot,
            None => self.first_sight(row, initial),
        };
        let first = !self.seen.contains_key(email);
        let created = first && matches!(slot, Slot::Create(_));
        let (target, fields) = match slot {
            Slot::Create(i) => (Target::New(i), &mut self.creates[i]),
            Slot::Update(i) => (Target::Old(self.updates[i].0), &mut self.updates[i].1),
        };
        if !created {
            // An update: what the row gives overwrites, the stage moves only if asked.
            fields.name = row.name.as_deref().or(fields.name);
            fields.locale = row.locale.as_deref().or(fields.locale);
            fields.timezone = row.timezone.map(|t| t.name()).or(fields.timezone);
            if self.update_stage
                && let Some(new) = &row.stage
                && new.as_str() != fields.stage
            {
                let from = std::mem::replace(&mut fields.stage, new.as_str().to_string());
                fields.moved = true;
                let to = new.as_str().to_string();
                self.moves
                    .push((target, Some(from), to, "import --update-stage"));
            }
        }
        self.seen.insert(email, slot);
        self.tags
            .extend(row.tags.iter().map(|t| (target, t.as_str())));
        self.attrs.extend(
            row.attrs
                .iter()
                .map(|(k, v)| (target, k.as_str(), v.to_json())),
        );
        self.results.push((target, created));
    }

    /// The first row of an address in the batch: its stored lead to update, or a new
    /// lead (in the row's stage or `initial`) with its first history entry.
    fn first_sight(&mut self, row: &'a LeadUpsert, initial: &StageId) -> Slot {
        let email = row.email.as_str();
        if let Some((id, stage)) = self.stored.remove(email) {
            self.updates.push((
                id,
                Fields {
                    email,
                    name: None,
                    locale: None,
                    timezone: None,
                    stage,
                    moved: false,
                    created_at: None,
                },
            ));
            return Slot::Update(self.updates.len() - 1);
        }
        let stage = row.stage.as_ref().unwrap_or(initial).as_str().to_string();
        let i = self.creates.len();
        self.moves
            .push((Target::New(i), None, stage.clone(), "import"));
        self.creates.push(Fields {
            email,
            name: row.name.as_deref(),
            locale: row.locale.as_deref(),
            timezone: row.timezone.map(|t| t.name()),
            stage,
            moved: false,
            created_at: row.created_at,
        });
        Slot::Create(i)
    }

    /// Per row, the lead it created or updated, given the id of each lead the batch
    /// created (`created[i]` for `Target::New(i)`).
    pub(in crate::store) fn results(&self, created: &[i64]) -> Vec<UpsertResult> {
        self.results
            .iter()
            .map(|&(t, new)| {
                let lead = LeadId(t.id(created));
                if new {
                    UpsertResult::Created(lead)
                } else {
                    UpsertResult::Updated(lead)
                }
            })
            .collect()
    }
}

impl Target {
    /// The lead's id, given the ids of the leads the batch created.
    pub(in crate::store) fn id(self, created: &[i64]) -> i64 {
        match self {
            Target::Old(id) => id,
            Target::New(i) => created[i],
        }
    }
}
