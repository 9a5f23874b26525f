//! One sender per database: the `sender` lease (see `crate::store::lease`), renewed while the
//! sender works. Whoever takes it fresh from a holder whose process is gone puts the
//! rows that holder left `sending` back to `retry` at once, with their Message-IDs;
//! after a holder that merely stopped renewing (another machine), only rows whose own
//! claim has run out are taken back, so a row a live sender holds is never sent twice.

use crate::store::lease::{Acquired, KeepAlive, NamedLease};
use crate::store::{Store, StoreError};
use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

/// How long the lease lasts unless renewed (the holder renews it every 10 s).
const TTL: TimeDelta = TimeDelta::seconds(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Taken fresh; this many rows in flight at a crash were put back to `retry`.
    Taken {
        recovered: u64,
    },
    Renewed,
    /// Another live sender has it.
    Busy {
        holder: String,
    },
}

#[derive(Debug, Clone)]
pub struct SenderLease(NamedLease);

impl Default for SenderLease {
    fn default() -> Self {
        SenderLease::new()
    }
}

impl SenderLease {
    pub fn new() -> SenderLease {
        SenderLease(NamedLease::new("sender", TTL))
    }

    /// Takes or renews the lease.
    pub async fn acquire(&self, store: &Store) -> Result<Lease, StoreError> {
        match self.0.acquire(store).await? {
            Acquired::Busy { holder } => Ok(Lease::Busy { holder }),
            Acquired::Renewed => Ok(Lease::Renewed),
            Acquired::Fresh { dead, expired } => {
                let now = Utc::now();
                let recovered = if dead.is_some() {
                    store.recover_in_flight(now).await?
                } else {
                    if let Some(holder) = expired {
                        tracing::warn!(%holder, "the previous sender stopped renewing its lease; its rows are taken back as their own claims run out");
                    }
                    store.recover_expired_claims(now).await?
                };
                if recovered > 0 {
                    tracing::warn!(
                        rows = recovered,
                        "{recovered} email(s) were in flight when the previous sender stopped: they are retried with their Message-IDs (the server may have accepted some)"
                    );
                }
                Ok(Lease::Taken { recovered })
            }
        }
    }

    /// Renews the lease while the guard lives; cancels `lost` if it is lost.
    pub fn keep_alive(&self, store: &Store, lost: CancellationToken) -> KeepAlive {
        self.0.keep_alive(store, lost)
    }

    pub async fn release(&self, store: &Store) -> Result<(), StoreError> {
        self.0.release(store).await
    }
}
