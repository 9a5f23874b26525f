//! The numbers of `embudo report` and `/metrics`, computed by the database so a
//! million leads are not loaded.

use super::Result;
use chrono::{DateTime, TimeDelta, Utc};

operations! {
    /// Leads now in each stage, with the mean time they have been there.
    fn stage_now(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64, TimeDelta)>>;

    /// Finished stays per stage: how many, and their mean length.
    fn stage_stays(&self) -> Result<Vec<(String, i64, TimeDelta)>>;

    /// Leads that were ever in `stage` (its history, or now).
    fn reached(&self, stage: &str) -> Result<i64>;

    /// Leads that moved into `to` after being in `from` (forward conversions only).
    fn converted(&self, from: &str, to: &str) -> Result<i64>;

    /// Outbox rows per template and state (the state's name).
    fn sends_by_template(&self) -> Result<Vec<(String, String, i64)>>;

    /// `open` and `click` events per template (the tracking links record them).
    fn engagement_by_template(&self) -> Result<Vec<(String, String, i64)>>;

    /// What the policy holds back now: reason, rows, earliest release.
    fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>>;
}
