//! Delivery: claim due outbox rows with a lease, render, send outside any
//! transaction, record the outcome. A temporary failure is retried, never dropped.

mod direct;
mod lease;
mod message;
pub mod probe;
pub mod signing;
pub mod tracking;
mod transport;

pub use lease::{Lease, SenderLease};
pub use transport::{Mailer, SendError};

use crate::delivery::signing::Signer;
use crate::domain::{EmailAddress, LeadId};
use crate::engine::policy;
use crate::funnel::Funnel;
use crate::funnel::templates::RenderContext;
use crate::store::{Claimed, LeadBrief, OutboxState, Store, StoreError, Suppression};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
    /// Held back by the sending policy (quiet hours, caps, capacity), to go later.
    pub held: usize,
    /// Not sent because the lead unsubscribed or the address is suppressed.
    pub suppressed: usize,
    /// Hard bounces: the address is now suppressed.
    pub bounced: usize,
    /// Sending is paused (`embudo pause`): nothing was claimed.
    pub paused: bool,
}

impl DeliveryReport {
    pub fn touched(&self) -> usize {
        self.sent
            + self.retried
            + self.failed
            + self.stale
            + self.expired
            + self.held
            + self.suppressed
            + self.bounced
    }
}

#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    mailer: Mailer,
    signer: Signer,
    /// Send tasks still running, including ones a failed round left behind: while any
    /// runs, rows in `sending` may be theirs and are not taken back.
    live: Arc<AtomicUsize>,
}

/// The round's send tasks. Dropped early (a database error ends the round), they are
/// detached, not aborted: a send under way finishes and records its outcome.
struct Running(JoinSet<Done>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.detach_all();
    }
}

/// Counts one live send task.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(counter: &Arc<AtomicUsize>) -> Live {
        counter.fetch_add(1, Ordering::SeqCst);
        Live(counter.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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

/// The row a send task works on, kept outside the task so a panic in it still ends
/// the row instead of leaving it leased.
#[derive(Clone)]
struct InFlight {
    id: i64,
    lead: LeadId,
    email: EmailAddress,
    attempts: i64,
    requested_at: DateTime<Utc>,
}

/// What the sender decides for a claimed row before rendering it.
#[derive(Debug, Clone)]
pub enum Fate {
    /// It ends here, in this state, for this reason.
    End(OutboxState, String),
    /// The policy holds it until then.
    Hold {
        reason: String,
        until: DateTime<Utc>,
    },
    /// It goes now.
    Go(LeadBrief),
}

/// What the sender decided for a claimed row before sending it.
enum Gate {
    /// Ended or held: nothing to send.
    Done,
    Go(LeadBrief),
}

/// What stops a round between two sends: the operator's pause (read from the database
/// at most every half second, so a pause takes effect within a second) and `stop`.
struct Brakes {
    stop: CancellationToken,
    looked: Option<std::time::Instant>,
    paused: bool,
    paused_campaigns: Vec<String>,
}

/// How often a round reads the pause switches.
const PAUSE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

impl Brakes {
    fn new(stop: CancellationToken) -> Brakes {
        Brakes {
            stop,
            looked: None,
            paused: false,
            paused_campaigns: Vec::new(),
        }
    }

    /// Why the round must stop now, if it must.
    async fn check(&mut self, store: &Store) -> Result<Option<&'static str>, StoreError> {
        if self.stop.is_cancelled() {
            return Ok(Some("stopping"));
        }
        if self.looked.is_none_or(|t| t.elapsed() >= PAUSE_POLL) {
            (self.paused, self.paused_campaigns) = store.paused().await?;
            self.looked = Some(std::time::Instant::now());
        }
        Ok(self.paused.then_some("sending is paused"))
    }

    /// Sleeps until `at`, looking at the brakes meanwhile; why it stopped, if it did.
    async fn wait_until(
        &mut self,
        store: &Store,
        at: tokio::time::Instant,
    ) -> Result<Option<&'static str>, StoreError> {
        loop {
            if let Some(why) = self.check(store).await? {
                return Ok(Some(why));
            }
            let now = tokio::time::Instant::now();
            if now >= at {
                return Ok(None);
            }
            let nap = (at - now).min(PAUSE_POLL);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = self.stop.cancelled() => {}
            }
        }
    }

    /// Whether `pause --campaign` holds this campaign's rows.
    fn holds_campaign(&self, campaign: Option<&str>) -> bool {
        campaign.is_some_and(|c| self.paused_campaigns.iter().any(|p| p == c))
    }
}

