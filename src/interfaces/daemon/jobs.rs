//! The daemon's recurring jobs, run by tokio-cron-scheduler.
//!
//! Each recurring job (the evaluation tick, campaign firings, the reload poll) is a
//! chain of one-shot jobs: a step runs, says when it is next due, and a one-shot job
//! is armed for that instant; when it fires, the step runs again. The instants come
//! from `engine::schedule` (croner and chrono-tz), never from the crate's own
//! zone-aware cron, whose jobs drift an hour after a daylight-saving change
//! (tokio-cron-scheduler issue #107): the scheduler only ever waits for a duration.
//!
//! The daemon's clock may be shifted (`run --now`), so an instant is armed as
//! "(instant − clock.now()) from now". The scheduler counts in whole seconds and looks
//! every half second, so a job is armed at the whole second at or before its instant
//! and tops up the rest itself: a step never runs before its instant, and at most about
//! half a second after it.
//!
//! A step runs in a task of its own: one that panics is logged, shown by `/healthz`,
//! and run again after a backoff (1 s, doubling to a minute), as `supervise` does for
//! the daemon's long-running tasks.

use super::supervise;
use crate::app::health::Health;
use crate::clock::Clock;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

/// When a step is next due, as it says after running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run again at this instant of the daemon's clock.
    At(DateTime<Utc>),
    /// Never again (a schedule with no further firing).
    Stop,
}

/// Why a step runs: at start-up (or a restart after a panic), or at the firing it was
/// armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    Start,
    Due(DateTime<Utc>),
}

/// The scheduler with the daemon's clock, health and shutdown.
#[derive(Clone)]
pub struct Jobs {
    scheduler: JobScheduler,
    clock: Clock,
    health: Health,
    shutdown: CancellationToken,
    in_flight: InFlight,
}

impl Jobs {
    /// Starts the scheduler; jobs are added with [`Jobs::chain`].
    pub async fn start(
        clock: Clock,
        health: Health,
        shutdown: CancellationToken,
    ) -> Result<Jobs, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        scheduler.start().await?;
        Ok(Jobs {
            scheduler,
            clock,
            health,
            shutdown,
            in_flight: InFlight::default(),
        })
    }

    /// Runs `step` now, then again at each instant it returns, until it says
    /// [`Next::Stop`] or the daemon shuts down.
    pub fn chain<F, Fut>(&self, name: &'static str, step: F)
    where
        F: Fn(Firing) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Next> + Send + 'static,
    {
        let chain = Arc::new(Chain {
            name,
            step: Box::new(move |f| Box::pin(step(f))),
            jobs: self.clone(),
            backoff: Mutex::new(None),
        });
        let guard = self.in_flight.enter();
        tokio::spawn(async move {
            let _guard = guard;
            chain.fire(Firing::Start, None).await;
        });
    }

    /// After shutdown: stops the scheduler (no job fires any more) and waits for the
    /// steps in flight to finish their unit of work.
    pub async fn finished(mut self) {
        self.shutdown.cancelled().await;
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "the job scheduler did not stop cleanly");
        }
        self.in_flight.idle().await;
    }

    /// Arms a one-shot job that fires `chain` at `at` on the daemon's clock.
    async fn arm(&self, chain: Arc<Chain>, at: DateTime<Utc>, firing: Firing) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let wait = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
        // Whole seconds, rounded down: the scheduler adds them to the current whole
        // second, so the job fires at or before `at`, and `fire` waits for the rest.
        let wait = Duration::from_secs(wait.as_secs());
        let name = chain.name;
        let in_flight = self.in_flight.clone();
        let job = Job::new_one_shot_async(wait, move |_, _| {
            let chain = chain.clone();
            let guard = in_flight.enter();
            Box::pin(async move {
                let _guard = guard;
                chain.fire(firing, Some(at)).await;
            })
        });
        let added = match job {
            Ok(job) => self.scheduler.add(job).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            // Nothing will run this job again: /healthz says so until a restart.
            tracing::error!(task = name, error = %e, "the daemon's {name} job could not be scheduled; it stops");
            self.health
                .task_down(name, format!("its next firing could not be scheduled: {e}"));
        }
    }
}

type Step = Box<dyn Fn(Firing) -> Pin<Box<dyn Future<Output = Next> + Send>> + Send + Sync>;

