//! Delivery: claim due outbox rows with a lease, render, send outside any
//! transaction, record the outcome. A temporary failure is retried, never dropped.

mod message;
mod transport;

pub use transport::{Mailer, SendError};

use crate::funnel::Funnel;
use crate::signing::Signer;
use crate::store::{Claimed, OutboxState, Store, StoreError};
use crate::templates::RenderContext;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Rows claimed at a time.
const BATCH: i64 = 100;
/// How long a claim holds before a crashed sender's rows are taken again.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// Sends in flight at once.
const IN_FLIGHT: usize = 4;

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub stale: usize,
    pub expired: usize,
}

impl DeliveryReport {
    pub fn touched(&self) -> usize {
        self.sent + self.retried + self.failed + self.stale + self.expired
    }
}

#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    mailer: Mailer,
    signer: Signer,
}

/// What a send task reports.
type Done = Result<Outcome, StoreError>;

enum Outcome {
    Sent,
    /// Try again later; `ours` when the fault is in the funnel (a template that does
    /// not render), which is logged as an error, not a warning.
    Retry {
        why: String,
        ours: bool,
    },
    Failed(String),
}

/// The row a send task works on, kept outside the task so a panic in it still ends
/// the row instead of leaving it leased.
#[derive(Clone, Copy)]
struct InFlight {
    id: i64,
    attempts: i64,
    requested_at: DateTime<Utc>,
}

impl Deliverer {
    pub fn new(store: Store, mailer: Mailer, signer: Signer) -> Deliverer {
        Deliverer {
            store,
            mailer,
            signer,
        }
    }

    /// Sends every row due at `now` (in batches, paced by `limits.rate_per_second`),
    /// stamping results with `now`. Returns when nothing due is left.
    pub async fn deliver_due(
        &self,
        funnel: &Arc<Funnel>,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        // A dry run is not paced: its clock is simulated, not the wall's.
        let gap = if self.mailer.is_real() {
            std::time::Duration::from_secs_f64(1.0 / funnel.config.limits.rate_per_second)
        } else {
            std::time::Duration::ZERO
        };
        let mut next_slot = tokio::time::Instant::now();
        loop {
            let claimed = self.store.claim_due(now(), BATCH, LEASE).await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            let mut tasks: JoinSet<Done> = JoinSet::new();
            let mut in_flight: HashMap<tokio::task::Id, InFlight> = HashMap::new();
            for row in claimed {
                let t = now();
                if let Some(state) = self.precheck(funnel, &row, t).await? {
                    match state {
                        OutboxState::Stale => report.stale += 1,
                        OutboxState::Expired => report.expired += 1,
                        _ => report.failed += 1,
                    }
                    continue;
                }
                while tasks.len() >= IN_FLIGHT {
                    if let Some(done) = tasks.join_next_with_id().await {
                        self.record(funnel, done, &mut in_flight, now(), &mut report)
                            .await?;
                    }
                }
                tokio::time::sleep_until(next_slot).await;
                next_slot = next_slot.max(tokio::time::Instant::now()) + gap;
                let this = self.clone();
                let f = funnel.clone();
                let meta = InFlight {
                    id: row.id,
                    attempts: row.attempts,
                    requested_at: row.requested_at,
                };
                let handle = tasks.spawn(async move { this.send_one(&f, &row, t).await });
                in_flight.insert(handle.id(), meta);
            }
            while let Some(done) = tasks.join_next_with_id().await {
                self.record(funnel, done, &mut in_flight, now(), &mut report)
                    .await?;
            }
        }
    }

    /// Ends rows that must not be sent: expired, stale, or for a lead that is gone or
    /// unsubscribed. Returns the state given, or `None` to send.
    async fn precheck(
        &self,
        funnel: &Arc<Funnel>,
        row: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxState>, StoreError> {
        let cfg = &funnel.config;
        let end = |state: OutboxState, why: String| async move {
            tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, state = state.as_str(), "{why}");
            self.store
                .mark_final(row.id, state, &why, now)
                .await
                .map(|_| Some(state))
        };
        if now - row.requested_at > cfg.limits.expire_after.0 {
            return end(
                OutboxState::Expired,
                format!(
                    "unsent {} after it was requested (limits.expire_after)",
                    crate::domain::time::format_duration(now - row.requested_at)
                ),
            )
            .await;
        }
        let Some(stage) = self.store.lead_stage(row.lead_id).await? else {
            return end(OutboxState::Failed, "the lead no longer exists".into()).await;
        };
        // A receipt is owed whatever the stage: transactional rows never go stale.
        if row.campaign.is_none()
            && stage != row.stage
            && !funnel.templates.is_transactional(&row.template)
        {
            return end(
                OutboxState::Stale,
                format!(
                    "requested in stage `{}`, the lead is now in `{}`",
                    row.stage, stage
                ),
            )
            .await;
        }
        if !funnel.templates.contains(&row.template) {
            return end(
                OutboxState::Failed,
                format!("template `{}` no longer exists", row.template),
            )
            .await;
        }
        Ok(None)
    }

