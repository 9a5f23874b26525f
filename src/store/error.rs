//! The one error type of the storage layer, whatever the backend.

/// Errors of the storage layer. The backend's result code decides the variant, never
/// the message text (for SQLite see `sqlite::error`): a full disk is [`StoreError::Full`],
/// a read-only file [`StoreError::ReadOnly`], a lock held too long [`StoreError::Busy`],
/// a failing disk or file [`StoreError::Io`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error(
        "database is busy or locked by another process ({0}); retry, or stop the other embudo process"
    )]
    Busy(sqlx::Error),
    #[error("database is read-only ({0}); check the file's permissions and the disk")]
    ReadOnly(sqlx::Error),
    #[error(
        "disk full: the database could not be written ({0}); free space on its disk (writes work again without a restart)"
    )]
    Full(sqlx::Error),
    #[error("I/O error on the database file ({0}); check the disk and the file system")]
    Io(sqlx::Error),
    #[error("database: {0}")]
    Sql(sqlx::Error),
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
    #[error(
        "database schema version {found} is newer than this embudo knows ({known}); upgrade embudo"
    )]
    TooNew { found: i64, known: i64 },
}

/// What a failure says about the database, as far as the caller can act on it: each
/// backend maps its own codes to one of these, and the class picks the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Another connection holds the lock (past the busy timeout).
    Busy,
    /// The file or its file system cannot be written.
    ReadOnly,
    /// The disk is full.
    Full,
    /// The disk or the file failed (I/O, cannot open, corrupt), or the server is gone.
    Io,
    /// The statement failed for its own reasons.
    Sql,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// What an HTTP client is told: a short cause (`disk full`, `read-only`, `locked`,
    /// `I/O error`, `database error`) and what to do, without the database's own text.
    pub fn public(&self) -> (&'static str, &'static str) {
        match self {
            StoreError::Full(_) => (
                "disk full",
                "the disk holding the database is full; nothing was stored: free space on it and retry (no restart needed)",
            ),
            StoreError::ReadOnly(_) => (
                "read-only",
                "the database cannot be written (read-only file or file system); nothing was stored: fix its permissions or the mount, then retry",
            ),
            StoreError::Busy(_) => (
                "locked",
                "the database stayed locked longer than the write waits (10 s); nothing was stored: retry",
            ),
            StoreError::Io(_) | StoreError::Open { .. } => (
                "I/O error",
                "the database file could not be read or written; nothing was stored: check the disk, then retry",
            ),
            StoreError::Sql(_) | StoreError::Corrupt(_) | StoreError::TooNew { .. } => (
                "database error",
                "the database refused the request; nothing was stored: see the daemon's log",
            ),
        }
    }

    /// Whether this is a failure to write at all (disk, permissions, lock), as opposed
    /// to a problem with one statement.
    pub fn is_write_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Full(_) | StoreError::ReadOnly(_) | StoreError::Busy(_) | StoreError::Io(_)
        )
    }

    /// A stored value that does not parse as its type.
    pub(crate) fn corrupt(what: &str, raw: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(format!("{what} `{raw}`: {why}"))
    }
}
