//! A page of leads being loaded, the same on every backend: each backend's queries for
//! the page decode their rows to plain values and hand them here, to the lead they
//! belong to, so what a row means (a tag or an attribute, an event over the per-kind
//! cap, a send) is written once.

use super::{Result, StoreError};
use crate::domain::{
    EVENTS_PER_KIND, Event, Lead, LoadedLead, OlderEvents, SendRecord, TemplateName, Value,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Leads sorted by id, with their histories being filled in.
pub(super) struct Loading {
    leads: Vec<LoadedLead>,
    index: HashMap<i64, usize>,
}

impl Loading {
    pub(super) fn new(leads: Vec<Lead>) -> Loading {
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
        Loading { leads, index }
    }

    /// The lead of this id; `None` for an id that is not on the page (a range's
    /// queries may return rows of others).
    pub(super) fn lead(&mut self, id: i64) -> Option<&mut LoadedLead> {
        self.index.get(&id).map(|&i| &mut self.leads[i])
    }

    pub(super) fn into_leads(self) -> Vec<LoadedLead> {
        self.leads
    }
}

/// A row of `lead_attrs` (a value: the attribute's stored JSON) or of `lead_tags` (no
/// value).
pub(super) fn add_tag_or_attr(l: &mut LoadedLead, key: String, value: Option<&str>) -> Result<()> {
    match value {
        None => {
            l.lead.tags.insert(key);
        }
        Some(raw) => {
            let v = Value::from_json(raw)
                .map_err(|e| StoreError::Corrupt(format!("attribute value {raw}: {e}")))?;
            l.lead.attrs.insert(key, v);
        }
    }
    Ok(())
}

/// One of a lead's events, whose rows come oldest first. `total` (the kind's events up
/// to the clock) over [`EVENTS_PER_KIND`] records the older ones left out, with
/// `first`, the oldest's instant.
pub(super) fn add_event(
    l: &mut LoadedLead,
    kind: String,
    at: DateTime<Utc>,
    props: &str,
    total: i64,
    first: DateTime<Utc>,
) -> Result<()> {
    if total > EVENTS_PER_KIND && !l.older.contains_key(&kind) {
        let older = OlderEvents {
            count: (total - EVENTS_PER_KIND) as u64,
            first_at: first,
        };
        l.older.insert(kind.clone(), older);
    }
    let props = Value::map_from_json(props)
        .map_err(|e| StoreError::Corrupt(format!("event props {props}: {e}")))?;
    l.events.push(Event { kind, at, props });
    Ok(())
}

/// One of a lead's outbox rows, as rules count them.
pub(super) fn add_send(
    l: &mut LoadedLead,
    template: &str,
    key: String,
    requested_at: DateTime<Utc>,
) -> Result<()> {
    l.sends.push(SendRecord {
        template: TemplateName::parse(template).map_err(StoreError::Corrupt)?,
        key,
        requested_at,
    });
    Ok(())
}
