//! One send and what came of it: render the row, hand it to the way out, and record
//! the outcome (sent, retried with backoff, failed, or bounced and suppressed).

use super::draft::Draft;
use super::outcome::SendError;
use super::{Deliverer, DeliveryReport, backoff, message};
use crate::domain::{EmailAddress, Event, LeadId, Value, ValueMap};
use crate::funnel::Funnel;
use crate::store::{Claimed, OutboxState, StoreError, Suppression};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// What a send task reports.
pub(super) type Done = Result<Outcome, StoreError>;

/// How one send ended, as the round records it.
pub(super) enum Outcome {
    Sent,
    /// Try again later; `ours` when the fault is in the funnel (a template that does
    /// not render), which is logged as an error, not a warning.
    Retry {
        why: String,
        ours: bool,
        /// The server could not be reached: the rest of the batch waits too.
        unreachable: bool,
    },
    Failed(String),
    /// The server says the address does not exist: suppress it.
    Bounced {
        code: Option<u16>,
        why: String,
    },
}

impl From<SendError> for Outcome {
    fn from(e: SendError) -> Outcome {
        match e {
            SendError::Temporary(why) => Outcome::Retry {
                why,
                ours: false,
                unreachable: false,
            },
            SendError::Unreachable(why) => Outcome::Retry {
                why,
                ours: false,
                unreachable: true,
            },
            e @ SendError::Permanent { .. } => Outcome::Failed(e.to_string()),
            SendError::HardBounce { code, message } => Outcome::Bounced { code, why: message },
        }
    }
}

impl Outcome {
    /// A send task that did not finish (a panic: a bug, not the lead's fault) fails its
    /// row loudly; the others keep going.
    pub(super) fn of_lost_task(e: tokio::task::JoinError) -> Outcome {
        let why = match e.try_into_panic() {
            Ok(p) => crate::rules::panic_message(p.as_ref()),
            Err(e) => e.to_string(),
        };
        Outcome::Failed(format!("internal error while preparing the email: {why}"))
    }
}

/// The row a send task works on, kept outside the task so a panic in it still ends
/// the row instead of leaving it leased.
#[derive(Clone)]
pub(super) struct InFlight {
    pub(super) id: i64,
    pub(super) lead: LeadId,
    pub(super) email: EmailAddress,
    pub(super) attempts: i64,
    pub(super) requested_at: DateTime<Utc>,
    /// Counts against the daily capacity (not a receipt).
    pub(super) marketing: bool,
}

impl Deliverer {
    /// Renders and sends one row; a send the server accepted is recorded at once.
    pub(super) async fn send_one(
        &self,
        funnel: &Arc<Funnel>,
        row: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let Some(loaded) = self.store.load_lead(row.lead_id, now).await? else {
            return Ok(Outcome::Failed("the lead no longer exists".into()));
        };
        let lead = loaded.lead;
        let campaign = row.campaign.clone();
        let draft = match Draft::render(
            funnel,
            &self.signer,
            &lead,
            row.template.as_str(),
            campaign,
            now,
        ) {
            Ok(d) => d,
            Err(e) => {
                let why = format!("rendering: {e}; fix the template and the row is retried");
                return Ok(Outcome::Retry {
                    why,
                    ours: true,
                    unreachable: false,
                });
            }
        };
        // A row sent by an older version kept the Message-ID it was given then.
        let mid = match &row.message_id {
            Some(m) => m.clone(),
            None => message::row_message_id(row.id, &self.signer, &funnel.config.smtp.from),
        };
        let msg = match draft.message(funnel, &lead, &mid, now) {
            Ok(m) => m,
            Err(e) => return Ok(Outcome::Failed(e)),
        };
        if let Err(e) = self.mailer.send(msg).await {
            return Ok(e.into());
        }
        // Recorded here, the moment the server has said 250: the window in which a
        // crash makes a duplicate is this one write, not a wait for the batch.
        self.record_sent(row.id, now, &mid).await?;
        tracing::info!(outbox = row.id, lead = lead.id.0, email = %lead.email, template = %row.template, message_id = %mid, "sent");
        Ok(Outcome::Sent)
    }

