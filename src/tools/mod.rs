//! The commands that look at a funnel without being the daemon: simulate, explain,
//! report, preview, rule tests and the operator's outbox and consent views.

pub mod bench;
pub mod explain;
pub mod operator;
pub mod preview;
pub mod report;
pub mod ruletest;
pub mod simulate;
