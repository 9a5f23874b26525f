//! One evaluation pass: stream every lead in pages, run the rules on the cores off
//! the async workers, commit each page's changes in one transaction; or the same for
//! the leads of an event batch, loaded and committed together.
//!
//! A pass is a pipeline of three stages joined by channels of one page: while page N
//! is evaluated, page N+1 loads and page N-1 commits, so the cores are busy with rules
//! while the database reads and writes. Memory stays bounded by the handful of pages
//! in flight, and only the commit stage writes (one writer, a page at a time).

use super::pool::{Evaluator, evaluate_with, rules_of};
use crate::domain::LeadId;
use crate::funnel::Funnel;
use crate::rules::RuleError;
use crate::store::{LeadChanges, LoadedLead, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use super::pool::{Outcome, evaluate_off_thread};

/// Leads loaded and evaluated at a time: memory is bounded by this, not by the table.
pub const PAGE: i64 = 500;

/// Pages a stage of a pass may run ahead of the next: one loaded page waiting for its
/// evaluation, one evaluated page waiting for its commit.
const AHEAD: usize = 1;

/// What a pass did, for logs and the CLI summary.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub leads: usize,
    pub changed: usize,
    pub queued: usize,
    pub moves: usize,
    /// Each distinct rule error with how many leads it hit.
    pub errors: BTreeMap<String, (RuleError, usize, LeadId)>,
}

impl PassReport {
    /// Counts a lead's errors: one entry per distinct error (a runaway rule: one per
    /// file, wherever it was stopped), with the number of leads it hit.
    pub fn absorb(&mut self, lead: LeadId, errors: Vec<RuleError>) {
        for e in errors {
            let entry = self.errors.entry(e.summary_key()).or_insert((e, 0, lead));
            entry.1 += 1;
        }
    }

    /// Adds another report to this one: its counts and its errors (the leads of an
    /// event batch, a simulation's total).
    pub fn add(&mut self, other: PassReport) {
        self.leads += other.leads;
        self.changed += other.changed;
        self.queued += other.queued;
        self.moves += other.moves;
        for (k, (e, n, lead)) in other.errors {
            self.errors.entry(k).or_insert((e, 0, lead)).1 += n;
        }
    }

    /// Logs each distinct rule error once, with the number of leads it hit.
    pub fn log_errors(&self) {
        for (e, n, sample) in self.errors.values() {
            tracing::error!(file = %e.file, line = e.line, col = e.col, rule = %e.rule, leads = n, sample_lead = sample.0, error = %e, "rule skipped");
        }
    }
}

/// Numbers the passes of this process, so a pass's log lines can be told apart from
/// the next one's.
static PASSES: AtomicU64 = AtomicU64::new(0);

/// Evaluates every lead at `now`. Rule errors are counted in the report; the caller
/// logs them (a simulation of thousands of passes would repeat them thousands of times).
/// Runs in a span with the pass's clock and number.
pub async fn evaluate_all(
    store: &Store,
    funnel: &Arc<Funnel>,
    now: DateTime<Utc>,
) -> Result<PassReport, StoreError> {
    evaluate_range(store, funnel, now, Ids::ALL).await
}

/// Lead ids from `first` to `last`, both included: a batch of a shared pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub first: i64,
    pub last: i64,
}

impl Ids {
    pub const ALL: Ids = Ids {
        first: i64::MIN,
        last: i64::MAX,
    };
}

/// Evaluates the leads with ids in `ids` at `now`, as [`evaluate_all`] does every
/// lead: one batch of a pass that several daemons share.
pub async fn evaluate_range(
    store: &Store,
    funnel: &Arc<Funnel>,
    now: DateTime<Utc>,
    ids: Ids,
) -> Result<PassReport, StoreError> {
    let pass = PASSES.fetch_add(1, Ordering::Relaxed) + 1;
    let span = if ids == Ids::ALL {
        tracing::info_span!("pass", pass, at = %now)
    } else {
        tracing::info_span!("pass", pass, at = %now, first = ids.first, last = ids.last)
    };
    let eval = rules_of(funnel, now);
    evaluate_pages(store, &eval, now, ids)
        .instrument(span)
        .await
}

