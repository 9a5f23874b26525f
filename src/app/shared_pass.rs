//! A tick's pass shared by every daemon on a PostgreSQL database: the pass at an
//! instant is planned once as batches of lead ids (`store::passes`), each daemon
//! claims batches until none is left, and waits for the batches others hold, taking
//! over any whose holder died (at once when it was on this machine, else when its
//! lease runs out). Every lead is evaluated once per tick however many daemons run.
//!
//! On SQLite the pass is not split: one machine, one writer; the `tick` lease keeps
//! passes from overlapping (see `App::evaluate`).

use super::{App, AppError};
use crate::engine::pass::{Ids, PassReport, evaluate_range};
use crate::store::lease::{dead_on_this_host, new_holder};
use crate::store::{PassBatch, Store};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// A batch's lease lasts this long unless renewed (every third of it).
const TTL: TimeDelta = TimeDelta::seconds(60);

/// How often a daemon with nothing to claim looks again at the batches others hold.
const WAIT: Duration = Duration::from_millis(500);

/// The number of batches a pass is split into when leads allow: enough for several
/// daemons to share, each batch still several pages long.
const BATCHES: u64 = 16;

impl App {
    /// The pass at `at`, shared with the other daemons on this database. Returns what
    /// this process evaluated (its share; batches of earlier passes it took over
    /// included).
    pub(super) async fn evaluate_shared(&self, at: DateTime<Utc>) -> Result<PassReport, AppError> {
        let holder = new_holder();
        let leads = self.store.lead_count().await?;
        let size = (leads / BATCHES).clamp(500, 5_000) as i64;
        let planned = self.store.plan_pass(at, size, Utc::now()).await?;
        tracing::debug!(at = %at, planned, size, "shared pass");
        let mut report = PassReport::default();
        loop {
            let now = Utc::now();
            if let Some(batch) = self.store.claim_pass_batch(&holder, now, now + TTL).await? {
                report.add(self.run_batch(&batch, &holder).await?);
                continue;
            }
            let progress = self.store.pass_progress(at).await?;
            if progress.open.is_empty() {
                return Ok(report);
            }
            if let Some(batch) = self.take_dead(&progress.open, &holder).await? {
                report.add(self.run_batch(&batch, &holder).await?);
                continue;
            }
            tokio::time::sleep(WAIT).await;
        }
    }

    /// Takes over a batch whose holder's process is gone from this machine.
    async fn take_dead(
        &self,
        open: &[PassBatch],
        holder: &str,
    ) -> Result<Option<PassBatch>, AppError> {
        for b in open {
            if let Some(dead) = b.holder.as_deref().filter(|h| dead_on_this_host(h))
                && self
                    .store
                    .take_pass_batch(b, dead, holder, Utc::now() + TTL)
                    .await?
            {
                tracing::warn!(%dead, first = b.first, "a daemon died mid-batch; this one takes the batch over");
                return Ok(Some(PassBatch {
                    holder: Some(holder.to_string()),
                    ..b.clone()
                }));
            }
        }
        Ok(None)
    }

    /// Evaluates one claimed batch at its pass's instant, renewing its lease meanwhile,
    /// and marks it done.
    async fn run_batch(&self, batch: &PassBatch, holder: &str) -> Result<PassReport, AppError> {
        let renew = tokio::spawn(keep_renewing(
            self.store.clone(),
            batch.clone(),
            holder.to_string(),
        ));
        let ids = Ids {
            first: batch.first,
            last: batch.last,
        };
        let result = evaluate_range(&self.store, &self.funnel(), batch.at, ids).await;
        renew.abort();
        let report = result?;
        if !self
            .store
            .finish_pass_batch(batch, holder, Utc::now())
            .await?
        {
            tracing::warn!(
                first = batch.first,
                "this batch's lease was taken over while it ran: another daemon evaluates it again (its emails are not doubled: each has its dedupe key)"
            );
        }
        Ok(report)
    }
}

/// Renews a batch's lease every third of its time until aborted.
async fn keep_renewing(store: Store, batch: PassBatch, holder: String) {
    let every = (TTL / 3).to_std().unwrap_or(Duration::from_secs(20));
    loop {
        tokio::time::sleep(every).await;
        match store
            .renew_pass_batch(&batch, &holder, Utc::now() + TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(first = batch.first, "batch lease lost to another daemon");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "batch lease not renewed"),
        }
    }
}
