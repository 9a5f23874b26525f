//! Campaign bookkeeping: when each campaign was first seen, each firing's fate, and
//! the emails a firing queues.

use super::{Result, StoreError};
use crate::domain::{LeadId, TemplateName};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Where a firing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringState {
    Running,
    Done,
    Skipped,
}

impl FiringState {
    pub fn as_str(self) -> &'static str {
        match self {
            FiringState::Running => "running",
            FiringState::Done => "done",
            FiringState::Skipped => "skipped",
        }
    }

    /// The state of its stored name.
    pub fn parse(s: &str) -> Result<FiringState> {
        [
            FiringState::Running,
            FiringState::Done,
            FiringState::Skipped,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| StoreError::corrupt("firing state", s, "not a firing state"))
    }
}

/// A recorded firing.
#[derive(Debug, Clone)]
pub struct Firing {
    pub campaign: String,
    pub key: String,
    pub scheduled_at: DateTime<Utc>,
    pub state: FiringState,
    pub audience: i64,
    pub queued: i64,
    pub note: Option<String>,
}

operations! {
    /// When `campaign` was first loaded, recording `now` if it never was.
    fn campaign_first_seen(&self, campaign: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>>;

    /// When `campaign` was first loaded, if it ever was (reads only).
    fn campaign_seen(&self, campaign: &str) -> Result<Option<DateTime<Utc>>>;

    /// The firing of `campaign` under `key`, if recorded.
    fn firing(&self, campaign: &str, key: &str) -> Result<Option<Firing>>;

    /// The latest recorded firing of `campaign`, by scheduled time.
    fn last_firing(&self, campaign: &str) -> Result<Option<Firing>>;

    /// Claims a firing: `true` if this caller records it now (new) or resumes it (left
    /// `running` by a crash); `false` if it is done or skipped.
    fn begin_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records how a firing ended; `queued` is recounted from the outbox, so a resumed
    /// firing counts the rows of its earlier runs too.
    #[allow(clippy::too_many_arguments)]
    fn finish_firing(
        &self,
        campaign: &str,
        key: &str,
        scheduled_at: DateTime<Utc>,
        state: FiringState,
        audience: i64,
        queued: i64,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Leads that already have an outbox row for (template, key).
    fn leads_with_key(&self, template: &str, key: &str) -> Result<HashSet<LeadId>>;

    /// Queues a campaign's email for each (lead, stage, send time); the dedupe key
    /// makes it once per lead and key however often a firing is resumed. Returns the
    /// rows inserted.
    fn enqueue_campaign(
        &self,
        campaign: &str,
        template: &TemplateName,
        key: &str,
        rows: &[(LeadId, String, DateTime<Utc>)],
        requested_at: DateTime<Utc>,
    ) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixture::fixtures;
    use crate::store::testing::stores;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    #[tokio::test]
    async fn a_campaign_is_first_seen_once() {
        for store in stores().await {
            let e = store.engine();
            assert_eq!(store.campaign_seen("sale").await.unwrap(), None, "{e}");
            assert_eq!(
                store.campaign_first_seen("sale", at(10)).await.unwrap(),
                at(10)
            );
            assert_eq!(
                store.campaign_first_seen("sale", at(20)).await.unwrap(),
                at(10)
            );
            assert_eq!(
                store.campaign_seen("sale").await.unwrap(),
                Some(at(10)),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn a_firing_is_begun_once_resumed_while_running_and_never_after_it_ends() {
        for store in stores().await {
            let e = store.engine();
            assert!(
                store
                    .begin_firing("sale", "k1", at(100), at(101))
                    .await
                    .unwrap()
            );
            // A second start finds it running (a crash's leftover): it resumes, and
            // the firing keeps its first record.
            assert!(
                store
                    .begin_firing("sale", "k1", at(999), at(1000))
                    .await
                    .unwrap()
            );
            let f = store.firing("sale", "k1").await.unwrap().unwrap();
            assert_eq!(
                (f.scheduled_at, f.state),
                (at(100), FiringState::Running),
                "{e}"
            );
            store
                .finish_firing(
                    "sale",
                    "k1",
                    at(100),
                    FiringState::Done,
                    5,
                    5,
                    Some("n"),
                    at(200),
                )
                .await
                .unwrap();
            assert!(
                !store
                    .begin_firing("sale", "k1", at(100), at(300))
                    .await
                    .unwrap()
            );
            let f = store.firing("sale", "k1").await.unwrap().unwrap();
            assert_eq!(f.state, FiringState::Done, "{e}");
            assert_eq!((f.audience, f.queued, f.note.as_deref()), (5, 0, Some("n")));
            // A missed firing is recorded skipped without having begun.
            store
                .finish_firing(
                    "sale",
                    "k0",
                    at(50),
                    FiringState::Skipped,
                    0,
                    0,
                    None,
                    at(300),
                )
                .await
                .unwrap();
            assert!(
                !store
                    .begin_firing("sale", "k0", at(50), at(301))
                    .await
                    .unwrap()
            );
            let last = store.last_firing("sale").await.unwrap().unwrap();
            assert_eq!(last.key, "k1", "{e}");
            assert!(store.last_firing("other").await.unwrap().is_none(), "{e}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_daemons_beginning_a_firing_at_once_one_records_it() {
        for store in stores().await {
            let mut tries = tokio::task::JoinSet::new();
            for i in 0..8 {
                let store = store.clone();
                tries.spawn(async move {
                    store
                        .begin_firing("sale", "k", at(100 + i), at(1000 + i))
                        .await
                });
            }
            for r in tries.join_all().await {
                assert!(r.unwrap(), "{}", store.engine());
            }
            let f = store.firing("sale", "k").await.unwrap().unwrap();
            assert!((100..108).contains(&f.scheduled_at.timestamp_millis()));
            assert_eq!(f.state, FiringState::Running, "{}", store.engine());
        }
    }

    #[tokio::test]
    async fn a_campaign_queues_each_lead_once_per_key() {
        let welcome = TemplateName::parse("sale").unwrap();
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            for id in 1..=3 {
                f.lead(id, &format!("l{id}@example.com"), "lead", 0).await;
            }
            let rows = [1, 2, 1, 3].map(|id| (LeadId(id), "lead".to_string(), at(500 + id)));
            let n = store
                .enqueue_campaign("spring", &welcome, "2026", &rows[..3], at(400))
                .await
                .unwrap();
            assert_eq!(n, 2, "{e}");
            let n = store
                .enqueue_campaign("spring", &welcome, "2026", &rows, at(450))
                .await
                .unwrap();
            assert_eq!(n, 1, "{e}");
            // Ids follow the order of `rows` (PostgreSQL's may have gaps: a skipped
            // row takes a number of its sequence).
            let order = "SELECT COUNT(*) FROM outbox a JOIN outbox b ON a.lead_id < b.lead_id AND a.id > b.id";
            assert_eq!(f.count(order).await, 0, "{e}: ids in row order");
            assert_eq!(f.count("SELECT COUNT(*) FROM outbox").await, 3, "{e}");
            let first = "SELECT requested_at + next_attempt_at FROM outbox WHERE lead_id = 1";
            assert_eq!(f.count(first).await, 400 + 501, "{e}");
            let keyed = store.leads_with_key("sale", "2026").await.unwrap();
            assert_eq!(
                keyed,
                HashSet::from([LeadId(1), LeadId(2), LeadId(3)]),
                "{e}"
            );
            assert!(
                store
                    .leads_with_key("sale", "2027")
                    .await
                    .unwrap()
                    .is_empty()
            );
            store
                .begin_firing("spring", "2026", at(0), at(1))
                .await
                .unwrap();
            store
                .finish_firing(
                    "spring",
                    "2026",
                    at(0),
                    FiringState::Done,
                    4,
                    1,
                    None,
                    at(2),
                )
                .await
                .unwrap();
            let fired = store.firing("spring", "2026").await.unwrap().unwrap();
            assert_eq!((fired.audience, fired.queued), (4, 3), "{e}: recounted");
        }
    }
}