/// The pipeline: each stage stops when the one before it is done or the one after it
/// is gone, so a failed commit stops the loading, and a failed load lets the pages
/// already evaluated commit. The commit's error is the pass's first.
async fn evaluate_pages(
    store: &Store,
    eval: &Evaluator,
    now: DateTime<Utc>,
    ids: Ids,
) -> Result<PassReport, StoreError> {
    let (loaded_tx, loaded_rx) = mpsc::channel(AHEAD);
    let (evaluated_tx, evaluated_rx) = mpsc::channel(AHEAD);
    let (loaded, (), committed) = tokio::join!(
        load_pages(store, now, ids, loaded_tx),
        evaluate_pages_of(eval, loaded_rx, evaluated_tx),
        commit_pages(store, now, evaluated_rx),
    );
    let report = committed?;
    loaded?;
    Ok(report)
}

/// Loads the leads of `ids`, a page at a time in id order, into `out`.
async fn load_pages(
    store: &Store,
    now: DateTime<Utc>,
    ids: Ids,
    out: mpsc::Sender<Vec<LoadedLead>>,
) -> Result<(), StoreError> {
    let mut after = ids.first.saturating_sub(1).max(0);
    loop {
        let mut page = store.load_page(after, PAGE, now).await?;
        page.retain(|l| l.lead.id.0 <= ids.last);
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.lead.id.0;
        let full = page.len() == PAGE as usize;
        if out.send(page).await.is_err() || !full && after < ids.last {
            // A short page: either the table's end, or the batch's.
            return Ok(());
        }
    }
}

/// Evaluates each page from `pages` on the cores and tallies it (what the page's
/// evaluations did, and the changes to commit), into `out`.
async fn evaluate_pages_of(
    eval: &Evaluator,
    mut pages: mpsc::Receiver<Vec<LoadedLead>>,
    out: mpsc::Sender<Tally>,
) {
    while let Some(page) = pages.recv().await {
        let tallied = tally(evaluate_with(eval, page).await);
        if out.send(tallied).await.is_err() {
            return;
        }
    }
}

/// Commits each evaluated page, one transaction a page, and sums what they did.
async fn commit_pages(
    store: &Store,
    now: DateTime<Utc>,
    mut pages: mpsc::Receiver<Tally>,
) -> Result<PassReport, StoreError> {
    let mut report = PassReport::default();
    while let Some((done, changes)) = pages.recv().await {
        report.add(done);
        report.queued += store.apply_all(&changes, now).await?;
    }
    Ok(report)
}

/// Evaluates these leads at `now` (after their events): loaded together as a page is,
/// evaluated on the cores, and their changes committed in one transaction. Each lead
/// is evaluated once however often it is named; an id of no lead is left out.
pub async fn evaluate_leads(
    store: &Store,
    funnel: &Arc<Funnel>,
    ids: &[LeadId],
    now: DateTime<Utc>,
) -> Result<PassReport, StoreError> {
    evaluate_leads_with(store, &rules_of(funnel, now), ids, now).await
}

async fn evaluate_leads_with(
    store: &Store,
    eval: &Evaluator,
    ids: &[LeadId],
    now: DateTime<Utc>,
) -> Result<PassReport, StoreError> {
    let page = store.load_leads(ids, now).await?;
    let mut report = PassReport::default();
    let outcomes = evaluate_with(eval, page).await;
    report.queued += record(&mut report, outcomes, store, now).await?;
    Ok(report)
}

/// Evaluates one lead at `now` (after an event); `None` if there is no such lead.
pub async fn evaluate_lead(
    store: &Store,
    funnel: &Arc<Funnel>,
    id: LeadId,
    now: DateTime<Utc>,
) -> Result<Option<PassReport>, StoreError> {
    let Some(loaded) = store.load_lead(id, now).await? else {
        return Ok(None);
    };
    let mut report = PassReport::default();
    let outcomes = evaluate_off_thread(funnel, vec![loaded], now).await;
    report.queued += record(&mut report, outcomes, store, now).await?;
    Ok(Some(report))
}

/// Counts what the evaluations did and commits their changes; returns new outbox rows.
async fn record(
    report: &mut PassReport,
    evals: Vec<Outcome>,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let (done, changes) = tally(evals);
    report.add(done);
    store.apply_all(&changes, now).await
}

/// A page's evaluations counted (leads, changes, moves, errors; nothing queued yet),
/// and the changes to commit.
type Tally = (PassReport, Vec<LeadChanges>);

