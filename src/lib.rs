//! embudo: marketing automation as code.
//!
//! A funnel folder (embudo.yaml, rules/*.rhai, templates/) is loaded into a
//! [`funnel::Funnel`]; [`tick`] evaluates every lead's rules against the clock and
//! queues outbox rows; [`delivery`] sends them. See ARCHITECTURE.md.

pub mod app;
pub mod campaign_cli;
pub mod campaigns;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod diagnostic;
pub mod domain;
pub mod explain;
pub mod funnel;
pub mod health;
pub mod http;
pub mod import;
pub mod leadspec;
pub mod lease;
pub mod logging;
pub mod operator;
pub mod policy;
pub mod preview;
pub mod reload;
pub mod report;
pub mod rules;
pub mod ruletest;
pub mod scaffold;
pub mod schedule;
pub mod seed;
pub mod signing;
pub mod simulate;
pub mod store;
pub mod templates;
pub mod tick;
pub mod tracking;
