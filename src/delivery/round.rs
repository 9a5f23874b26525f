//! The delivery round: claim due rows in batches, decide each one's fate, send the
//! ones that go (a few at a time, paced by `limits.rate_per_second`), record how each
//! send ended, and stop cleanly at a pause or a stop.

use super::brakes::Brakes;
use super::facts::BatchUsage;
use super::fate::Fate;
use super::send::{Done, InFlight, Outcome};
use super::{Deliverer, DeliveryReport, backoff};
use crate::funnel::Funnel;
use crate::store::{Claimed, LeadBrief, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Rows claimed at a time.
const BATCH: i64 = 100;
/// How long a claim holds before a crashed sender's rows are taken again.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// Sends in flight at once.
const IN_FLIGHT: usize = 4;

/// Numbers the rounds of this process, so a round's log lines can be told apart.
static ROUNDS: AtomicU64 = AtomicU64::new(0);

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

/// How fast a round goes: rows claimed at a time and the gap between two sends.
struct Pace {
    batch: i64,
    gap: Duration,
}

impl Pace {
    fn of(real: bool, rate: f64) -> Pace {
        if !real {
            // A dry run is not paced: its clock is simulated, not the wall's.
            return Pace {
                batch: BATCH,
                gap: Duration::ZERO,
            };
        }
        Pace {
            // About two seconds' worth: rows wait `sending` only briefly, so a pause or
            // a stop has little to hand back.
            batch: ((rate * 2.0).ceil() as i64).clamp(1, BATCH),
            gap: Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX),
        }
    }
}

/// How a batch ended.
enum BatchEnd {
    /// Every row was dealt with: claim the next batch.
    Done,
    /// A pause or a stop: the round ends.
    Halted,
    /// The SMTP server is unreachable: the round ends, the rows wait for their retry.
    Down,
}

/// One batch's sends under way and what the batch has learnt so far.
struct Batch {
    tasks: Running,
    in_flight: HashMap<tokio::task::Id, InFlight>,
    usage: BatchUsage,
    /// Set when the server cannot be reached: the batch's other rows wait for their
    /// next attempt without each trying (and logging) on its own.
    down: Option<String>,
    /// Rows put off because the server was down.
    deferred: usize,
}

impl Batch {
    fn new(marketing_today: u32) -> Batch {
        Batch {
            tasks: Running(JoinSet::new()),
            in_flight: HashMap::new(),
            usage: BatchUsage::new(marketing_today),
            down: None,
            deferred: 0,
        }
    }

    /// The row and outcome of a finished task (none for a task not of this batch).
    fn settle(
        &mut self,
        joined: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    ) -> Result<Option<(InFlight, Outcome)>, StoreError> {
        let (task, outcome) = match joined {
            Ok((task, done)) => (task, done?),
            Err(e) => (e.id(), Outcome::of_lost_task(e)),
        };
        Ok(self.in_flight.remove(&task).map(|row| (row, outcome)))
    }
}

impl Deliverer {
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
        let span = tracing::info_span!(
            "delivery_round",
            round = ROUNDS.fetch_add(1, Ordering::Relaxed) + 1,
            sent = tracing::field::Empty,
            held = tracing::field::Empty,
            retried = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        let report = self
            .round(funnel, &now, stop)
            .instrument(span.clone())
            .await?;
        span.record("sent", report.sent)
            .record("held", report.held)
            .record("retried", report.retried)
            .record("failed", report.failed);
        Ok(report)
    }

    async fn round(
        &self,
        funnel: &Arc<Funnel>,
        now: &impl Fn() -> DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        self.recover_abandoned(now()).await?;
        let mut brakes = Brakes::new(stop.clone());
        if brakes.check(&self.store).await?.is_some() {
            report.paused = brakes.paused;
            return Ok(report);
        }
        let pace = Pace::of(self.mailer.is_real(), funnel.config.limits.rate_per_second);
        let mut next_slot = tokio::time::Instant::now();
        loop {
            let claimed = self
                .store
                .claim_due(now(), pace.batch, LEASE, &brakes.paused_campaigns)
                .await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            let end = self
                .batch(
                    funnel,
                    now,
                    claimed,
                    &mut brakes,
                    &pace,
                    &mut next_slot,
                    &mut report,
                )
                .await?;
            match end {
                BatchEnd::Done => {}
                BatchEnd::Halted => {
                    report.paused = brakes.paused;
                    return Ok(report);
                }
                BatchEnd::Down => return Ok(report),
            }
        }
    }

    /// Rows left `sending` by a round that a database error cut short are nobody's
    /// once its tasks have finished: back to `retry`, with their Message-IDs.
    async fn recover_abandoned(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        if self.live.load(Ordering::SeqCst) > 0 {
            return Ok(());
        }
        let n = self.store.recover_in_flight(now).await?;
        if n > 0 {
            tracing::warn!(
                rows = n,
                "rows left `sending` by an interrupted round are retried"
            );
        }
        Ok(())
    }

