//! The application: the funnel, its database, the sender and the clock, put together
//! in one place (`builder`), and the operations every interface calls on them. (The
//! operator's commands on the outbox and consent open only the database, so they work
//! while the folder has a broken rule.)

mod builder;
pub mod events;
pub mod health;
mod shared_pass;
mod step;

pub use builder::AppBuilder;
use builder::Source;
pub use step::{Step, StepReport};

use crate::clock::Clock;
use crate::delivery::{Deliverer, DeliveryReport, Lease, SenderLease};
use crate::engine::pass::{PassReport, evaluate_all};
use crate::funnel::{Funnel, FunnelCell, FunnelError};
use crate::store::lease::{Acquired, NamedLease};
use crate::store::{Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Errors below the CLI, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Funnel(#[from] FunnelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("smtp: {0}")]
    Mailer(String),
    #[error(transparent)]
    Import(#[from] crate::ingest::csv::ImportError),
    #[error("{0}")]
    Usage(String),
    /// An email that could not be sent now (a test send): a runtime failure.
    #[error("{0}")]
    Send(String),
    /// The daemon's job scheduler (tokio-cron-scheduler) did not start.
    #[error("the job scheduler did not start: {0}")]
    Scheduler(String),
}

impl AppError {
    /// The exit code: 2 for configuration and usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Funnel(_) | AppError::Mailer(_) | AppError::Usage(_) => 2,
            AppError::Import(
                crate::ingest::csv::ImportError::Header { .. }
                | crate::ingest::csv::ImportError::Read { .. },
            ) => 2,
            _ => 1,
        }
    }
}

/// The loaded funnel, the database and the way out.
#[derive(Clone)]
pub struct App {
    /// Swapped whole by the daemon's hot reload; read it through `funnel()`.
    pub cell: FunnelCell,
    pub store: Store,
    pub deliverer: Deliverer,
    /// What the daemon's tasks report about themselves; `/healthz` reads it.
    pub health: crate::app::health::Health,
    /// The command's one clock: what `now` means when a caller does not say.
    pub clock: Clock,
    /// Alone on a throwaway database (simulate): no other process to coordinate with,
    /// so no leases (they run on the wall clock), and passes are not logged one by one
    /// (thousands of them; the errors are reported once, at the end).
    scratch: bool,
}

impl App {
    /// Loads the funnel folder, opens and migrates the database, builds the transport:
    /// `App::builder(config_path).build()`.
    pub async fn open(config_path: &Path) -> Result<App, AppError> {
        App::builder(config_path).build().await
    }

    /// The one way an `App` is put together; every part but the folder can be given
    /// instead of built from it (simulate brings a scratch database and a dry mailer).
    pub fn builder(config_path: &Path) -> AppBuilder {
        AppBuilder {
            source: Source::Folder(config_path.to_path_buf()),
            store: None,
            mailer: None,
            signer: None,
            clock: Clock::system(),
            scratch: false,
        }
    }

    /// An `App` for a funnel already loaded (simulate edits its database URL first).
    pub fn builder_for(funnel: Funnel) -> AppBuilder {
        AppBuilder {
            source: Source::Loaded(Box::new(funnel)),
            ..App::builder(Path::new(""))
        }
    }

