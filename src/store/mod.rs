//! The database, as the rest of embudo sees it: one [`Store`] handle whose operations
//! are declared here, concern by concern (`leads`, `ingest`, `outbox`, `consent`,
//! `campaigns`, `timeline`, `report`, `settings`, `lease`, `copy`), with the rows they read and
//! write and one error type, [`StoreError`]. SQL lives only in a backend: today
//! `sqlite/` (SQLite through sqlx) or `postgres/` (PostgreSQL through sqlx).
//!
//! **Why an enum of backends behind a declared interface.** Every operation is declared
//! once, with its documentation, in an `operations!` block of the concern it belongs
//! to; the macro writes the [`Store`] method that hands it to the backend in use. A
//! backend implements each declared operation as an inherent `async fn` of the same
//! name and signature (the compiler checks every one, per backend). A trait was not
//! chosen: async methods of a trait cannot be called through `dyn`, and a generic
//! `Store<B>` would spread a type parameter through every caller. PostgreSQL is a
//! sibling, not a rewrite: a `store/postgres/` module implementing the same
//! operations, one more `Backend` variant, one more arm in `operations!` and in
//! [`Store::open`] (chosen by the URL's scheme).
//!
//! **Conventions every backend keeps.** Instants are stored as milliseconds since the
//! epoch (UTC). Every write that records a time is stamped with the caller's clock
//! (`now`), never the database's nor the wall clock, so `--now` and simulation work;
//! the exceptions are the named leases ([`lease`]), which coordinate real processes
//! and so run on the wall clock, and the bookkeeping time a migration was applied.
//! Rows come back typed: a stored state, stage or template name that does not parse
//! is an error ([`StoreError::Corrupt`]), never a silent default. [`StoreError`] wraps
//! sqlx's error, the driver of SQLite and PostgreSQL alike; each backend classifies
//! its own database's result codes into its variants.

/// Declares the operations of one concern: each becomes a [`Store`] method that calls
/// the backend's method of the same name. Only `&self` methods with named arguments
/// (no patterns) are declared; attributes and documentation carry over.
macro_rules! operations {
    ($(
        $(#[$attr:meta])*
        fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) $(-> $ret:ty)?;
    )*) => {
        impl $crate::store::Store {
            $(
                $(#[$attr])*
                pub async fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
                    match &self.backend {
                        $crate::store::Backend::Sqlite(db) => db.$name($($arg),*).await,
                        $crate::store::Backend::Postgres(db) => db.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

mod campaigns;
mod consent;
pub mod copy;
mod error;
#[cfg(test)]
pub mod fixture;
mod ingest;
mod leads;
pub mod lease;
mod loading;
mod outbox;
mod passes;
mod postgres;
mod report;
mod settings;
mod shared_sql;
mod sqlite;
#[cfg(test)]
pub mod testing;
mod timeline;

pub use crate::domain::evaluation::{
    EVENTS_PER_KIND, LeadChanges, LoadedLead, NewSend, OlderEvents,
};
pub use campaigns::{Firing, FiringState};
pub use consent::{LeadBrief, Suppression};
pub use copy::{Cell, Copied, CopyError};
pub use error::{Result, StoreError};
pub use ingest::{IDEMPOTENCY_TTL, IdempotencyKey, Recorded, Replay};
pub use leads::{HistoryEntry, LeadUpsert, UpsertResult};
pub use outbox::{Claimed, Origin, OutboxFilter, OutboxRow, OutboxState, Unsent};
pub use passes::{PassBatch, PassProgress};
pub use postgres::{postgres_is_local, recreate_database, redact_url};
pub use report::{ConversionCount, Occurrence, Period, SegmentBy, Spread, TemplateFigures};
pub use sqlite::sqlite_file;
pub use timeline::MoveRow;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

/// The database engines embudo can keep its data in.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// An open transaction of a copy ([`copy`]): a snapshot of the source, or the
/// target's write transaction. Dropped unfinished, it rolls back. Declared here, with
/// [`Backend`], as it holds a transaction of either backend.
pub struct CopySession(SessionTx);

enum SessionTx {
    Sqlite(sqlite::copy::Session),
    Postgres(postgres::copy::Session),
}

impl Store {
    /// Opens the database at `url`: `postgres://` and `postgresql://` on a PostgreSQL
    /// server, anything else as SQLite (creating the file if needed). Does not migrate.
    pub async fn open(url: &str) -> Result<Store> {
        let backend = if is_postgres(url) {
            Backend::Postgres(postgres::PgStore::open(url).await?)
        } else {
            Backend::Sqlite(sqlite::SqliteStore::open(url).await?)
        };
        Ok(Store { backend })
    }

    /// Whether several daemons share each tick's pass (PostgreSQL, where daemons on
    /// several machines write side by side) rather than take turns (SQLite: one
    /// machine, one writer, one pass at a time under the `tick` lease).
    pub fn shares_passes(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The name of the engine behind this handle, for logs and `health`.
    pub fn engine(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens and brings the schema up to date: what every command does first.
    pub async fn open_and_migrate(url: &str) -> Result<Store> {
        let store = Store::open(url).await?;
        store.migrate().await?;
        Ok(store)
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

operations! {
    /// Applies the migrations not yet applied; returns how many ran.
    fn migrate(&self) -> Result<usize>;

    /// Closes every connection; the handle is not used afterwards.
    fn close(&self);
}
