//! One sender per database. The sender holds a named lease in the database, renewed
//! while it works; whoever takes the lease fresh knows no other sender is running and
//! puts rows left `sending` by a crashed one back to `retry` at once, with their
//! Message-IDs, instead of waiting for their row leases to run out.

use crate::store::{Store, StoreError};
use chrono::{TimeDelta, Utc};

const NAME: &str = "sender";
/// How long a lease lasts unless renewed (a sender renews it every round).
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
pub struct SenderLease {
    holder: String,
}

impl Default for SenderLease {
    fn default() -> Self {
        SenderLease::new()
    }
}

impl SenderLease {
    pub fn new() -> SenderLease {
        SenderLease {
            holder: format!(
                "{}:{}:{:08x}",
                host(),
                std::process::id(),
                rand::random::<u32>()
            ),
        }
    }

    /// Takes or renews the lease.
    pub async fn acquire(&self, store: &Store) -> Result<Lease, StoreError> {
        let now = Utc::now();
        let current = store.lock_holder(NAME).await?;
        let renewing = current.as_ref().is_some_and(|(h, _)| h == &self.holder);
        if let Some((holder, until)) = &current
            && !renewing
            && *until >= now
            && !dead_on_this_host(holder)
        {
            return Ok(Lease::Busy {
                holder: holder.clone(),
            });
        }
        if !renewing && let Some((holder, _)) = &current {
            store.unlock(NAME, holder).await?;
        }
        if !store.try_lock(NAME, &self.holder, now, now + TTL).await? {
            let holder = store
                .lock_holder(NAME)
                .await?
                .map(|(h, _)| h)
                .unwrap_or_default();
            return Ok(Lease::Busy { holder });
        }
        if renewing {
            return Ok(Lease::Renewed);
        }
        let recovered = store.recover_in_flight(now).await?;
        if recovered > 0 {
            tracing::warn!(
                rows = recovered,
                "{recovered} email(s) were in flight when the previous sender stopped: they are retried with their Message-IDs (the server may have accepted some)"
            );
        }
        Ok(Lease::Taken { recovered })
    }

    pub async fn release(&self, store: &Store) -> Result<(), StoreError> {
        store.unlock(NAME, &self.holder).await
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(':'))
        .unwrap_or_else(|| "localhost".into())
}

/// A holder on this machine whose process is gone (a crash, kill -9): its lease need
/// not be waited out. Elsewhere, or where /proc is missing, the lease's time decides.
fn dead_on_this_host(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(h), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    h == host()
        && std::path::Path::new("/proc/self").exists()
        && pid.parse::<u32>().is_ok_and(|p| {
            p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()
        })
}
