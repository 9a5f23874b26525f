//! One instant of the funnel's work, in the order every caller shares: the campaigns
//! due, then the rules, then delivery. `embudo tick` runs one step at its clock;
//! simulate runs one at every instant of its plan. (The daemon fires campaigns and
//! evaluates through the same verbs, each on its own schedule; its sender keeps the
//! sender lease across rounds instead of taking it for one.)

use super::{App, AppError};
use crate::delivery::DeliveryReport;
use crate::domain::LeadId;
use crate::engine::campaigns::FireReport;
use crate::engine::pass::{PassReport, evaluate_lead, evaluate_leads};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// Whose rules a step runs.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Every lead: a tick.
    Everyone,
    /// These leads only: the reactions to their events.
    Leads(&'a [LeadId]),
    /// No rules: only the sender's round (held or retried emails falling due).
    DeliverOnly,
}

/// What a step did.
#[derive(Debug, Default)]
pub struct StepReport {
    pub campaigns: Vec<FireReport>,
    /// The rules' work; `None` when another process was in a pass (the step stopped
    /// there and delivered nothing: that process's sender delivers).
    pub pass: Option<PassReport>,
    /// `None` when another sender (a running daemon) holds the sender lease, or the
    /// pass was coalesced.
    pub delivery: Option<DeliveryReport>,
}

impl App {
    /// Fires the campaigns due at `now`, runs the rules `step` names, and delivers what
    /// is due at `now`. `stop` ends the delivery between two sends.
    pub async fn step(
        &self,
        step: Step<'_>,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<StepReport, AppError> {
        let campaigns = self.fire_campaigns(now).await?;
        let pass = match step {
            Step::Everyone => self.evaluate(now).await?,
            Step::Leads(ids) => Some(self.evaluate_leads(ids, now).await?),
            Step::DeliverOnly => Some(PassReport::default()),
        };
        let delivery = match pass {
            Some(_) => self.deliver_at(now, stop).await?,
            None => None,
        };
        Ok(StepReport {
            campaigns,
            pass,
            delivery,
        })
    }

    /// Runs the rules of these leads at `now`; the first lead whose rules could not
    /// run stops it (a command or a simulation has nothing better to do).
    pub async fn evaluate_leads(
        &self,
        ids: &[LeadId],
        now: DateTime<Utc>,
    ) -> Result<PassReport, AppError> {
        let (report, failures) = self.evaluate_each(ids, now).await;
        match failures.into_iter().next() {
            Some((_, e)) => Err(e.into()),
            None => Ok(report),
        }
    }

    /// Runs the rules of each of `ids` at `now`, once each, as a pass does: loaded
    /// together, evaluated on the cores, committed in one transaction. If that fails,
    /// nothing of it was committed, and each lead is run alone, so one lead's failure
    /// does not stop the others (events already stored are acknowledged, and the next
    /// pass runs these rules again).
    pub async fn evaluate_each(
        &self,
        ids: &[LeadId],
        now: DateTime<Utc>,
    ) -> (PassReport, Vec<(LeadId, StoreError)>) {
        let funnel = self.funnel();
        let e = match evaluate_leads(&self.store, &funnel, ids, now).await {
            Ok(report) => return (report, Vec::new()),
            Err(e) => e,
        };
        if let [id] = ids {
            return (PassReport::default(), vec![(*id, e)]);
        }
        tracing::warn!(leads = ids.len(), error = %e, "the leads' rules could not run together; running them one by one");
        let mut total = PassReport::default();
        let mut failures = Vec::new();
        for &id in ids {
            match evaluate_lead(&self.store, &funnel, id, now).await {
                Ok(Some(r)) => total.add(r),
                Ok(None) => {}
                Err(e) => failures.push((id, e)),
            }
        }
        (total, failures)
    }
}