    /// Works through one claimed batch: each row in its slot, until the rows run out,
    /// the brakes go on, or the server turns out to be down.
    #[allow(clippy::too_many_arguments)]
    async fn batch(
        &self,
        funnel: &Arc<Funnel>,
        now: &impl Fn() -> DateTime<Utc>,
        claimed: Vec<Claimed>,
        brakes: &mut Brakes,
        pace: &Pace,
        next_slot: &mut tokio::time::Instant,
        report: &mut DeliveryReport,
    ) -> Result<BatchEnd, StoreError> {
        let mut batch = Batch::new(self.marketing_sent_today(funnel, now()).await?);
        let mut rows = claimed.into_iter();
        let mut halted = None;
        for row in rows.by_ref() {
            // Wait for this row's slot (the rate) with the brakes on.
            if let Some(why) = brakes.wait_until(&self.store, *next_slot).await? {
                halted = Some((why, row));
                break;
            }
            let t = now();
            let Some(brief) = self
                .admit(funnel, &row, t, brakes, &mut batch, report)
                .await?
            else {
                continue;
            };
            while batch.tasks.0.len() >= IN_FLIGHT {
                self.collect_one(funnel, now, &mut batch, report).await?;
            }
            *next_slot = (*next_slot).max(tokio::time::Instant::now()) + pace.gap;
            self.start(funnel, row, brief, t, &mut batch);
        }
        if let Some((why, row)) = &halted {
            self.hand_back(why, row, rows, &batch).await?;
        }
        while !batch.tasks.0.is_empty() {
            self.collect_one(funnel, now, &mut batch, report).await?;
        }
        if halted.is_some() {
            return Ok(BatchEnd::Halted);
        }
        let Some(why) = batch.down else {
            return Ok(BatchEnd::Done);
        };
        tracing::warn!(
            deferred = batch.deferred,
            error = %why,
            "the SMTP server is unreachable; {} more email(s) wait for their next attempt",
            batch.deferred
        );
        Ok(BatchEnd::Down)
    }

    /// Decides whether a claimed row is sent now; when not, puts it where it goes
    /// (back to waiting, retried, held, or ended) and counts it.
    async fn admit(
        &self,
        funnel: &Arc<Funnel>,
        row: &Claimed,
        now: DateTime<Utc>,
        brakes: &Brakes,
        batch: &mut Batch,
        report: &mut DeliveryReport,
    ) -> Result<Option<LeadBrief>, StoreError> {
        let campaign_paused = brakes.holds_campaign(row.campaign.as_deref());
        if batch.down.is_some() && !campaign_paused {
            let limits = &funnel.config.limits;
            let at = now + backoff(row.attempts, limits.retry_after.0, self.mailer.is_real());
            let why = "not tried: the SMTP server was unreachable a moment ago";
            self.store.mark_retry(row.id, at, why).await?;
            report.retried += 1;
            batch.deferred += 1;
            return Ok(None);
        }
        self.precheck(funnel, row, now, campaign_paused, &mut batch.usage, report)
            .await
    }

    /// Applies a row's fate: back to waiting, ended, held, or let go (and counted in
    /// the batch's usage, so the next rows' policy sees it).
    async fn precheck(
        &self,
        funnel: &Funnel,
        row: &Claimed,
        now: DateTime<Utc>,
        campaign_paused: bool,
        usage: &mut BatchUsage,
        report: &mut DeliveryReport,
    ) -> Result<Option<LeadBrief>, StoreError> {
        let fate = self
            .fate(funnel, row, now, usage, None, campaign_paused)
            .await?;
        match fate {
            Fate::Paused => {
                self.store.unclaim(&[row.id]).await?;
            }
            Fate::End(ending, why) => {
                let state = ending.state();
                match ending {
                    super::fate::Ending::Stale => report.stale += 1,
                    super::fate::Ending::Expired => report.expired += 1,
                    super::fate::Ending::Suppressed => report.suppressed += 1,
                    super::fate::Ending::Failed => report.failed += 1,
                }
                tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, state = state.as_str(), "{why}");
                self.store.mark_final(row.id, state, &why, now).await?;
            }
            Fate::Hold { reason, until } => {
                tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, until = %until, "held: {reason}");
                self.store.mark_held(row.id, until, &reason).await?;
                report.held += 1;
            }
            Fate::Go(brief) => {
                let transactional = funnel.templates.is_transactional(&row.template);
                usage.count(transactional, row, now);
                return Ok(Some(brief));
            }
        }
        Ok(None)
    }

    /// Starts a row's send in its own task, in its own span.
    fn start(
        &self,
        funnel: &Arc<Funnel>,
        row: Claimed,
        brief: LeadBrief,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) {
        let meta = InFlight {
            id: row.id,
            lead: row.lead_id,
            email: brief.email,
            attempts: row.attempts,
            requested_at: row.requested_at,
        };
        let span = tracing::info_span!(
            "send",
            outbox = row.id,
            lead = row.lead_id.0,
            template = %row.template
        );
        let this = self.clone();
        let funnel = funnel.clone();
        let live = Live::new(&self.live);
        let send = async move {
            let _live = live;
            this.send_one(&funnel, &row, now).await
        };
        let handle = batch.tasks.0.spawn(send.instrument(span));
        batch.in_flight.insert(handle.id(), meta);
    }

    /// Waits for one send of the batch to finish and records it.
    async fn collect_one(
        &self,
        funnel: &Funnel,
        now: &impl Fn() -> DateTime<Utc>,
        batch: &mut Batch,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let Some(joined) = batch.tasks.0.join_next_with_id().await else {
            return Ok(());
        };
        if let Some((row, outcome)) = batch.settle(joined)? {
            self.record(funnel, row, outcome, &mut batch.down, now(), report)
                .await?;
        }
        Ok(())
    }

    /// Puts the claimed rows not yet started (`row` and the `rest`) back to waiting,
    /// unchanged, when the brakes went on.
    async fn hand_back(
        &self,
        why: &str,
        row: &Claimed,
        rest: impl Iterator<Item = Claimed>,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let back: Vec<i64> = std::iter::once(row.id).chain(rest.map(|r| r.id)).collect();
        self.store.unclaim(&back).await?;
        tracing::info!(
            in_flight = batch.tasks.0.len(),
            returned = back.len(),
            "{why}: no new sends; those under way finish, {} claimed email(s) wait unchanged",
            back.len()
        );
        Ok(())
    }
}
