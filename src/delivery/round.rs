//! The delivery round: claim due rows in batches, decide each one's fate, send the
//! ones that go (a few at a time, paced by `limits.rate_per_second`), record how each
//! send ended, and stop cleanly at a pause or a stop.

use super::brakes::Brakes;
use super::facts::{BatchUsage, Known};
use super::fate::{Ending, Fate};
use super::send::{Done, InFlight, Outcome};
use super::{Deliverer, DeliveryReport, backoff};
use crate::funnel::Funnel;
use crate::store::{Claimed, LeadBrief, StoreError, Unsent};
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
/// Rows claimed at a time after a batch of which none went (the policy held or ended
/// them all, as when the day's capacity is used up): deciding costs little next to
/// sending, and the per-batch reads and writes are shared by more rows.
const SET_ASIDE_BATCH: i64 = 1000;
/// How long a claim holds before a crashed sender's rows are taken again.
const LEASE: TimeDelta = TimeDelta::minutes(5);

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
    /// Rows claimed at a time after a batch that sent nothing.
    quiet_batch: i64,
    gap: Duration,
}

impl Pace {
    fn of(real: bool, rate: f64) -> Pace {
        if !real {
            // A dry run is not paced: its clock is simulated, not the wall's.
            return Pace {
                batch: BATCH,
                quiet_batch: SET_ASIDE_BATCH,
                gap: Duration::ZERO,
            };
        }
        Pace {
            // About two seconds' worth: rows wait `sending` only briefly, so a pause or
            // a stop has little to hand back.
            batch: ((rate * 2.0).ceil() as i64).clamp(1, BATCH),
            // Should they go after all, a minute's worth at most: well within the
            // lease, and a pause hands the rest back unchanged.
            quiet_batch: ((rate * 60.0).ceil() as i64).clamp(1, SET_ASIDE_BATCH),
            gap: Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX),
        }
    }

    /// Rows to claim next, after a batch that started `sends` sends (`None`: none yet).
    fn next_batch(&self, sends: Option<usize>) -> i64 {
        match sends {
            Some(0) => self.quiet_batch.max(self.batch),
            _ => self.batch,
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
    /// What the store said about the batch's leads when it was claimed.
    known: Known,
    /// Rows decided not to go now (held, ended), recorded together when the batch's
    /// rows have all been looked at: one write a batch, not one a row.
    aside: Vec<Unsent>,
    /// Rows of a paused campaign, to go back to waiting unchanged.
    back: Vec<i64>,
    /// Sends started.
    started: usize,
    /// Set when the server cannot be reached: the batch's other rows wait for their
    /// next attempt without each trying (and logging) on its own.
    down: Option<String>,
    /// Rows put off because the server was down.
    deferred: usize,
}

impl Batch {
    fn new(marketing_today: u32, known: Known) -> Batch {
        Batch {
            tasks: Running(JoinSet::new()),
            in_flight: HashMap::new(),
            usage: BatchUsage::new(marketing_today),
            known,
            aside: Vec::new(),
            back: Vec::new(),
            started: 0,
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

/// One round under way: what it works with and what it has done so far.
struct Round<'a, F> {
    sender: &'a Deliverer,
    funnel: &'a Arc<Funnel>,
    now: &'a F,
    brakes: Brakes,
    pace: Pace,
    /// When the next send may start (the rate).
    next_slot: tokio::time::Instant,
    /// Sends the last batch started (`None` before the first).
    last_sends: Option<usize>,
    /// The day's marketing sends as counted from the database at the round's first
    /// batch of that day (its start), plus those this round has recorded since: the
    /// database is read once a day, not once a batch (a count that grew with every
    /// email of the day). Only one sender holds the lease, so no one else adds to it.
    today: Option<(DateTime<Utc>, u32)>,
    report: DeliveryReport,
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
        let round = Round {
            sender: self,
            funnel,
            now: &now,
            brakes: Brakes::new(stop.clone()),
            pace: Pace::of(self.mailer.is_real(), funnel.config.limits.rate_per_second),
            next_slot: tokio::time::Instant::now(),
            last_sends: None,
            today: None,
            report: DeliveryReport::default(),
        };
        let report = round.run().instrument(span.clone()).await?;
        span.record("sent", report.sent)
            .record("held", report.held)
            .record("retried", report.retried)
            .record("failed", report.failed);
        Ok(report)
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
}

impl<F: Fn() -> DateTime<Utc>> Round<'_, F> {
    /// Claims and works through batches until nothing due is left, the brakes go on,
    /// or the server is down.
    async fn run(mut self) -> Result<DeliveryReport, StoreError> {
        let store = &self.sender.store;
        self.sender.recover_abandoned((self.now)()).await?;
        if self.brakes.check(store).await?.is_some() {
            self.report.paused = self.brakes.paused;
            return Ok(self.report);
        }
        loop {
            let claimed = store
                .claim_due(
                    (self.now)(),
                    self.pace.next_batch(self.last_sends),
                    LEASE,
                    &self.brakes.paused_campaigns,
                )
                .await?;
            if claimed.is_empty() {
                return Ok(self.report);
            }
            match self.batch(claimed).await? {
                BatchEnd::Done => {}
                BatchEnd::Halted => {
                    self.report.paused = self.brakes.paused;
                    return Ok(self.report);
                }
                BatchEnd::Down => return Ok(self.report),
            }
        }
    }

    /// Works through one claimed batch: each row in its slot, until the rows run out,
    /// the brakes go on, or the server turns out to be down.
    async fn batch(&mut self, claimed: Vec<Claimed>) -> Result<BatchEnd, StoreError> {
        let store = &self.sender.store;
        let t = (self.now)();
        let today = self.marketing_sent_today(t).await?;
        let known = self.sender.known(self.funnel, &claimed, t, None).await?;
        let mut batch = Batch::new(today, known);
        let mut rows = claimed.into_iter();
        let mut halted = None;
        for row in rows.by_ref() {
            // Wait for this row's slot (the rate) with the brakes on.
            if let Some(why) = self.brakes.wait_until(store, self.next_slot).await? {
                halted = Some((why, row));
                break;
            }
            let t = (self.now)();
            let Some(brief) = self.admit(&row, t, &mut batch).await? else {
                continue;
            };
            while batch.tasks.0.len() >= self.funnel.config.smtp.connections {
                self.collect_one(&mut batch).await?;
            }
            self.next_slot = self.next_slot.max(tokio::time::Instant::now()) + self.pace.gap;
            self.start(row, brief, t, &mut batch);
        }
        self.set_aside(&mut batch).await?;
        self.last_sends = Some(batch.started);
        if let Some((why, row)) = &halted {
            self.hand_back(why, row, rows, &batch).await?;
        }
        while !batch.tasks.0.is_empty() {
            self.collect_one(&mut batch).await?;
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

    /// The day's marketing sends before this batch.
    async fn marketing_sent_today(&mut self, now: DateTime<Utc>) -> Result<u32, StoreError> {
        let day = crate::engine::policy::day_start(self.funnel.config.schedule.timezone.0, now);
        match self.today {
            Some((d, n)) if d == day => Ok(n),
            _ => {
                let n = self.sender.marketing_sent_today(self.funnel, now).await?;
                self.today = Some((day, n));
                Ok(n)
            }
        }
    }

    /// Decides whether a claimed row is sent now; when not, puts it where it goes
    /// (back to waiting, retried, held, or ended) and counts it.
    async fn admit(
        &mut self,
        row: &Claimed,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Result<Option<LeadBrief>, StoreError> {
        let campaign_paused = self.brakes.holds_campaign(row.campaign.as_deref());
        if batch.down.is_some() && !campaign_paused {
            let first = self.funnel.config.limits.retry_after.0;
            let at = now + backoff(row.attempts, first, self.sender.mailer.is_real());
            let why = "not tried: the SMTP server was unreachable a moment ago";
            self.sender.store.mark_retry(row.id, at, why, None).await?;
            self.report.retried += 1;
            batch.deferred += 1;
            return Ok(None);
        }
        let usage = &batch.usage;
        let mut fate = batch
            .known
            .fate(self.funnel, row, now, usage, campaign_paused);
        if matches!(fate, Fate::Go(_)) {
            // A send is decided on what the store says at its turn, not at the batch's
            // start: an unsubscribe or a stage move in between is obeyed.
            fate = self
                .sender
                .fate(self.funnel, row, now, usage, None, campaign_paused)
                .await?;
        }
        Ok(self.apply(row, fate, now, batch))
    }

    /// Applies a row's fate: back to waiting, ended, held (both recorded with the
    /// batch's others), or let go (and counted in the batch's usage, so the next rows'
    /// policy sees it).
    fn apply(
        &mut self,
        row: &Claimed,
        fate: Fate,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Option<LeadBrief> {
        let report = &mut self.report;
        match fate {
            Fate::Paused => batch.back.push(row.id),
            Fate::End(ending, why) => {
                let state = ending.state();
                match ending {
                    Ending::Stale => report.stale += 1,
                    Ending::Expired => report.expired += 1,
                    Ending::Suppressed => report.suppressed += 1,
                    Ending::Failed => report.failed += 1,
                }
                tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, state = state.as_str(), "{why}");
                batch.aside.push(Unsent::Ended {
                    id: row.id,
                    state,
                    reason: why,
                    at: now,
                });
            }
            Fate::Hold { reason, until } => {
                tracing::info!(outbox = row.id, lead = row.lead_id.0, template = %row.template, until = %until, "held: {reason}");
                batch.aside.push(Unsent::Held {
                    id: row.id,
                    until,
                    reason,
                });
                report.held += 1;
            }
            Fate::Go(brief) => {
                let transactional = self
                    .funnel
                    .templates
                    .is_transactional(row.template.as_str());
                batch.usage.count(transactional, row, now);
                return Some(brief);
            }
        }
        None
    }

    /// Records the batch's rows decided not to go now: held or ended rows in one
    /// transaction, paused campaigns' rows back to waiting. Until then they stay
    /// `sending` under the batch's lease, so a crash in between loses none: they are
    /// taken back and decided again.
    async fn set_aside(&self, batch: &mut Batch) -> Result<(), StoreError> {
        let store = &self.sender.store;
        if !batch.aside.is_empty() {
            store.set_aside(&std::mem::take(&mut batch.aside)).await?;
        }
        if !batch.back.is_empty() {
            store.unclaim(&std::mem::take(&mut batch.back)).await?;
        }
        Ok(())
    }

    /// Starts a row's send in its own task, in its own span.
    fn start(&self, row: Claimed, brief: LeadBrief, now: DateTime<Utc>, batch: &mut Batch) {
        let meta = InFlight {
            id: row.id,
            lead: row.lead_id,
            email: brief.email,
            attempts: row.attempts,
            requested_at: row.requested_at,
            marketing: !self
                .funnel
                .templates
                .is_transactional(row.template.as_str()),
        };
        let span = tracing::info_span!(
            "send",
            outbox = row.id,
            lead = row.lead_id.0,
            template = %row.template
        );
        let sender = self.sender.clone();
        let funnel = self.funnel.clone();
        let live = Live::new(&self.sender.live);
        let send = async move {
            let _live = live;
            sender.send_one(&funnel, &row, now).await
        };
        let handle = batch.tasks.0.spawn(send.instrument(span));
        batch.in_flight.insert(handle.id(), meta);
        batch.started += 1;
    }

    /// Waits for one send of the batch to finish and records it.
    async fn collect_one(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        let Some(joined) = batch.tasks.0.join_next_with_id().await else {
            return Ok(());
        };
        let Some((row, outcome)) = batch.settle(joined)? else {
            return Ok(());
        };
        let now = (self.now)();
        if let (Outcome::Sent, true, Some((_, n))) = (&outcome, row.marketing, &mut self.today) {
            *n += 1;
        }
        self.sender
            .record(
                self.funnel,
                row,
                outcome,
                &mut batch.down,
                now,
                &mut self.report,
            )
            .await
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
        self.sender.store.unclaim(&back).await?;
        tracing::info!(
            in_flight = batch.tasks.0.len(),
            returned = back.len(),
            "{why}: no new sends; those under way finish, {} claimed email(s) wait unchanged",
            back.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Pace;

    #[test]
    fn after_a_batch_that_sent_nothing_more_rows_are_claimed_never_over_a_minute_of_sends() {
        let demo = Pace::of(true, 20.0);
        assert_eq!(demo.next_batch(None), 40);
        assert_eq!(demo.next_batch(Some(3)), 40);
        assert_eq!(demo.next_batch(Some(0)), 1000);
        let slow = Pace::of(true, 0.5);
        assert_eq!(
            (slow.next_batch(Some(1)), slow.next_batch(Some(0))),
            (1, 30)
        );
        let dry = Pace::of(false, 0.5);
        assert_eq!((dry.next_batch(None), dry.next_batch(Some(0))), (100, 1000));
    }
}
