//! A tick's pass shared by several daemons: the pass at an instant is planned once as
//! batches of lead ids, and each batch is claimed by one daemon under a lease (see
//! `pass_batches` in the migrations). The leases run on the wall clock, like the named
//! leases, since they coordinate real processes; the pass's own clock is its instant.

use super::Result;
use chrono::{DateTime, Utc};

/// One batch of a planned pass: the leads with ids in `first..=last`, evaluated at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassBatch {
    /// The pass's instant: its key and the clock its rules run at.
    pub at: DateTime<Utc>,
    pub first: i64,
    pub last: i64,
    /// Who holds it, while it is being evaluated.
    pub holder: Option<String>,
}

/// How far a planned pass has got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassProgress {
    pub batches: u64,
    pub done: u64,
    /// Unfinished batches and who holds each (`None`: nobody yet).
    pub open: Vec<PassBatch>,
}

operations! {
    /// Plans the pass at `at` unless it is planned already: the leads' ids split into
    /// batches of about `size` (stamped with `now`, the wall clock). Returns how many
    /// batches were planned (0: planned before, or no leads). Passes finished a day
    /// before `now` are forgotten.
    fn plan_pass(&self, at: DateTime<Utc>, size: i64, now: DateTime<Utc>) -> Result<u64>;

    /// Claims the oldest unfinished batch of any planned pass that nobody holds or whose
    /// holder's lease ran out before `now`, leasing it to `holder` until `until`. Claims
    /// made at once by several processes never get the same batch.
    fn claim_pass_batch(&self, holder: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Option<PassBatch>>;

    /// Takes a batch over from `from` (a holder known to be dead) for `holder`.
    fn take_pass_batch(&self, batch: &PassBatch, from: &str, holder: &str, until: DateTime<Utc>) -> Result<bool>;

    /// Extends `holder`'s lease on a batch; `false` if it is no longer theirs.
    fn renew_pass_batch(&self, batch: &PassBatch, holder: &str, until: DateTime<Utc>) -> Result<bool>;

    /// Marks a batch done (if `holder` still has it); `false` if it is no longer theirs.
    fn finish_pass_batch(&self, batch: &PassBatch, holder: &str, now: DateTime<Utc>) -> Result<bool>;

    /// How far the pass at `at` has got.
    fn pass_progress(&self, at: DateTime<Utc>) -> Result<PassProgress>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, StageId};
    use crate::store::{LeadUpsert, Store};
    use chrono::{TimeDelta, TimeZone};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    async fn with_leads(store: &Store, n: usize) {
        let rows: Vec<LeadUpsert> = (0..n)
            .map(|i| LeadUpsert {
                email: EmailAddress::parse(&format!("l{i}@x.example")).unwrap(),
                name: None,
                stage: None,
                tags: vec![],
                locale: None,
                timezone: None,
                created_at: None,
                attrs: Default::default(),
            })
            .collect();
        store
            .upsert_leads(&rows, &StageId::parse("interest").unwrap(), false, at())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_pass_is_planned_once_and_each_batch_claimed_once() {
        for store in crate::store::testing::stores().await {
            with_leads(&store, 25).await;
            let wall = at();
            let until = wall + TimeDelta::seconds(60);
            assert_eq!(store.plan_pass(at(), 10, wall).await.unwrap(), 3);
            assert_eq!(
                store.plan_pass(at(), 10, wall).await.unwrap(),
                0,
                "planned once"
            );
            // Claims made at the same moment get different batches.
            let (a, b, c, d) = tokio::join!(
                store.claim_pass_batch("a", wall, until),
                store.claim_pass_batch("b", wall, until),
                store.claim_pass_batch("c", wall, until),
                store.claim_pass_batch("d", wall, until),
            );
            let mut got: Vec<PassBatch> = [a, b, c, d]
                .into_iter()
                .filter_map(|r| r.unwrap())
                .collect();
            got.sort_by_key(|b| b.first);
            assert_eq!(got.len(), 3, "{}: {got:?}", store.engine());
            assert_eq!(got[2].last, i64::MAX, "the last batch is open-ended");
            assert!(got[0].last < got[1].first && got[1].last < got[2].first);
            // A holder that stops renewing loses its batch when the lease runs out.
            let later = until + TimeDelta::seconds(1);
            let taken = store
                .claim_pass_batch("e", later, later + TimeDelta::seconds(60))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(taken.first, got[0].first);
            let first_holder = got[0].holder.clone().unwrap();
            assert!(
                !store
                    .finish_pass_batch(&got[0], &first_holder, later)
                    .await
                    .unwrap()
            );
            assert!(store.finish_pass_batch(&taken, "e", later).await.unwrap());
            // A dead holder's batch can be taken over at once.
            let h1 = got[1].holder.clone().unwrap();
            assert!(
                store
                    .take_pass_batch(&got[1], &h1, "f", later + TimeDelta::seconds(60))
                    .await
                    .unwrap()
            );
            assert!(!store.renew_pass_batch(&got[1], &h1, later).await.unwrap());
            let p = store.pass_progress(at()).await.unwrap();
            assert_eq!((p.batches, p.done, p.open.len()), (3, 1, 2));
            assert_eq!(p.open[0].holder.as_deref(), Some("f"));
        }
    }

    #[tokio::test]
    async fn finished_passes_are_forgotten_after_a_day() {
        for store in crate::store::testing::stores().await {
            with_leads(&store, 3).await;
            let wall = at();
            store.plan_pass(at(), 10, wall).await.unwrap();
            let b = store
                .claim_pass_batch("a", wall, wall + TimeDelta::seconds(60))
                .await
                .unwrap()
                .unwrap();
            store.finish_pass_batch(&b, "a", wall).await.unwrap();
            let next = at() + TimeDelta::days(2);
            store.plan_pass(next, 10, next).await.unwrap();
            assert_eq!(store.pass_progress(at()).await.unwrap().batches, 0);
            assert_eq!(store.pass_progress(next).await.unwrap().batches, 1);
        }
    }
}