    /// Records a row the server accepted. The email has left: the record must be
    /// written, so a busy database is waited out (up to about ten minutes) rather than
    /// leaving the row to be sent again.
    async fn record_sent(
        &self,
        id: i64,
        now: DateTime<Utc>,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            match self.store.mark_sent(id, now, message_id).await {
                Ok(()) => return Ok(()),
                Err(
                    e @ (StoreError::Busy(_)
                    | StoreError::Full(_)
                    | StoreError::Io(_)
                    | StoreError::ReadOnly(_)
                    | StoreError::Sql(_)),
                ) if tries < 60 => {
                    tries += 1;
                    tracing::warn!(outbox = id, tries, error = %e, "accepted by the server, not yet recorded");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records how a send ended. An unreachable server is noted in `down`, so the
    /// round's next rows wait without trying.
    pub(super) async fn record(
        &self,
        funnel: &Funnel,
        row: InFlight,
        outcome: Outcome,
        down: &mut Option<String>,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        match outcome {
            Outcome::Sent => report.sent += 1,
            Outcome::Retry {
                why,
                ours,
                unreachable,
            } => {
                if unreachable {
                    *down = Some(why.clone());
                }
                self.record_retry(funnel, &row, &why, ours, now, report)
                    .await?;
            }
            Outcome::Bounced { code, why } => {
                self.record_bounce(&row, code, &why, now).await?;
                report.bounced += 1;
            }
            Outcome::Failed(why) => {
                tracing::error!(
                    outbox = row.id,
                    error = %why,
                    "not sent (the address is kept; check the server's reply and the configuration)"
                );
                self.store
                    .mark_final(row.id, OutboxState::Failed, &why, now)
                    .await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// A temporary failure: retried after a backoff, or given up once the row has been
    /// retried for `limits.retry_for`.
    async fn record_retry(
        &self,
        funnel: &Funnel,
        row: &InFlight,
        why: &str,
        ours: bool,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let limits = &funnel.config.limits;
        if now - row.requested_at > limits.retry_for.0 {
            tracing::error!(outbox = row.id, attempts = row.attempts, error = %why, "giving up after limits.retry_for");
            let why = format!("gave up retrying: {why}");
            self.store
                .mark_final(row.id, OutboxState::Failed, &why, now)
                .await?;
            report.failed += 1;
            return Ok(());
        }
        // A dry run has no thundering herd to spread, and must be repeatable.
        let jitter = self.mailer.is_real();
        let at = now + backoff(row.attempts, limits.retry_after.0, jitter);
        if ours {
            tracing::error!(outbox = row.id, attempts = row.attempts, retry_at = %at, error = %why, "not sent");
        } else {
            tracing::warn!(outbox = row.id, attempts = row.attempts, retry_at = %at, error = %why, "temporary failure, will retry");
        }
        let mid = message::row_message_id(row.id, &self.signer, &funnel.config.smtp.from);
        self.store.mark_retry(row.id, at, why, Some(&mid)).await?;
        report.retried += 1;
        Ok(())
    }

    /// A hard bounce: the address is suppressed, the lead gets a `bounced` event (for
    /// rules to react to) and the row fails.
    async fn record_bounce(
        &self,
        row: &InFlight,
        code: Option<u16>,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        tracing::warn!(outbox = row.id, lead = row.lead.0, email = %row.email, error = %why, "hard bounce, the address is suppressed");
        self.store
            .suppress(&row.email, Suppression::Bounced, why, now)
            .await?;
        let mut props = ValueMap::new();
        if let Some(c) = code {
            props.insert("code".into(), Value::Int(c.into()));
        }
        props.insert("reason".into(), Value::Str(why.to_string()));
        let event = Event {
            kind: "bounced".into(),
            at: now,
            props,
        };
        self.store.insert_events(&[(row.lead, event)], now).await?;
        let why = format!("hard bounce: {why}");
        self.store
            .mark_final(row.id, OutboxState::Failed, &why, now)
            .await
    }
}
