//! How SQLite's failures become [`StoreError`]s: by SQLite's result code, never by
//! the text of its message (which changes between versions and locales).

use crate::store::StoreError;
use crate::store::error::Class;
use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteError;
use std::sync::atomic::{AtomicBool, Ordering};

/// SQLite's primary result codes that decide how an error is classified.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// The class of a SQLite result code. SQLite reports extended codes (the primary code
/// plus `n << 8`, e.g. SQLITE_IOERR_FSYNC = 10 | 4 << 8): the low byte decides.
fn class_of_code(code: i64) -> Class {
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => Class::Busy,
        SQLITE_READONLY => Class::ReadOnly,
        SQLITE_FULL => Class::Full,
        SQLITE_IOERR | SQLITE_CANTOPEN | SQLITE_CORRUPT => Class::Io,
        _ => Class::Sql,
    }
}

/// The class of an error from sqlx: a database's own error by its code (SQLite's
/// extended result code here, PostgreSQL's SQLSTATE in `postgres::error`), an I/O
/// error as such, anything else (a pool timeout, a decoding error) as a statement's
/// failure. A code is read only by the backend whose error type carries it: the same
/// number means other things elsewhere.
pub(in crate::store) fn class_of(e: &sqlx::Error) -> Class {
    match e {
        sqlx::Error::Database(db) => {
            if let Some(e) = db.try_downcast_ref::<SqliteError>() {
                e.code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .map_or(Class::Sql, class_of_code)
            } else {
                crate::store::postgres::class_of(db.as_ref())
            }
        }
        sqlx::Error::Io(_) => Class::Io,
        _ => Class::Sql,
    }
}

/// Set when a connection met a disk-full or I/O error: every connection handed back
/// to the pool is then closed instead of kept (its state is suspect: a failed commit
/// can leave a transaction open on it), until a write commits again.
static SUSPECT: AtomicBool = AtomicBool::new(false);

/// Marks pooled connections suspect (`true`), or trusted again after a commit.
pub(super) fn suspect(yes: bool) {
    SUSPECT.store(yes, Ordering::SeqCst);
}

/// Whether a connection handed back to the pool may be kept.
pub(super) fn connections_trusted() -> bool {
    !SUSPECT.load(Ordering::SeqCst)
}

/// Every sqlx error of the SQLite backend becomes a [`StoreError`] here (the `?` in
/// its SQL). A second backend on sqlx classifies its own errors beside this one (an
/// arm per backend, chosen by the database error's type), never by message text.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        of_class(class_of(&e), e)
    }
}

/// An error of the synchronous reads (`raw`), classified by its SQLite result code as
/// the driver's are; a value that does not convert to its column's type is a corrupt
/// row.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let class = match &e {
            rusqlite::Error::SqliteFailure(f, _) => class_of_code(i64::from(f.extended_code)),
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => return StoreError::Corrupt(e.to_string()),
            _ => Class::Sql,
        };
        of_class(class, sqlx::Error::Io(std::io::Error::other(e)))
    }
}

/// The variant of a class, marking the pooled connections suspect after a full disk
/// or an I/O error.
fn of_class(class: Class, e: sqlx::Error) -> StoreError {
    match class {
        Class::Busy => StoreError::Busy(e),
        Class::ReadOnly => StoreError::ReadOnly(e),
        Class::Full => {
            suspect(true);
            StoreError::Full(e)
        }
        Class::Io => {
            suspect(true);
            StoreError::Io(e)
        }
        Class::Sql => StoreError::Sql(e),
    }
}

/// A failure to write the disk probe next to the database: ENOSPC is a full disk.
pub(super) fn probe_failed(e: std::io::Error) -> StoreError {
    let full = e.raw_os_error() == Some(28); // ENOSPC
    of_class(
        if full { Class::Full } else { Class::Io },
        sqlx::Error::Io(e),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use std::str::FromStr;

    #[test]
    fn primary_and_extended_codes_are_classified_by_their_low_byte() {
        let cases = [
            (5, Class::Busy),
            (5 | 2 << 8, Class::Busy), // SQLITE_BUSY_SNAPSHOT
            (6, Class::Busy),
            (6 | 1 << 8, Class::Busy), // SQLITE_LOCKED_SHAREDCACHE
            (8, Class::ReadOnly),
            (8 | 4 << 8, Class::ReadOnly), // SQLITE_READONLY_DBMOVED
            (10, Class::Io),
            (10 | 4 << 8, Class::Io), // SQLITE_IOERR_FSYNC
            (11, Class::Io),
            (13, Class::Full),
            (14, Class::Io),
            (14 | 1 << 8, Class::Io),  // SQLITE_CANTOPEN_NOTEMPDIR
            (1, Class::Sql),           // SQLITE_ERROR: a bad statement
            (19, Class::Sql),          // SQLITE_CONSTRAINT
            (19 | 8 << 8, Class::Sql), // SQLITE_CONSTRAINT_UNIQUE
            (2067, Class::Sql),        // SQLITE_CONSTRAINT_UNIQUE, as SQLite reports it
        ];
        for (code, class) in cases {
            assert_eq!(class_of_code(code), class, "code {code}");
        }
    }

    #[test]
    fn errors_that_are_not_the_database_s_are_classified_by_their_kind() {
        let io = sqlx::Error::Io(std::io::Error::other("disk went away"));
        assert_eq!(class_of(&io), Class::Io);
        assert_eq!(class_of(&sqlx::Error::PoolTimedOut), Class::Sql);
        assert_eq!(class_of(&sqlx::Error::RowNotFound), Class::Sql);
    }

    /// A database error of another backend, whose code happens to be SQLite's FULL.
    #[derive(Debug)]
    struct Elsewhere;

    impl std::fmt::Display for Elsewhere {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("another database's error")
        }
    }

    impl std::error::Error for Elsewhere {}

    impl DatabaseError for Elsewhere {
        fn message(&self) -> &str {
            "another database's error"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some("13".into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn another_backend_s_codes_are_not_read_as_sqlite_s() {
        let e = sqlx::Error::Database(Box::new(Elsewhere));
        assert_eq!(class_of(&e), Class::Sql);
    }

    async fn memory() -> SqliteConnection {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    /// Real failures from SQLite, each turned into the variant its message names.
    #[tokio::test]
    async fn sqlite_s_own_failures_become_their_variants() {
        let mut c = memory().await;
        sqlx::query("PRAGMA query_only = ON")
            .execute(&mut c)
            .await
            .unwrap();
        let e = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut c)
            .await
            .unwrap_err();
        assert!(matches!(StoreError::from(e), StoreError::ReadOnly(_)));

        let mut c = memory().await;
        sqlx::query("PRAGMA max_page_count = 2")
            .execute(&mut c)
            .await
            .unwrap();
        let e = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&mut c)
            .await
            .unwrap_err();
        // By its class: converting it would mark the process's pooled connections
        // suspect while other tests run.
        assert_eq!(class_of(&e), Class::Full);

        let e = sqlx::query("INSERT INTO nowhere VALUES (1)")
            .execute(&mut c)
            .await
            .unwrap_err();
        assert!(matches!(StoreError::from(e), StoreError::Sql(_)));
    }

    #[tokio::test]
    async fn a_lock_held_by_another_connection_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .busy_timeout(std::time::Duration::ZERO);
        let mut holder = SqliteConnection::connect_with(&opts).await.unwrap();
        let mut other = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let e = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap_err();
        assert!(matches!(StoreError::from(e), StoreError::Busy(_)));
    }
}
