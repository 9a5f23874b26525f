//! Putting an `App` together: the folder (or a funnel already loaded), the database,
//! the mailer, the link signer and the clock. Written once so the CLI, the daemon and
//! simulate cannot wire the parts differently.

use super::{App, AppError};
use crate::clock::Clock;
use crate::delivery::signing::Signer;
use crate::delivery::{Deliverer, Mailer};
use crate::funnel::{Funnel, FunnelCell};
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the funnel comes from.
pub(super) enum Source {
    /// Load this embudo.yaml and its folder.
    Folder(PathBuf),
    Loaded(Box<Funnel>),
}

/// Built by [`App::builder`]; each part not given is built from the funnel's config.
pub struct AppBuilder {
    pub(super) source: Source,
    pub(super) store: Option<Store>,
    pub(super) mailer: Option<Mailer>,
    pub(super) signer: Option<Signer>,
    pub(super) clock: Clock,
    pub(super) scratch: bool,
}

impl AppBuilder {
    /// Use this database instead of opening the config's `database`.
    pub fn store(mut self, store: Store) -> AppBuilder {
        self.store = Some(store);
        self
    }

    /// Send through this instead of the config's transport (simulate: `Mailer::Dry`).
    pub fn mailer(mut self, mailer: Mailer) -> AppBuilder {
        self.mailer = Some(mailer);
        self
    }

    /// Sign links with this instead of the key kept in the database.
    pub fn signer(mut self, signer: Signer) -> AppBuilder {
        self.signer = Some(signer);
        self
    }

    /// An app alone on a throwaway database (simulate): no leases, and no log line
    /// per pass.
    pub fn scratch(mut self) -> AppBuilder {
        self.scratch = true;
        self
    }

    pub fn clock(mut self, clock: Clock) -> AppBuilder {
        self.clock = clock;
        self
    }

    /// Loads what was not given: the folder (rule errors are logged, not fatal), the
    /// database (opened and migrated), the transport and the signing key.
    pub async fn build(self) -> Result<App, AppError> {
        let funnel = match self.source {
            Source::Folder(path) => Funnel::load(&path, self.clock.now())?,
            Source::Loaded(funnel) => *funnel,
        };
        funnel.log_rule_errors();
        let store = match self.store {
            Some(store) => store,
            None => Store::open_and_migrate(&funnel.config.database).await?,
        };
        let mailer = match self.mailer {
            Some(mailer) => mailer,
            None => Mailer::from_config(&funnel.config).map_err(AppError::Mailer)?,
        };
        let signer = match self.signer {
            Some(signer) => signer,
            None => Signer::from_config(&funnel.config, &store).await?,
        };
        Ok(App {
            deliverer: Deliverer::new(store.clone(), mailer, signer),
            cell: FunnelCell::new(Arc::new(funnel)),
            store,
            health: crate::app::health::Health::new(),
            clock: self.clock,
            scratch: self.scratch,
        })
    }
}
