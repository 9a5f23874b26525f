//! Named settings (the signing key), the operator's pause switches, and the write
//! probe of `/healthz`.

use super::Result;
use chrono::{DateTime, Utc};

operations! {
    /// A tiny write that changes nothing lasting: whether the database takes writes
    /// now (for `/healthz`). It writes a row and commits, so a full disk shows.
    fn probe_write(&self, now: DateTime<Utc>) -> Result<()>;

    /// The value stored under `key`, if any.
    fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Stores `value` under `key` unless a value is there already; returns the stored one.
    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;

    /// The operator's emergency stop: all sending (`None`) or one campaign's.
    fn set_paused(&self, campaign: Option<&str>, paused: bool) -> Result<()>;

    /// Whether all sending is paused, and the campaigns paused one by one.
    fn paused(&self) -> Result<(bool, Vec<String>)>;
}
