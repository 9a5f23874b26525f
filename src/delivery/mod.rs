//! Delivery: claim due outbox rows with a lease, decide each one's fate, render, send
//! outside any transaction, record the outcome. A temporary failure is retried, never
//! dropped.
//!
//! The round (`round.rs`) is the loop; `facts.rs` reads what a decision needs and
//! `fate.rs` decides, purely; `send.rs` sends one row and records how it ended;
//! `outcome.rs` classifies a failed send for both ways out (`transport.rs`, `direct.rs`).

mod brakes;
mod direct;
mod draft;
mod facts;
pub mod fate;
mod lease;
mod message;
mod outcome;
pub mod probe;
mod round;
mod send;
pub mod signing;
pub mod tracking;
mod transport;

pub use draft::Draft;
pub use fate::Fate;
pub use lease::{Lease, SenderLease};
pub use outcome::SendError;
pub use transport::Mailer;

use crate::delivery::signing::Signer;
use crate::funnel::Funnel;
use crate::store::Store;
use chrono::TimeDelta;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

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