    /// The lead an email or an id names, with its history as of `now`; `None` when it
    /// names none. Each interface says in its own words what to do then.
    pub async fn lead(
        &self,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::store::LoadedLead>, StoreError> {
        match self.store.find_lead_id(who).await? {
            Some(id) => self.store.load_lead(id, now).await,
            None => Ok(None),
        }
    }

    /// The funnel as of now: one snapshot per unit of work.
    pub fn funnel(&self) -> Arc<Funnel> {
        self.cell.current()
    }

    /// One evaluation pass at `now`, unless another process is in one (then `None`:
    /// the tick is coalesced into the running one and logged).
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Result<Option<PassReport>, AppError> {
        if self.scratch {
            return Ok(Some(evaluate_all(&self.store, &self.funnel(), now).await?));
        }
        // Renewed while the pass runs, however long; a holder that died is not waited for.
        let lease = NamedLease::new("tick", TimeDelta::seconds(60));
        match lease.acquire(&self.store).await? {
            Acquired::Busy { holder } => {
                tracing::warn!(%holder, "another tick is running; this one is coalesced into it");
                return Ok(None);
            }
            Acquired::Fresh {
                dead: Some(holder), ..
            } => {
                tracing::warn!(%holder, "the previous pass's process is gone; its tick lock is taken over")
            }
            _ => {}
        }
        let keep = lease.keep_alive(&self.store, CancellationToken::new());
        let started = std::time::Instant::now();
        let result = evaluate_all(&self.store, &self.funnel(), now).await;
        drop(keep);
        lease.release(&self.store).await?;
        let report = result?;
        log_pass(&report, now, started);
        Ok(Some(report))
    }

    /// The pass of a daemon's tick firing at `at`: shared with the other daemons where
    /// they share passes (PostgreSQL: every daemon computes the same firing instant and
    /// takes its share of the same pass), else [`App::evaluate`]. Only firings share:
    /// `embudo tick --now T` run twice evaluates twice, as it always has.
    pub async fn evaluate_firing(&self, at: DateTime<Utc>) -> Result<Option<PassReport>, AppError> {
        if self.scratch || !self.store.shares_passes() {
            return self.evaluate(at).await;
        }
        let started = std::time::Instant::now();
        let report = self.evaluate_shared(at).await?;
        log_pass(&report, at, started);
        Ok(Some(report))
    }

    /// Fires the campaigns due at or before `now` and not yet fired, under the
    /// `campaigns` lease: with several daemons on a database each reaches a firing on
    /// its own clock, and only one at a time may look at what is due, or two would
    /// both find a firing not yet done and both run it (their emails deduped by key,
    /// but the firing's record overwritten by the one that found nothing left to
    /// queue). A daemon that finds the lease held fires nothing: the holder does, and
    /// should it die, the next look (within a minute) resumes its firing.
    pub async fn fire_campaigns(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::engine::campaigns::FireReport>, AppError> {
        let funnel = self.funnel();
        if self.scratch || funnel.config.campaigns.is_empty() {
            return Ok(crate::engine::campaigns::fire_due(&self.store, &funnel, now).await?);
        }
        let lease = NamedLease::new("campaigns", TimeDelta::seconds(60));
        if let Acquired::Busy { holder } = lease.acquire(&self.store).await? {
            tracing::debug!(%holder, "another process fires the campaigns");
            return Ok(Vec::new());
        }
        let keep = lease.keep_alive(&self.store, CancellationToken::new());
        let fired = crate::engine::campaigns::fire_due(&self.store, &funnel, now).await;
        drop(keep);
        lease.release(&self.store).await?;
        Ok(fired?)
    }

    /// Delivers what is due at `now` with the fixed clock `now` (for `tick --now`);
    /// `None` when a running daemon holds the sender lease (it delivers instead).
    /// `stop` ends the delivery between two sends (Ctrl-C, SIGTERM).
    pub async fn deliver_at(
        &self,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Result<Option<DeliveryReport>, AppError> {
        let funnel = self.funnel();
        if self.scratch {
            return Ok(Some(
                self.deliverer.deliver_due(&funnel, || now, stop).await?,
            ));
        }
        let lease = SenderLease::new();
        if let Lease::Busy { holder } = lease.acquire(&self.store).await? {
            tracing::info!(%holder, "another sender (a running daemon) delivers; this tick only evaluated");
            return Ok(None);
        }
        let stop = stop.child_token();
        let keep = lease.keep_alive(&self.store, stop.clone());
        let report = self.deliverer.deliver_due(&funnel, || now, &stop).await;
        drop(keep);
        lease.release(&self.store).await?;
        Ok(Some(report?))
    }
}

/// The log of a pass: its errors, one line each, and what it did.
fn log_pass(report: &PassReport, now: DateTime<Utc>, started: std::time::Instant) {
    report.log_errors();
    tracing::info!(
        at = %now,
        leads = report.leads,
        changed = report.changed,
        queued = report.queued,
        moves = report.moves,
        rule_errors = report.errors.len(),
        ms = started.elapsed().as_millis() as u64,
        "evaluation pass"
    );
}
