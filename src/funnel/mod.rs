//! A funnel folder loaded as one unit: config, compiled rules and templates.
//!
//! Commands and the daemon hold an `Arc<Funnel>`; a reload builds a new one whole and
//! swaps it, so a lead is never evaluated against half of a change.
//!
//! Reading a folder is [`load`]'s alone; YAML is [`yaml`]'s alone (parsing and the
//! positions of keys); [`config`] turns embudo.yaml into settings, [`templates`] the
//! templates folder into compiled emails, and [`check`] turns what was read into the
//! problems `embudo check` prints.

pub mod check;
pub mod config;
pub mod diagnostic;
pub mod leadspec;
pub mod load;
pub mod locale;
pub mod plaintext;
pub mod reload;
pub mod scaffold;
pub mod templates;
pub mod yaml;

pub use load::Loaded;

use crate::funnel::config::{Config, ConfigError};
use crate::funnel::templates::{TemplateError, Templates};
use crate::rules::{Audience, RuleError, RuleSet};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum FunnelError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Templates(Vec<TemplateError>),
    #[error("cannot read rules: {0}")]
    Rules(std::io::Error),
}

pub struct Funnel {
    pub config: Config,
    pub rules: RuleSet,
    pub templates: Templates,
    /// Rules (and campaign audiences) that did not compile: left out, reported, the
    /// others run.
    pub rule_errors: Vec<RuleError>,
    /// Each campaign's compiled audience, by campaign id.
    pub audiences: HashMap<String, Audience>,
}

impl Funnel {
    /// Reads the folder of `config_path`, which must be fit to run (see
    /// [`Loaded::into_funnel`]). `now` decides whether a cron still fires.
    pub fn load(config_path: &Path, now: DateTime<Utc>) -> Result<Funnel, FunnelError> {
        Loaded::read(config_path, now)?.into_funnel()
    }

    /// The funnel of an already read, valid `config` (which a caller may have
    /// adjusted, as `simulate` does).
    pub fn from_config(config: Config) -> Result<Funnel, FunnelError> {
        Loaded::from_config(config, Vec::new()).into_funnel()
    }

    /// Logs the rules that were left out.
    pub fn log_rule_errors(&self) {
        for e in &self.rule_errors {
            tracing::error!(file = %e.file, line = e.line, col = e.col, error = %e, "rule left out");
        }
    }
}

/// The funnel the daemon runs, swapped whole by a hot reload. Readers take a snapshot
/// (`current`) for a unit of work, a pass or a delivery round, so no lead is ever
/// evaluated against half of a change.
#[derive(Clone)]
pub struct FunnelCell(Arc<RwLock<Arc<Funnel>>>);

impl FunnelCell {
    pub fn new(funnel: Arc<Funnel>) -> FunnelCell {
        FunnelCell(Arc::new(RwLock::new(funnel)))
    }

    pub fn current(&self) -> Arc<Funnel> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn swap(&self, funnel: Arc<Funnel>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = funnel;
    }
}