/// Usage counted across one batch, so the policy sees the sends it has just started.
#[derive(Default)]
struct BatchUsage {
    marketing_today: u32,
    /// The rows started in this batch, per lead, by id: a row already recorded as sent
    /// is both here and in the database, and must count once.
    lead_recent: HashMap<LeadId, Vec<(i64, DateTime<Utc>)>>,
}

impl BatchUsage {
    /// Counts a row that goes now: marketing email uses the day's capacity and the
    /// lead's cap; receipts use neither.
    fn count(&mut self, funnel: &Funnel, row: &Claimed, now: DateTime<Utc>) {
        if !funnel.templates.is_transactional(row.template.as_str()) {
            self.marketing_today += 1;
            self.lead_recent
                .entry(row.lead_id)
                .or_default()
                .push((row.id, now));
        }
    }
}

impl Deliverer {
    pub fn new(store: Store, mailer: Mailer, signer: Signer) -> Deliverer {
        Deliverer {
            store,
            mailer,
            signer,
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The link signer of this funnel (its key read or generated once, at start).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Sends every row due at `now` (in batches, paced by `limits.rate_per_second`),
    /// stamping results with `now`, under the sending policy. Returns when nothing due
    /// is left; at once when sending is paused; and, mid-round, within about a second
    /// of `embudo pause` or of `stop` being cancelled (shutdown, a lost lease): sends
    /// under way finish and are recorded, claimed rows not yet started go back to
    /// waiting unchanged.
    pub async fn deliver_due(
        &self,
        funnel: &Arc<Funnel>,
        now: impl Fn() -> DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        // Rows left `sending` by a round that a database error cut short are nobody's
        // once its tasks have finished: back to `retry`, with their Message-IDs.
        if self.live.load(Ordering::SeqCst) == 0 {
            let n = self.store.recover_in_flight(now()).await?;
            if n > 0 {
                tracing::warn!(
                    rows = n,
                    "rows left `sending` by an interrupted round are retried"
                );
            }
        }
        let mut brakes = Brakes::new(stop.clone());
        if brakes.check(&self.store).await?.is_some() {
            report.paused = brakes.paused;
            return Ok(report);
        }
        let rate = funnel.config.limits.rate_per_second;
        // A dry run is not paced: its clock is simulated, not the wall's.
        let gap = if self.mailer.is_real() {
            std::time::Duration::try_from_secs_f64(1.0 / rate).unwrap_or(std::time::Duration::MAX)
        } else {
            std::time::Duration::ZERO
        };
        // Claim about two seconds' worth: rows wait `sending` only briefly, so a pause
        // or a stop has little to hand back.
        let batch = if self.mailer.is_real() {
            ((rate * 2.0).ceil() as i64).clamp(1, BATCH)
        } else {
            BATCH
        };
        let mut next_slot = tokio::time::Instant::now();
        loop {
            let claimed = self
                .store
                .claim_due(now(), batch, LEASE, &brakes.paused_campaigns)
                .await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            let mut usage = BatchUsage {
                marketing_today: self.marketing_sent_today(funnel, now()).await?,
                ..Default::default()
            };
            let mut tasks = Running(JoinSet::new());
            let mut in_flight: HashMap<tokio::task::Id, InFlight> = HashMap::new();
            // Set when the server cannot be reached: the batch's other rows wait for
            // their next attempt without each trying (and logging) on its own.
            let mut down: Option<String> = None;
            let mut deferred = 0;
            let mut rows = claimed.into_iter();
            let mut halted = None;
            for row in rows.by_ref() {
                // Wait for this row's slot (the rate) with the brakes on.
                if let Some(why) = brakes.wait_until(&self.store, next_slot).await? {
                    halted = Some((why, row));
                    break;
                }
                if brakes.holds_campaign(row.campaign.as_deref()) {
                    self.store.unclaim(&[row.id]).await?;
                    continue;
                }
                let t = now();
                if down.is_some() {
                    let at = t + backoff(
                        row.attempts,
                        funnel.config.limits.retry_after.0,
                        self.mailer.is_real(),
                    );
                    self.store
                        .mark_retry(
                            row.id,
                            at,
                            "not tried: the SMTP server was unreachable a moment ago",
                        )
                        .await?;
                    report.retried += 1;
                    deferred += 1;
                    continue;
                }
                let brief = match self
                    .precheck(funnel, &row, t, &mut usage, &mut report)
                    .await?
                {
                    Gate::Done => continue,
                    Gate::Go(brief) => brief,
                };
                while tasks.0.len() >= IN_FLIGHT {
                    if let Some(done) = tasks.0.join_next_with_id().await {
                        self.record(funnel, &mut down, done, &mut in_flight, now(), &mut report)
                            .await?;
                    }
                }
                next_slot = next_slot.max(tokio::time::Instant::now()) + gap;
                let this = self.clone();
                let f = funnel.clone();
                let meta = InFlight {
                    id: row.id,
                    lead: row.lead_id,
                    email: brief.email,
                    attempts: row.attempts,
                    requested_at: row.requested_at,
                };
                let live = Live::new(&self.live);
                let handle = tasks.0.spawn(async move {
                    let _live = live;
                    this.send_one(&f, &row, t).await
                });
                in_flight.insert(handle.id(), meta);
            }
            let stopped = halted.is_some();
            if let Some((why, row)) = halted {
                let back: Vec<i64> = std::iter::once(row.id).chain(rows.map(|r| r.id)).collect();
                self.store.unclaim(&back).await?;
                tracing::info!(
                    in_flight = tasks.0.len(),
                    returned = back.len(),
                    "{why}: no new sends; those under way finish, {} claimed email(s) wait unchanged",
                    back.len()
                );
            }
            while let Some(done) = tasks.0.join_next_with_id().await {
                self.record(funnel, &mut down, done, &mut in_flight, now(), &mut report)
                    .await?;
            }
            if stopped {
                report.paused = brakes.paused;
                return Ok(report);
            }
            if let Some(why) = down {
                tracing::warn!(
                    deferred,
                    "the SMTP server is unreachable ({why}); {deferred} more email(s) wait for their next attempt"
                );
                return Ok(report);
            }
        }
    }

    /// Records a row the server accepted. The email has left: the record must be
    /// written, so a busy database is waited out (up to about ten minutes) rather than
    /// leaving the row to be sent again.
    async fn record_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            match self.store.mark_sent(id, now).await {
                Ok(()) => return Ok(()),
                Err(
                    e @ (StoreError::Busy(_)
                    | StoreError::Full(_)
                    | StoreError::Io(_)
                    | StoreError::ReadOnly(_)
                    | StoreError::Sql(_)),
                ) if tries < 60 => {
                    tries += 1;
                    tracing::warn!(
                        outbox = id,
                        tries,
                        "accepted by the server, not yet recorded: {e}"
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn marketing_sent_today(
        &self,
        funnel: &Funnel,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        if funnel.config.limits.daily_capacity.is_none() {
            return Ok(0);
        }
        let since = policy::day_start(funnel.config.schedule.timezone.0, now);
        Ok(self
            .store
            .sent_since(since)
            .await?
            .into_iter()
            .filter(|(t, _)| !funnel.templates.is_transactional(t))
            .map(|(_, n)| n as u32)
            .sum())
    }

    /// Applies a row's fate: ends it, holds it, or lets it go (and counts it).
    async fn precheck(
        &self,
        funnel: &Arc<Funnel>,
        row: &Claimed,
        now: DateTime<Utc>,
        usage: &mut BatchUsage,
        report: &mut DeliveryReport,
    ) -> Result<Gate, StoreError> {
        match self.fate(funnel, row, now, usage, None).await? {
            Fate::End(state, why) => {
                match state {
                    OutboxState::Stale => report.stale += 1,
                    OutboxState::Expired => report.expired += 1,
                    OutboxState::Suppressed => report.suppressed += 1,
                    _ => report.failed += 1,
                }
                tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, state = state.as_str(), "{why}");
                self.store.mark_final(row.id, state, &why, now).await?;
                Ok(Gate::Done)
            }
            Fate::Hold { reason, until } => {
                tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, until = %until, "held: {reason}");
                self.store.mark_held(row.id, until, &reason).await?;
                report.held += 1;
                Ok(Gate::Done)
            }
            Fate::Go(brief) => {
                usage.count(funnel, row, now);
                Ok(Gate::Go(brief))
            }
        }
    }

    /// What would happen to these rows, in this order, if they were claimed together at
    /// `now` with the lead in `stage` (where a pass at `now` would leave it): the
    /// decisions the sender makes, each seeing the ones before it, written nowhere.
    /// For `embudo explain`.
    pub async fn fates_now(
        &self,
        funnel: &Arc<Funnel>,
        rows: &[Claimed],
        now: DateTime<Utc>,
        stage: &str,
    ) -> Result<Vec<Fate>, StoreError> {
        let mut usage = BatchUsage {
            marketing_today: self.marketing_sent_today(funnel, now).await?,
            ..Default::default()
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let fate = self.fate(funnel, row, now, &usage, Some(stage)).await?;
            if matches!(fate, Fate::Go(_)) {
                usage.count(funnel, row, now);
            }
            out.push(fate);
        }
        Ok(out)
    }

    /// Decides a claimed row's fate before any rendering: expired, gone, stale,
    /// suppressed, held by the policy, or on its way. Reads, never writes.
    async fn fate(
        &self,
        funnel: &Arc<Funnel>,
        row: &Claimed,
        now: DateTime<Utc>,
        usage: &BatchUsage,
        stage: Option<&str>,
    ) -> Result<Fate, StoreError> {
        let cfg = &funnel.config;
        let since = row.released_at.unwrap_or(row.requested_at);
        if now - since > cfg.limits.expire_after.0 {
            let why = format!(
                "unsent {} after it was {} (limits.expire_after)",
                crate::domain::time::format_duration(now - since),
                if row.released_at.is_some() {
                    "retried"
                } else {
                    "requested"
                }
            );
            return Ok(Fate::End(OutboxState::Expired, why));
        }
        let Some(brief) = self.store.lead_brief(row.lead_id).await? else {
            return Ok(Fate::End(
                OutboxState::Failed,
                "the lead no longer exists".into(),
            ));
        };
        let lead_stage = stage.unwrap_or(brief.stage.as_str());
        let transactional = funnel.templates.is_transactional(row.template.as_str());
        // A receipt is owed whatever the stage: transactional rows never go stale.
        if row.campaign.is_none() && lead_stage != row.stage.as_str() && !transactional {
            let why = format!(
                "requested in stage `{}`, the lead is now in `{lead_stage}`",
                row.stage
            );
            return Ok(Fate::End(OutboxState::Stale, why));
        }
        if !funnel.templates.contains(row.template.as_str()) {
            let why = format!("template `{}` no longer exists", row.template);
            return Ok(Fate::End(OutboxState::Failed, why));
        }
        let suppression = self.store.suppression(&brief.email).await?;
        let blocked = match suppression {
            Some(s) if s.blocks_receipts() => Some(s.as_str()),
            Some(s) if !transactional => Some(s.as_str()),
            None if brief.unsubscribed && !transactional => Some("unsubscribed"),
            _ => None,
        };
        if let Some(reason) = blocked {
            let why = format!("the address is suppressed ({reason})");
            return Ok(Fate::End(OutboxState::Suppressed, why));
        }
        let lead_tz = brief.timezone.unwrap_or_else(|| cfg.default_timezone());
        let mut lead_recent = Vec::new();
        if !transactional && let Some(cap) = &cfg.limits.per_lead {
            let started = usage.lead_recent.get(&row.lead_id);
            let started_ids: Vec<i64> =
                started.iter().flat_map(|v| v.iter().map(|r| r.0)).collect();
            lead_recent = self
                .store
                .lead_sent_since(row.lead_id, now - cap.within.0)
                .await?
                .into_iter()
                .filter(|(id, t, _)| {
                    !started_ids.contains(id) && !funnel.templates.is_transactional(t)
                })
                .map(|(_, _, at)| at)
                .collect();
            lead_recent.extend(started.into_iter().flatten().map(|r| r.1));
        }
        let verdict = policy::judge(
            &cfg.limits,
            cfg.schedule.timezone.0,
            lead_tz,
            transactional,
            &policy::Usage {
                sent_today: usage.marketing_today,
                lead_recent,
            },
            now,
        );
        Ok(match verdict {
            policy::Verdict::Hold { reason, until } => Fate::Hold { reason, until },
            policy::Verdict::Send => Fate::Go(brief),
        })
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
            row.template.as_str(),
            row.campaign.clone(),
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
                // Recorded here, the moment the server has said 250: the window in which
                // a crash makes a duplicate is this one write, not a wait for the batch.
                self.record_sent(row.id, now).await?;
                tracing::info!(outbox = row.id, lead = lead.id.0, email = %lead.email, template = %row.template, message_id = %mid, "sent");
                Outcome::Sent
            }
            Err(SendError::Temporary(why)) => Outcome::Retry {
                why,
                ours: false,
                unreachable: false,
            },
            Err(SendError::Unreachable(why)) => Outcome::Retry {
                why,
                ours: false,
                unreachable: true,
            },
            Err(e @ SendError::Permanent { .. }) => Outcome::Failed(e.to_string()),
            Err(SendError::HardBounce { code, message }) => Outcome::Bounced { code, why: message },
        })
    }