    async fn send_one(
        &self,
        funnel: &Arc<Funnel>,
        row: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let cfg = &funnel.config;
        let Some(loaded) = self.store.load_lead(row.lead_id, now).await? else {
            return Ok(Outcome::Failed("the lead no longer exists".into()));
        };
        let lead = loaded.lead;
        let draft = match Draft::render(
            funnel,
            &self.signer,
            &lead,
            &row.template,
            row.campaign.clone(),
            now,
        ) {
            Ok(d) => d,
            Err(e) => {
                let why = format!("rendering: {e}; fix the template and the row is retried");
                return Ok(Outcome::Retry { why, ours: true });
            }
        };
        if lead.unsubscribed_at.is_some() && !draft.rendered.transactional {
            return Ok(Outcome::Failed("the lead unsubscribed".into()));
        }
        let mid = match &row.message_id {
            Some(m) => m.clone(),
            None => {
                self.store
                    .assign_message_id(row.id, &message::new_message_id(row.id, &cfg.smtp.from))
                    .await?
            }
        };
        let msg = match draft.message(funnel, &lead, &mid, now) {
            Ok(m) => m,
            Err(e) => return Ok(Outcome::Failed(e)),
        };
        Ok(match self.mailer.send(msg).await {
            Ok(()) => {
                tracing::info!(outbox = row.id, lead = lead.id.0, email = %lead.email, template = %row.template, message_id = %mid, "sent");
                Outcome::Sent
            }
            Err(SendError::Temporary(why)) => Outcome::Retry { why, ours: false },
            Err(e @ SendError::Permanent { .. }) => Outcome::Failed(e.to_string()),
        })
    }

    async fn record(
        &self,
        funnel: &Arc<Funnel>,
        done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
        in_flight: &mut HashMap<tokio::task::Id, InFlight>,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let (task, outcome) = match done {
            Ok((task, outcome)) => (task, outcome?),
            Err(e) => {
                // A bug, not the lead's fault: end this row loudly, keep the others going.
                let task = e.id();
                let why = match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic".into()),
                    Err(e) => e.to_string(),
                };
                (
                    task,
                    Outcome::Failed(format!("internal error while preparing the email: {why}")),
                )
            }
        };
        let Some(row) = in_flight.remove(&task) else {
            return Ok(());
        };
        match outcome {
            Outcome::Sent => {
                self.store.mark_sent(row.id, now).await?;
                report.sent += 1;
            }
            Outcome::Retry { why, ours } => {
                if now - row.requested_at > funnel.config.limits.retry_for.0 {
                    tracing::error!(
                        outbox = row.id,
                        attempts = row.attempts,
                        "giving up after limits.retry_for: {why}"
                    );
                    self.store
                        .mark_final(
                            row.id,
                            OutboxState::Failed,
                            &format!("gave up retrying: {why}"),
                            now,
                        )
                        .await?;
                    report.failed += 1;
                } else {
                    let at = now + backoff(row.attempts);
                    if ours {
                        tracing::error!(outbox = row.id, attempts = row.attempts, retry_at = %at, "not sent: {why}");
                    } else {
                        tracing::warn!(outbox = row.id, attempts = row.attempts, retry_at = %at, "temporary failure, will retry: {why}");
                    }
                    self.store.mark_retry(row.id, at, &why).await?;
                    report.retried += 1;
                }
            }
            Outcome::Failed(why) => {
                tracing::error!(outbox = row.id, "not sent: {why}");
                self.store
                    .mark_final(row.id, OutboxState::Failed, &why, now)
                    .await?;
                report.failed += 1;
            }
        }
        Ok(())
    }
}

/// An email rendered for one lead, before it has a Message-ID: what the sender sends
/// and what `preview` shows, built by the same code.
pub struct Draft {
    pub template: String,
    pub rendered: crate::templates::Rendered,
    pub unsubscribe_url: String,
}

impl Draft {
    pub fn render(
        funnel: &Funnel,
        signer: &Signer,
        lead: &crate::domain::Lead,
        template: &str,
        campaign: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Draft, crate::templates::TemplateError> {
        let unsubscribe_url = signer.unsubscribe_url(&funnel.config.http.public_url, lead.id.0);
        let ctx = RenderContext {
            unsubscribe_url: unsubscribe_url.clone(),
            now,
            campaign,
        };
        Ok(Draft {
            template: template.to_string(),
            rendered: funnel.templates.render(template, lead, &ctx)?,
            unsubscribe_url,
        })
    }

    /// The MIME message with every header a marketing email must carry.
    pub fn message(
        &self,
        funnel: &Funnel,
        lead: &crate::domain::Lead,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<lettre::Message, String> {
        let cfg = &funnel.config;
        let headers = message::Headers {
            from: &cfg.smtp.from,
            message_id,
            unsubscribe_url: &self.unsubscribe_url,
            unsubscribe_mailto: cfg.http.unsubscribe_mailto.as_deref(),
            template: &self.template,
        };
        message::build(lead, &self.rendered, &headers, now)
    }
}

/// A Message-ID for an email that has no outbox row (a preview or test send).
pub fn loose_message_id(funnel: &Funnel) -> String {
    message::new_message_id(0, &funnel.config.smtp.from)
}

/// Exponential backoff with jitter: 30 s, 1 min, 2 min … capped at 1 h, ±20 %.
pub fn backoff(attempts: i64) -> TimeDelta {
    let base = 30_i64 << attempts.clamp(1, 8).saturating_sub(1);
    let secs = base.min(3600) as f64;
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    TimeDelta::milliseconds((secs * jitter * 1000.0) as i64)
}
