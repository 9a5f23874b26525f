//! Named leases in the database (`locks` table), each held by an owner that is alive:
//! the one sender of a database (`sender`) and the one evaluation pass at a time
//! (`tick`). A holder renews its lease from a keep-alive task while it works, however
//! long the work takes; a lease is taken from another holder only when that holder's
//! process is gone from this machine, or when it has not renewed for the lease's
//! whole time-to-live (another machine, or a frozen process).
//!
//! Leases run on the wall clock, not on a command's `--now`: they coordinate real
//! processes, whatever time each one simulates.

use crate::store::{Result, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

operations! {
    /// Takes the named lease until `until` unless another holder has it unexpired.
    fn try_lock(&self, name: &str, holder: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool>;

    /// Who holds the named lease, and until when.
    fn lock_holder(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>>;

    /// Gives the named lease up, if `holder` has it.
    fn unlock(&self, name: &str, holder: &str) -> Result<()>;
}

/// How a lease was acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Taken fresh. `dead` names the previous holder when its process was gone from
    /// this machine; `expired` when it had stopped renewing.
    Fresh {
        dead: Option<String>,
        expired: Option<String>,
    },
    /// Ours already; renewed.
    Renewed,
    /// Another live holder has it.
    Busy { holder: String },
}

/// One process's claim on a named lease.
#[derive(Debug, Clone)]
pub struct NamedLease {
    name: &'static str,
    holder: String,
    ttl: TimeDelta,
}

impl NamedLease {
    /// A lease `name` for this process, lasting `ttl` unless renewed.
    pub fn new(name: &'static str, ttl: TimeDelta) -> NamedLease {
        NamedLease {
            name,
            holder: new_holder(),
            ttl,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes or renews the lease.
    pub async fn acquire(&self, store: &Store) -> Result<Acquired, StoreError> {
        let now = Utc::now();
        let current = store.lock_holder(self.name).await?;
        let renewing = current.as_ref().is_some_and(|(h, _)| h == &self.holder);
        let mut dead = None;
        let mut expired = None;
        if let Some((holder, until)) = &current
            && !renewing
        {
            if dead_on_this_host(holder) {
                dead = Some(holder.clone());
            } else if *until >= now {
                return Ok(Acquired::Busy {
                    holder: holder.clone(),
                });
            } else {
                expired = Some(holder.clone());
            }
            store.unlock(self.name, holder).await?;
        }
        if !store
            .try_lock(self.name, &self.holder, now, now + self.ttl)
            .await?
        {
            let holder = store
                .lock_holder(self.name)
                .await?
                .map(|(h, _)| h)
                .unwrap_or_default();
            return Ok(Acquired::Busy { holder });
        }
        Ok(if renewing {
            Acquired::Renewed
        } else {
            Acquired::Fresh { dead, expired }
        })
    }

    /// Renews the lease every third of its time-to-live until the returned guard
    /// drops. If another holder turns out to have it, or it could not be renewed for
    /// its whole time-to-live (the database unreachable), `lost` is cancelled: the
    /// work it guards must stop, since someone else may now be doing it.
    pub fn keep_alive(&self, store: &Store, lost: CancellationToken) -> KeepAlive {
        let this = self.clone();
        let store = store.clone();
        let every = (self.ttl / 3).to_std().unwrap_or(Duration::from_secs(10));
        let handle = tokio::spawn(async move {
            let mut last_ok = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                match this.acquire(&store).await {
                    Ok(Acquired::Busy { holder }) => {
                        tracing::error!(lease = this.name, %holder, "lease lost to another process: this one stops that work");
                        lost.cancel();
                        return;
                    }
                    Ok(_) => last_ok = std::time::Instant::now(),
                    Err(e) => {
                        tracing::warn!(lease = this.name, error = %e, "lease not renewed");
                        if last_ok.elapsed() >= this.ttl.to_std().unwrap_or(every * 3) {
                            tracing::error!(
                                lease = this.name,
                                "lease not renewed for its whole time: this one stops that work"
                            );
                            lost.cancel();
                            return;
                        }
                    }
                }
            }
        });
        KeepAlive(handle)
    }

    pub async fn release(&self, store: &Store) -> Result<(), StoreError> {
        store.unlock(self.name, &self.holder).await
    }
}

/// Stops renewing when dropped.
pub struct KeepAlive(tokio::task::JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A new holder name for this process: `host:pid:random`, so a holder on this machine
/// whose process is gone can be told apart ([`dead_on_this_host`]).
pub fn new_holder() -> String {
    format!(
        "{}:{}:{:08x}",
        host(),
        std::process::id(),
        rand::random::<u32>()
    )
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
pub fn dead_on_this_host(holder: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_on_this_host_whose_process_is_gone_is_dead() {
        // PID 2^22 + 1 is above Linux's pid_max.
        assert!(dead_on_this_host(&format!("{}:4194305:00000000", host())));
        assert!(!dead_on_this_host(&format!(
            "{}:{}:00000000",
            host(),
            std::process::id()
        )));
        assert!(!dead_on_this_host("elsewhere.example:1:00000000"));
        assert!(!dead_on_this_host("1234:abc"));
    }

    #[tokio::test]
    async fn a_lease_is_held_by_one_holder_until_it_expires() {
        let t0 = Utc::now();
        let ttl = TimeDelta::seconds(30);
        for store in crate::store::testing::stores().await {
            let e = store.engine();
            assert!(
                store.try_lock("tick", "a", t0, t0 + ttl).await.unwrap(),
                "{e}"
            );
            assert!(
                !store.try_lock("tick", "b", t0, t0 + ttl).await.unwrap(),
                "{e}"
            );
            let held = store.lock_holder("tick").await.unwrap().unwrap();
            assert_eq!(held.0, "a", "{e}");
            assert_eq!(held.1.timestamp_millis(), (t0 + ttl).timestamp_millis());
            // Its holder renews it; another name is another lease.
            let t1 = t0 + TimeDelta::seconds(10);
            assert!(
                store.try_lock("tick", "a", t1, t1 + ttl).await.unwrap(),
                "{e}"
            );
            assert!(
                store.try_lock("sender", "b", t1, t1 + ttl).await.unwrap(),
                "{e}"
            );
            // Not renewed for its whole time: another holder takes it.
            let t2 = t1 + ttl + TimeDelta::milliseconds(1);
            assert!(
                store.try_lock("tick", "b", t2, t2 + ttl).await.unwrap(),
                "{e}"
            );
            assert_eq!(store.lock_holder("tick").await.unwrap().unwrap().0, "b");
            // Only its holder gives it up.
            store.unlock("tick", "a").await.unwrap();
            assert_eq!(store.lock_holder("tick").await.unwrap().unwrap().0, "b");
            store.unlock("tick", "b").await.unwrap();
            assert!(store.lock_holder("tick").await.unwrap().is_none(), "{e}");
            assert!(
                store.try_lock("tick", "a", t2, t2 + ttl).await.unwrap(),
                "{e}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_holders_trying_at_once_one_gets_the_lease() {
        let now = Utc::now();
        for store in crate::store::testing::stores().await {
            for round in 0..5 {
                let name = format!("race{round}");
                let mut tries = tokio::task::JoinSet::new();
                for h in 0..8 {
                    let (store, name) = (store.clone(), name.clone());
                    tries.spawn(async move {
                        let until = now + TimeDelta::seconds(30);
                        let got = store.try_lock(&name, &format!("h{h}"), now, until).await;
                        (format!("h{h}"), got.unwrap())
                    });
                }
                let winners: Vec<String> = tries
                    .join_all()
                    .await
                    .into_iter()
                    .filter(|(_, got)| *got)
                    .map(|(h, _)| h)
                    .collect();
                assert_eq!(winners.len(), 1, "{}: {winners:?}", store.engine());
                let holder = store.lock_holder(&name).await.unwrap().unwrap().0;
                assert_eq!(holder, winners[0], "{}", store.engine());
            }
        }
    }

    #[tokio::test]
    async fn acquire_renews_its_own_lease_and_waits_for_a_live_one() {
        for store in crate::store::testing::stores().await {
            let a = NamedLease::new("tick", TimeDelta::seconds(30));
            let b = NamedLease::new("tick", TimeDelta::seconds(30));
            let fresh = Acquired::Fresh {
                dead: None,
                expired: None,
            };
            assert_eq!(a.acquire(&store).await.unwrap(), fresh);
            assert_eq!(a.acquire(&store).await.unwrap(), Acquired::Renewed);
            let busy = Acquired::Busy {
                holder: a.holder().to_string(),
            };
            assert_eq!(b.acquire(&store).await.unwrap(), busy);
            a.release(&store).await.unwrap();
            assert_eq!(b.acquire(&store).await.unwrap(), fresh);
        }
    }
}