    async fn record(
        &self,
        funnel: &Arc<Funnel>,
        down: &mut Option<String>,
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
            Outcome::Sent => report.sent += 1,
            Outcome::Retry {
                why,
                ours,
                unreachable,
            } => {
                if unreachable {
                    *down = Some(why.clone());
                }
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
                    // A dry run has no thundering herd to spread, and must be repeatable.
                    let jitter = self.mailer.is_real();
                    let at =
                        now + backoff(row.attempts, funnel.config.limits.retry_after.0, jitter);
                    if ours {
                        tracing::error!(outbox = row.id, attempts = row.attempts, retry_at = %at, "not sent: {why}");
                    } else {
                        tracing::warn!(outbox = row.id, attempts = row.attempts, retry_at = %at, "temporary failure, will retry: {why}");
                    }
                    self.store.mark_retry(row.id, at, &why).await?;
                    report.retried += 1;
                }
            }
            Outcome::Bounced { code, why } => {
                tracing::warn!(outbox = row.id, lead = row.lead.0, email = %row.email, "hard bounce, the address is suppressed: {why}");
                self.store
                    .suppress(&row.email, Suppression::Bounced, &why, now)
                    .await?;
                let mut props = crate::domain::ValueMap::new();
                if let Some(c) = code {
                    props.insert("code".into(), crate::domain::Value::Int(c.into()));
                }
                props.insert("reason".into(), crate::domain::Value::Str(why.clone()));
                let event = crate::domain::Event {
                    kind: "bounced".into(),
                    at: now,
                    props,
                };
                self.store.insert_events(&[(row.lead, event)], now).await?;
                self.store
                    .mark_final(
                        row.id,
                        OutboxState::Failed,
                        &format!("hard bounce: {why}"),
                        now,
                    )
                    .await?;
                report.bounced += 1;
            }
            Outcome::Failed(why) => {
                tracing::error!(
                    outbox = row.id,
                    "not sent (the address is kept; check the server's reply and the configuration): {why}"
                );
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
    pub rendered: crate::funnel::templates::Rendered,
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
    ) -> Result<Draft, crate::funnel::templates::TemplateError> {
        let unsubscribe_url =
            signer.unsubscribe_url(&funnel.config.http.public_url, lead.id.0, &lead.email);
        let ctx = RenderContext {
            unsubscribe_url: unsubscribe_url.clone(),
            now,
            campaign,
        };
        let mut rendered = funnel.templates.render(template, lead, &ctx)?;
        // Marketing email counts opens and clicks; receipts are left alone.
        if !rendered.transactional {
            rendered.html = crate::delivery::tracking::track(
                &rendered.html,
                signer,
                &funnel.config.http.public_url,
                &crate::delivery::signing::unsubscribe_payload(lead.id.0, &lead.email),
                template,
                &unsubscribe_url,
            );
        }
        Ok(Draft {
            template: template.to_string(),
            rendered,
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

/// Exponential backoff with jitter: `first` (limits.retry_after, 30 s by default), then
/// double each attempt, capped at 1 h, ±20 % when `jitter`.
pub fn backoff(attempts: i64, first: TimeDelta, jitter: bool) -> TimeDelta {
    let first = first.num_milliseconds().max(1) as f64 / 1000.0;
    let exp = attempts.clamp(1, 16).saturating_sub(1) as i32;
    let secs = (first * 2f64.powi(exp)).min(3600.0);
    let jitter = if jitter {
        0.8 + 0.4 * rand::random::<f64>()
    } else {
        1.0
    };
    TimeDelta::milliseconds((secs * jitter * 1000.0) as i64)
}
