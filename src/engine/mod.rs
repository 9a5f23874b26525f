//! What the daemon decides and when: the evaluation pass, the sending policy, cron
//! schedules in a zone, and campaign firings.

pub mod campaigns;
pub mod pass;
pub mod policy;
pub mod pool;
pub mod schedule;
