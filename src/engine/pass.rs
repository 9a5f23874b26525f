//! One evaluation pass: stream every lead in pages, run the rules off the async
//! workers, commit each page's changes in one transaction; or the same for one lead
//! after its event.

use crate::domain::LeadId;
use crate::funnel::Funnel;
use crate::rules::{Evaluation, RuleError};
use crate::store::{LoadedLead, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

/// Leads loaded and evaluated at a time: memory is bounded by this, not by the table.
pub const PAGE: i64 = 500;

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
    let pass = PASSES.fetch_add(1, Ordering::Relaxed) + 1;
    let span = tracing::info_span!("pass", pass, at = %now);
    evaluate_pages(store, funnel, now).instrument(span).await
}

async fn evaluate_pages(
    store: &Store,
    funnel: &Arc<Funnel>,
    now: DateTime<Utc>,
) -> Result<PassReport, StoreError> {
    let mut report = PassReport::default();
    let mut after = 0;
    loop {
        let page = store.load_page(after, PAGE, now).await?;
        let Some(last) = page.last() else { break };
        after = last.lead.id.0;
        report.leads += page.len();
        let evals = evaluate_off_thread(funnel, page, now).await;
        report.queued += record(&mut report, evals, store, now).await?;
    }
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
    let mut report = PassReport {
        leads: 1,
        ..Default::default()
    };
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
    store.apply_all(&changes, now).await
}

/// One lead's evaluation, or why there is none (its changes are then not applied).
pub enum Outcome {
    Done(Box<Evaluation>),
    Failed(LeadId, RuleError),
}

/// An error for a lead whose evaluation crashed outside any rule.
fn crashed(what: &str, why: &str) -> RuleError {
    RuleError {
        file: "rules".into(),
        rule: String::new(),
        line: 1,
        col: 1,
        message: format!(
            "internal error while evaluating this lead ({what}: {why}); nothing of it was saved"
        ),
    }
}

/// Evaluates a page of leads on a blocking thread. A panic ends only its lead's
/// evaluation (logged with the lead); the page never takes the caller down.
pub async fn evaluate_off_thread(
    funnel: &Arc<Funnel>,
    page: Vec<LoadedLead>,
    now: DateTime<Utc>,
) -> Vec<Outcome> {
    let f = funnel.clone();
    let tz = f.config.default_timezone();
    let ids: Vec<LeadId> = page.iter().map(|l| l.lead.id).collect();
    // A crash is logged in the pass's span, on the blocking thread too.
    let span = tracing::Span::current();
    let joined = tokio::task::spawn_blocking(move || {
        let _span = span.enter();
        page.into_iter()
            .map(|l| {
                let id = l.lead.id;
                match std::panic::catch_unwind(AssertUnwindSafe(|| f.rules.evaluate(l, now, tz))) {
                    Ok(ev) => Outcome::Done(Box::new(ev)),
                    Err(payload) => {
                        let why = crate::rules::panic_message(payload.as_ref());
                        tracing::error!(
                            lead = id.0,
                            panic = %why,
                            "the evaluation of this lead crashed and was abandoned"
                        );
                        Outcome::Failed(id, crashed("a panic", &why))
                    }
                }
            })
            .collect()
    })
    .await;
    match joined {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(
                leads = ids.len(),
                error = %e,
                "the evaluation of a page of leads failed"
            );
            ids.into_iter()
                .map(|id| {
                    Outcome::Failed(id, crashed("the evaluation thread failed", &e.to_string()))
                })
                .collect()
        }
    }
}
