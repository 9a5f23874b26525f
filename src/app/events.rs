//! Recording what leads do, then running their rules at once: the one way an event
//! enters the funnel from outside a pass, whether it came over HTTP (`POST /events`, an
//! open or a click in an email) or from `embudo event`.
//!
//! The events are stored first, in one transaction, and acknowledged only once that
//! committed; the rules run afterwards, each affected lead once. A failure in the rules
//! never loses an event: it is stored, and the next pass evaluates the lead again.

use super::{App, AppError};
use crate::delivery::tracking::Who;
use crate::domain::{Event, LeadId};
use crate::engine::pass::PassReport;
use crate::store::{IdempotencyKey, LeadBrief, Recorded, Replay, StoreError};
use chrono::{DateTime, Duration, Utc};

/// An event for the lead named by its email or its id, as a client names one.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The lead's email or id (digits).
    pub lead: String,
    pub event: Event,
    /// The event's own id, unique per lead: an event with an id already recorded for
    /// its lead (or earlier in the same batch) is a duplicate and is skipped.
    pub id: Option<String>,
}

/// Why events were not recorded; nothing of the batch is stored.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The `index`th event names no lead.
    #[error("no lead `{who}`")]
    NoLead { index: usize, who: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EventsError> for AppError {
    fn from(e: EventsError) -> Self {
        match e {
            EventsError::NoLead { who, .. } => AppError::Usage(format!(
                "no lead `{who}`; name a lead by its email or id, or import it first (embudo import FILE)"
            )),
            EventsError::Store(e) => AppError::Store(e),
        }
    }
}

/// What recording a batch did.
#[derive(Debug, Default)]
pub struct EventsRecorded {
    /// Each event's lead, in the order given (what the email or id named).
    pub leads: Vec<LeadId>,
    /// Events stored, and events skipped as already recorded.
    pub recorded: Recorded,
    /// The rules' run over the affected leads: emails queued, stage moves, and each
    /// distinct rule error (not logged here: a command prints them, the daemon logs them).
    pub report: PassReport,
    /// Leads whose rules could not run after their events were stored (the events stay
    /// stored; the next pass runs these rules again).
    pub failures: Vec<(LeadId, StoreError)>,
}

impl App {
    /// Records `events` (all or none), then runs the rules of each lead with a newly
    /// recorded event once, at `now`. The clock is the caller's: the daemon runs rules
    /// at its own time (an event dated later is read when its time comes), `embudo
    /// event` at the event's time.
    pub async fn record_events(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<EventsRecorded, EventsError> {
        match self
            .record_events_once(events, None, |_| String::new(), now)
            .await?
        {
            Ok(r) => Ok(r),
            Err(_) => unreachable!("no key, so nothing to replay"),
        }
    }

    /// [`App::record_events`] under a request's `Idempotency-Key`: `answer`'s text is
    /// kept under the key in the events' transaction (both commit or neither does); a
    /// key seen before records nothing, runs no rule, and gives back what the store
    /// knows of it (`Err`).
    pub async fn record_events_once(
        &self,
        events: Vec<NewEvent>,
        key: Option<&IdempotencyKey>,
        answer: impl FnOnce(Recorded) -> String + Send,
        now: DateTime<Utc>,
    ) -> Result<Result<EventsRecorded, Replay>, EventsError> {
        let rows = self.resolve(events).await?;
        let recorded = match self
            .store
            .record_events_once(&rows, key, answer, now)
            .await?
        {
            Ok(recorded) => recorded,
            Err(seen) => return Ok(Err(seen)),
        };
        // Leads whose events were all duplicates have nothing new to run on.
        let leads: Vec<LeadId> = rows.iter().map(|(id, _, _)| *id).collect();
        let mut affected = Vec::new();
        if recorded.recorded > 0 {
            affected = leads.clone();
            affected.sort();
            affected.dedup();
        }
        let (report, failures) = self.evaluate_each(&affected, now).await;
        Ok(Ok(EventsRecorded {
            leads,
            recorded,
            report,
            failures,
        }))
    }

    /// Records an open or a click for the lead a signed link names, unless the same one
    /// was recorded within `window` before `now` (an image proxy, a double click); then
    /// runs the lead's rules, as for any event. A lead since forgotten, or an id now
    /// someone else's (the address digest differs), records nothing. `None`: nothing
    /// was recorded.
    pub async fn record_tracked(
        &self,
        who: &Who,
        event: Event,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<EventsRecorded>, StoreError> {
        let id = LeadId(who.lead);
        if self.signed_lead(id, &who.digest).await?.is_none() {
            return Ok(None);
        }
        if !self.store.record_tracking(id, &event, window, now).await? {
            return Ok(None);
        }
        let (report, failures) = self.evaluate_each(&[id], now).await;
        Ok(Some(EventsRecorded {
            leads: vec![id],
            recorded: Recorded {
                recorded: 1,
                duplicates: 0,
            },
            report,
            failures,
        }))
    }

    /// The lead a signed link names (its id and a digest of its address), if it is
    /// still there with that address: a lead since forgotten, or an id now someone
    /// else's, is none. Tracking links and unsubscribe links ask the same.
    pub async fn signed_lead(
        &self,
        id: LeadId,
        digest: &str,
    ) -> Result<Option<LeadBrief>, StoreError> {
        Ok(self
            .store
            .lead_brief(id)
            .await?
            .filter(|l| l.email.digest().starts_with(digest)))
    }

    /// Each event's lead, by email or id, in order (looked up together): the first
    /// unknown one refuses the batch.
    async fn resolve(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Vec<(LeadId, Event, Option<String>)>, EventsError> {
        let who: Vec<String> = events.iter().map(|e| e.lead.clone()).collect();
        let ids = self.store.find_lead_ids(&who).await?;
        let mut rows = Vec::with_capacity(events.len());
        for (index, (e, id)) in events.into_iter().zip(ids).enumerate() {
            match id {
                Some(id) => rows.push((id, e.event, e.id)),
                None => return Err(EventsError::NoLead { index, who: e.lead }),
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::csv::{LeadFields, lead_upsert};
    use chrono::TimeZone;

    /// The demo funnel in a scratch folder, with one lead in `interest`.
    async fn demo(dir: &std::path::Path, created: DateTime<Utc>) -> App {
        crate::funnel::scaffold::init(dir, false).unwrap();
        let app = App::open(&dir.join("embudo.yaml")).await.unwrap();
        let cfg = &app.funnel().config;
        let fields = LeadFields {
            email: "ana@example.com",
            name: Some("Ana"),
            stage: None,
            tags: vec![],
            locale: None,
            timezone: None,
            created_at: None,
            attrs: Default::default(),
        };
        let row = lead_upsert(fields, cfg).unwrap();
        let initial = cfg.stages.initial().clone();
        app.store
            .upsert_leads(&[row], &initial, false, created)
            .await
            .unwrap();
        app
    }

    fn quote(lead: &str, at: DateTime<Utc>, id: Option<&str>) -> NewEvent {
        NewEvent {
            lead: lead.into(),
            event: Event {
                kind: "quote_requested".into(),
                at,
                props: Default::default(),
            },
            id: id.map(Into::into),
        }
    }

    #[tokio::test]
    async fn events_are_stored_all_or_none_then_each_lead_runs_once_at_the_callers_clock() {
        let dir = tempfile::tempdir().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let app = demo(dir.path(), t - Duration::days(1)).await;
        let ana = app.store.find_lead_id("ana@example.com").await.unwrap();
        let ana = ana.expect("the lead is stored");
        let events_of_ana = async || app.store.load_lead(ana, t).await.unwrap().unwrap();

        // An unknown lead refuses the whole batch, naming the item.
        let batch = vec![
            quote("ana@example.com", t, None),
            quote("nadie@x.es", t, None),
        ];
        match app.record_events(batch, t).await {
            Err(EventsError::NoLead { index: 1, who }) => assert_eq!(who, "nadie@x.es"),
            other => panic!("{other:?}"),
        }
        assert!(events_of_ana().await.events.is_empty(), "nothing stored");

        // Two events for one lead: both stored, its rules run once, at `now`.
        let batch = vec![
            quote("ana@example.com", t, Some("q-1")),
            quote(&ana.0.to_string(), t, Some("q-2")),
        ];
        let done = app.record_events(batch, t).await.unwrap();
        assert_eq!((done.recorded.recorded, done.recorded.duplicates), (2, 0));
        assert_eq!(
            done.leads,
            [ana, ana],
            "each event's lead, by email or by id"
        );
        assert_eq!((done.report.leads, done.report.moves), (1, 1));
        assert!(done.failures.is_empty());
        assert!(done.report.errors.is_empty(), "{:?}", done.report.errors);
        let loaded = events_of_ana().await;
        assert_eq!(loaded.events.len(), 2);
        assert_eq!(loaded.lead.stage.as_str(), "evaluation");
        // The comparison email is queued at the caller's clock, not the wall clock.
        let sends = app.store.outbox_of(ana).await.unwrap();
        let requested: Vec<_> = sends
            .iter()
            .map(|o| (o.template.as_str(), o.requested_at))
            .collect();
        assert_eq!(requested, [("eval-comparison", t)]);
        assert_eq!(done.report.queued, 1);

        // Only duplicates: nothing new, so no rule runs.
        let again = vec![quote("ana@example.com", t, Some("q-1"))];
        let done = app.record_events(again, t).await.unwrap();
        assert_eq!((done.recorded.recorded, done.recorded.duplicates), (0, 1));
        assert_eq!(done.report.leads, 0);
    }
}
