//! Which leads a simulated tick must evaluate.
//!
//! A lead's evaluation is a function of its data (the lead, its events and sends up
//! to the clock) and of what its rules read from the clock. When an evaluation at `t`
//! changed nothing and failed nowhere, evaluating the same data at any instant before
//! its horizon (`Evaluation::horizon`: the first instant anything it read from the
//! clock may read differently) changes nothing either. So a lead needs evaluating at
//! a tick only when its horizon has come, or its data changed since: its own
//! evaluation changed it or failed, an event of its became visible, or a campaign
//! queued emails (to an audience: everyone, to be safe). Delivery changes the state of
//! outbox rows, which no rule reads (`sent`, `last_sent`, `sent_count` count requested
//! rows). Everything else is the same tick the daemon runs: the leads whose
//! evaluation changes something are evaluated and recorded by `App` itself.

use crate::domain::LeadId;
use crate::engine::pass::{Outcome, PAGE, evaluate_off_thread};
use crate::funnel::Funnel;
use crate::store::{LoadedLead, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Each lead's next instant of interest, and the leads due at the next tick anyway.
#[derive(Debug, Default)]
pub struct Due {
    queue: BTreeSet<(DateTime<Utc>, LeadId)>,
    next: HashMap<LeadId, DateTime<Utc>>,
    dirty: BTreeSet<LeadId>,
    everyone: bool,
}

impl Due {
    /// Nothing is known yet: every lead is due at the first tick.
    pub fn everyone() -> Due {
        Due {
            everyone: true,
            ..Due::default()
        }
    }

    /// Every lead is due at the next tick (a campaign queued emails).
    pub fn mark_everyone(&mut self) {
        self.everyone = true;
    }

    /// `lead` is due at the next tick (its data changed).
    pub fn mark(&mut self, lead: LeadId) {
        self.dirty.insert(lead);
    }

    /// `lead` is next due at the first tick at or after `at`.
    pub fn wake(&mut self, lead: LeadId, at: DateTime<Utc>) {
        if let Some(old) = self.next.insert(lead, at) {
            self.queue.remove(&(old, lead));
        }
        self.queue.insert((at, lead));
    }

    /// The leads due at the tick `at`, in id order; `None`: every lead.
    pub fn take(&mut self, at: DateTime<Utc>) -> Option<Vec<LeadId>> {
        if std::mem::take(&mut self.everyone) {
            self.queue.clear();
            self.next.clear();
            self.dirty.clear();
            return None;
        }
        let mut due = std::mem::take(&mut self.dirty);
        while let Some(&(t, lead)) = self.queue.first()
            && t <= at
        {
            self.queue.pop_first();
            due.insert(lead);
        }
        for lead in &due {
            if let Some(old) = self.next.remove(lead) {
                self.queue.remove(&(old, *lead));
            }
        }
        Some(due.into_iter().collect())
    }
}

/// What evaluating some leads at an instant, without recording anything, found.
#[derive(Debug, Default)]
pub struct Sifted {
    /// Leads whose evaluation changes something or fails: evaluated for real.
    pub act: Vec<LeadId>,
    /// The others, with the horizon of their evaluation (`None`: never again on
    /// these data).
    pub quiet: Vec<(LeadId, Option<DateTime<Utc>>)>,
}

/// Evaluates `leads` (all when `None`; else in id order) at `now` with the pass's own
/// per-lead evaluation, recording nothing, and sorts them by what it found.
pub async fn sift(
    store: &Store,
    funnel: &Arc<Funnel>,
    leads: Option<&[LeadId]>,
    now: DateTime<Utc>,
) -> Result<Sifted, StoreError> {
    let mut out = Sifted::default();
    let mut pages = Pages { leads, after: 0 };
    while let Some(page) = pages.next(store, now).await? {
        for outcome in evaluate_off_thread(funnel, page, now).await {
            match outcome {
                Outcome::Done(ev) if ev.changes.is_empty() && ev.errors.is_empty() => {
                    out.quiet.push((ev.changes.after.id, ev.horizon));
                }
                Outcome::Done(ev) => out.act.push(ev.changes.after.id),
                Outcome::Failed(lead, _) => out.act.push(lead),
            }
        }
    }
    Ok(out)
}

/// The leads to sift, loaded a page at a time: every lead, or the wanted ones (a run
/// of nearby ids in one page, a lone lead alone).
struct Pages<'a> {
    leads: Option<&'a [LeadId]>,
    after: i64,
}

impl Pages<'_> {
    async fn next(
        &mut self,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<LoadedLead>>, StoreError> {
        let Some(wanted) = self.leads else {
            let page = store.load_page(self.after, PAGE, now).await?;
            self.after = page.last().map_or(i64::MAX, |l| l.lead.id.0);
            return Ok(Some(page).filter(|p| !p.is_empty()));
        };
        let rest = &wanted[wanted.partition_point(|l| l.0 <= self.after)..];
        let Some(first) = rest.first() else {
            return Ok(None);
        };
        // The wanted leads within a page's span of ids from the first.
        let run = rest.partition_point(|l| l.0 - first.0 < PAGE);
        if run == 1 {
            self.after = first.0;
            let lead = store.load_lead(*first, now).await?;
            return Ok(Some(lead.into_iter().collect()));
        }
        let span = rest[run - 1].0 - first.0 + 1;
        let page = store.load_page(first.0 - 1, span, now).await?;
        self.after = page.last().map_or(rest[run - 1].0, |l| l.lead.id.0);
        let keep: BTreeSet<i64> = rest[..run].iter().map(|l| l.0).collect();
        Ok(Some(
            page.into_iter()
                .filter(|l| keep.contains(&l.lead.id.0))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::TimeDelta::hours(h)
    }

    #[test]
    fn a_lead_is_due_once_its_instant_has_come_or_its_data_changed() {
        let mut due = Due::everyone();
        assert_eq!(due.take(t(0)), None);
        due.wake(LeadId(1), t(5));
        due.wake(LeadId(2), t(3));
        due.wake(LeadId(2), t(7)); // a later evaluation moved it on
        due.mark(LeadId(3));
        assert_eq!(due.take(t(1)), Some(vec![LeadId(3)]));
        assert_eq!(due.take(t(4)), Some(vec![]));
        assert_eq!(due.take(t(6)), Some(vec![LeadId(1)]));
        due.mark_everyone();
        assert_eq!(due.take(t(6)), None);
        // Everyone was evaluated: the old instants are gone with it.
        assert_eq!(due.take(t(9)), Some(vec![]));
    }
}
