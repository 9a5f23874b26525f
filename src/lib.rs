//! embudo: marketing automation as code.
//!
//! A funnel folder (embudo.yaml, rules/*.rhai, templates/) is loaded into a
//! [`funnel::Funnel`]; [`engine::pass`] evaluates every lead's rules against the clock
//! and queues outbox rows; [`delivery`] sends them. The modules are layered, each using
//! only those listed before it: see ARCHITECTURE.md.

pub mod app;
pub mod clock;
pub mod delivery;
pub mod domain;
pub mod engine;
pub mod funnel;
pub mod ingest;
pub mod interfaces;
pub mod rules;
pub mod store;
pub mod tools;
