//! Rules evaluated on the machine's cores, off the async workers: a page of leads is
//! split into one chunk per core, each chunk runs on a blocking thread, and the
//! outcomes come back in the page's order. A lead's rules read only that lead, so
//! splitting a page changes no result. A panic ends only its lead's evaluation.

use crate::domain::LeadId;
use crate::funnel::Funnel;
use crate::rules::{Evaluation, RuleError};
use crate::store::LoadedLead;
use chrono::{DateTime, Utc};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

/// One lead's evaluation, or why there is none (its changes are then not applied).
pub enum Outcome {
    Done(Box<Evaluation>),
    Failed(LeadId, RuleError),
}

/// What evaluates one lead: the funnel's rules at a clock (see [`rules_of`]), shared
/// by the threads of a page.
pub type Evaluator = Arc<dyn Fn(LoadedLead) -> Evaluation + Send + Sync>;

/// The funnel's rules at `now`, in the funnel's default time zone.
pub fn rules_of(funnel: &Arc<Funnel>, now: DateTime<Utc>) -> Evaluator {
    let f = funnel.clone();
    let tz = f.config.default_timezone();
    Arc::new(move |lead| f.rules.evaluate(lead, now, tz))
}

/// The threads a page is split over: one per core the process may use.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Evaluates a page of leads with the funnel's rules at `now`, on the cores. A panic
/// ends only its lead's evaluation (logged with the lead); the page never takes the
/// caller down.
pub async fn evaluate_off_thread(
    funnel: &Arc<Funnel>,
    page: Vec<LoadedLead>,
    now: DateTime<Utc>,
) -> Vec<Outcome> {
    evaluate_with(&rules_of(funnel, now), page).await
}

/// [`evaluate_off_thread`] with any evaluator: one chunk of the page per core.
pub async fn evaluate_with(eval: &Evaluator, page: Vec<LoadedLead>) -> Vec<Outcome> {
    let n = page.len();
    let per_chunk = n.div_ceil(cores()).max(1);
    // A crash is logged in the caller's span (a pass's), on the blocking threads too.
    let span = tracing::Span::current();
    let mut leads = page.into_iter();
    let mut chunks = Vec::new();
    loop {
        let chunk: Vec<LoadedLead> = leads.by_ref().take(per_chunk).collect();
        if chunk.is_empty() {
            break;
        }
        let ids: Vec<LeadId> = chunk.iter().map(|l| l.lead.id).collect();
        let (eval, span) = (eval.clone(), span.clone());
        let task = tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            chunk.into_iter().map(|l| evaluate_one(&eval, l)).collect()
        });
        chunks.push((ids, task));
    }
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(n);
    for (ids, task) in chunks {
        match task.await {
            Ok(done) => outcomes.extend::<Vec<Outcome>>(done),
            Err(e) => {
                tracing::error!(leads = ids.len(), error = %e, "the evaluation of a chunk of leads failed");
                let why = e.to_string();
                outcomes.extend(
                    ids.into_iter().map(|id| {
                        Outcome::Failed(id, crashed("the evaluation thread failed", &why))
                    }),
                );
            }
        }
    }
    outcomes
}

/// One lead's evaluation; a panic is caught and logged with the lead.
fn evaluate_one(eval: &Evaluator, lead: LoadedLead) -> Outcome {
    let id = lead.lead.id;
    match std::panic::catch_unwind(AssertUnwindSafe(|| eval(lead))) {
        Ok(ev) => Outcome::Done(Box::new(ev)),
        Err(payload) => {
            let why = crate::rules::panic_message(payload.as_ref());
            tracing::error!(lead = id.0, panic = %why, "the evaluation of this lead crashed and was abandoned");
            Outcome::Failed(id, crashed("a panic", &why))
        }
    }
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