/// Tallies a page's evaluations; what is not committed is dropped here.
fn tally(evals: Vec<Outcome>) -> Tally {
    let mut report = PassReport {
        leads: evals.len(),
        ..Default::default()
    };
    let mut changes = Vec::new();
    for outcome in evals {
        let ev = match outcome {
            Outcome::Done(ev) => ev,
            Outcome::Failed(lead, e) => {
                report.absorb(lead, vec![e]);
                continue;
            }
        };
        report.absorb(ev.changes.after.id, ev.errors);
        if !ev.changes.is_empty() {
            report.changed += 1;
            report.moves += ev.changes.moves.len();
            changes.push(ev.changes);
        }
    }
    (report, changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EmailAddress;
    use crate::store::LeadUpsert;

    const NOW: &str = "2026-03-02T10:00:00Z";

    /// The demo funnel in a scratch folder, with `n` leads in `interest`.
    async fn demo(dir: &std::path::Path, n: usize) -> (Store, Arc<Funnel>, DateTime<Utc>) {
        crate::funnel::scaffold::init(dir, false).unwrap();
        let now: DateTime<Utc> = NOW.parse().unwrap();
        let funnel = Arc::new(Funnel::load(&dir.join("embudo.yaml"), now).unwrap());
        let store = Store::open_and_migrate(&funnel.config.database)
            .await
            .unwrap();
        let rows: Vec<LeadUpsert> = (0..n)
            .map(|i| LeadUpsert {
                email: EmailAddress::parse(&format!("lead{i}@example.com")).unwrap(),
                name: None,
                stage: None,
                tags: vec![],
                locale: None,
                timezone: None,
                created_at: None,
                attrs: Default::default(),
            })
            .collect();
        let initial = funnel.config.stages.initial().clone();
        let hour = chrono::Duration::hours(1);
        store
            .upsert_leads(&rows, &initial, false, now - hour)
            .await
            .unwrap();
        (store, funnel, now)
    }

    /// The funnel's rules, except that lead `bad`'s evaluation panics.
    fn panicking_for(funnel: &Arc<Funnel>, now: DateTime<Utc>, bad: LeadId) -> Evaluator {
        let rules = rules_of(funnel, now);
        Arc::new(move |l: LoadedLead| {
            assert!(l.lead.id != bad, "a bug for lead {}", bad.0);
            rules(l)
        })
    }

    async fn welcomed(store: &Store, id: i64) -> bool {
        let sends = store.outbox_of(LeadId(id)).await.unwrap();
        sends.iter().any(|o| o.template.as_str() == "edu-welcome")
    }

    #[tokio::test]
    async fn a_pass_over_several_pages_commits_every_lead_and_a_panic_loses_only_its_lead() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * PAGE as usize + 7;
        let (store, funnel, now) = demo(dir.path(), n).await;
        let bad = LeadId(PAGE + 3);
        let r = evaluate_pages(&store, &panicking_for(&funnel, now, bad), now, Ids::ALL)
            .await
            .unwrap();
        assert_eq!((r.leads, r.changed, r.queued), (n, n - 1, n - 1));
        let (e, leads, sample) = r.errors.values().next().unwrap();
        assert_eq!((r.errors.len(), *leads, *sample), (1, 1, bad), "{e}");
        assert!(e.message.contains("a bug for lead"), "{e}");
        assert!(!welcomed(&store, bad.0).await);
        for id in [1, PAGE, PAGE + 2, PAGE + 4, n as i64] {
            assert!(welcomed(&store, id).await, "lead {id}");
        }

        // The lead left out is evaluated by the next pass; the others are settled.
        let r = evaluate_all(&store, &funnel, now).await.unwrap();
        assert_eq!((r.leads, r.changed, r.queued), (n, 1, 1));
        assert!(welcomed(&store, bad.0).await);
    }

    #[tokio::test]
    async fn leads_named_together_load_and_commit_together_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, funnel, now) = demo(dir.path(), 4).await;
        let eval = panicking_for(&funnel, now, LeadId(2));
        // Lead 3 twice, an id of no lead, and lead 2's evaluation crashes.
        let ids = [3, 1, 3, 99, 2].map(LeadId);
        let r = evaluate_leads_with(&store, &eval, &ids, now).await.unwrap();
        assert_eq!((r.leads, r.changed, r.queued), (3, 2, 2));
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(welcomed(&store, 1).await && welcomed(&store, 3).await);
        assert!(
            !welcomed(&store, 2).await,
            "nothing of a crashed lead is saved"
        );
        assert!(
            !welcomed(&store, 4).await,
            "a lead not named is not evaluated"
        );
        let r = evaluate_leads(&store, &funnel, &ids, now).await.unwrap();
        assert_eq!((r.leads, r.changed, r.queued), (3, 1, 1));
    }
}