/// One recurring job: its step and its restart backoff.
struct Chain {
    name: &'static str,
    step: Step,
    jobs: Jobs,
    /// The wait before the next restart, while the step keeps failing.
    backoff: Mutex<Option<Duration>>,
}

impl Chain {
    /// Runs the step for `firing` once `not_before` has come on the daemon's clock,
    /// and arms the next firing; a panic arms a restart after the backoff.
    /// (Boxed and `Send` by name: the future arms a job that runs this future again.)
    fn fire(
        self: Arc<Self>,
        firing: Firing,
        not_before: Option<DateTime<Utc>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.fire_now(firing, not_before))
    }

    async fn fire_now(self: Arc<Self>, firing: Firing, not_before: Option<DateTime<Utc>>) {
        let jobs = &self.jobs;
        if let Some(at) = not_before {
            let early = (at - jobs.clock.now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(early) => {}
                _ = jobs.shutdown.cancelled() => return,
            }
        }
        if jobs.shutdown.is_cancelled() {
            return;
        }
        match tokio::spawn((self.step)(firing)).await {
            Ok(next) => {
                if self.backoff.lock().await.take().is_some() {
                    jobs.health.task_up(self.name);
                }
                if let Next::At(at) = next {
                    jobs.arm(self.clone(), at, Firing::Due(at)).await;
                }
            }
            Err(e) => {
                if jobs.shutdown.is_cancelled() {
                    return;
                }
                let why = supervise::how_it_ended(e);
                let backoff = {
                    let mut b = self.backoff.lock().await;
                    let now = b.unwrap_or(Duration::from_secs(1));
                    *b = Some(supervise::longer(now));
                    now
                };
                supervise::report_death(&jobs.health, self.name, why, backoff);
                let at = jobs.clock.now() + backoff;
                jobs.arm(self.clone(), at, Firing::Start).await;
            }
        }
    }
}

/// How many steps are running, so shutdown can wait for them.
#[derive(Clone, Default)]
struct InFlight(Arc<(AtomicUsize, Notify)>);

/// One running step; dropping it ends it.
struct Running(InFlight);

impl InFlight {
    fn enter(&self) -> Running {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        Running(self.clone())
    }

    async fn idle(&self) {
        loop {
            let notified = self.0.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.0.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.0.0.fetch_sub(1, Ordering::SeqCst);
        self.0.0.1.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A firing on a shifted clock (`run --now`) runs at its instant of that clock,
    /// never before it, and is told which firing it is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_runs_at_its_instant_on_the_daemons_clock() {
        let clock = Clock::starting_at("2026-03-29T00:59:58Z".parse().unwrap());
        let shutdown = CancellationToken::new();
        let jobs = Jobs::start(clock, Health::new(), shutdown.clone())
            .await
            .unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        jobs.chain("test", move |firing| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((firing, clock.now()));
                match firing {
                    Firing::Start => Next::At("2026-03-29T01:00:00Z".parse().unwrap()),
                    Firing::Due(_) => Next::Stop,
                }
            }
        });
        until("the firing", || seen.lock().unwrap().len() == 2).await;
        let (firing, ran) = seen.lock().unwrap()[1];
        let at = "2026-03-29T01:00:00Z".parse().unwrap();
        assert_eq!(firing, Firing::Due(at));
        assert!(
            ran >= at && ran - at < chrono::TimeDelta::seconds(1),
            "{ran}"
        );
        shutdown.cancel();
        jobs.finished().await;
    }

    /// A step that panics is reported to health and run again after the backoff; once
    /// it runs through, health says it is up again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_that_panics_is_reported_and_restarted() {
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let jobs = Jobs::start(Clock::system(), health.clone(), shutdown.clone())
            .await
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        jobs.chain("test", move |_| {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first run fails");
                }
                Next::Stop
            }
        });
        until("reported down", || {
            health
                .problems()
                .iter()
                .any(|p| p.contains("task `test` is down") && p.contains("the first run fails"))
        })
        .await;
        until("restarted and up", || {
            runs.load(Ordering::SeqCst) == 2 && health.problems().is_empty()
        })
        .await;
        shutdown.cancel();
        jobs.finished().await;
    }
}
