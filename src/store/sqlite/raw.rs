//! Synchronous reads on a pooled connection's own SQLite handle, for the hot paths
//! where the driver's per-row hand-over between threads costs more than SQLite does.
//!
//! The driver runs each connection on a worker thread; `lock_handle` pauses that
//! worker and lends its handle. The reads then run on a blocking thread of the
//! runtime, through rusqlite (the same SQLite library the driver links), in one read
//! transaction, and the handle goes back to the worker when they end — also when the
//! caller's future is dropped half-way: the lender waits for the reads to finish
//! before it lets the handle go.

use crate::store::{Result, StoreError};
use rusqlite::Connection;
use sqlx::SqlitePool;
use std::ptr::NonNull;
use std::sync::mpsc;

/// The borrowed handle, moved to the blocking thread. The lock held by the lending
/// task keeps the driver's worker off it until the reads are done.
struct Handle(NonNull<rusqlite::ffi::sqlite3>);

// SAFETY: SQLite connections may move between threads when one thread at a time uses
// them (the driver opens them so); the lock guarantees that one thread.
unsafe impl Send for Handle {}

/// Waits, when dropped, until the reads on the lent handle have ended: dropped before
/// the lock (declared after it), so the worker never resumes under running reads.
struct Lent(mpsc::Receiver<()>);

impl Drop for Lent {
    fn drop(&mut self) {
        let _ = self.0.recv();
    }
}

/// Runs a short `read` (one lead's rows: well under a millisecond) on a pooled
/// connection's handle in one read transaction, on this thread: a hop to a blocking
/// thread would cost more than the read. Nothing is awaited while the handle is lent.
pub(super) async fn with_handle_here<T>(
    pool: &SqlitePool,
    read: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let mut conn = pool.acquire().await?;
    let mut locked = conn.lock_handle().await?;
    // SAFETY: the handle is open and ours alone while `locked` lives, to the end of
    // this function; `from_handle` leaves it open when the wrapper is dropped.
    let c = unsafe { Connection::from_handle(locked.as_raw_handle().as_ptr()) }?;
    in_read_transaction(&c, read)
}

/// Runs `read` on a pooled connection's handle in one read transaction (one snapshot),
/// on a blocking thread.
pub(super) async fn with_handle<T, F>(pool: &SqlitePool, read: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    let mut conn = pool.acquire().await?;
    let mut locked = conn.lock_handle().await?;
    let handle = Handle(locked.as_raw_handle());
    let (done, finished) = mpsc::channel::<()>();
    let lent = Lent(finished);
    let task = tokio::task::spawn_blocking(move || {
        let _done = done;
        let handle = handle;
        // SAFETY: the handle is open and ours alone until `_done` is dropped (see
        // `Lent`); `from_handle` leaves it open when the wrapper is dropped.
        let c = unsafe { Connection::from_handle(handle.0.as_ptr()) }?;
        in_read_transaction(&c, read)
    });
    let out = task.await;
    drop(lent);
    drop(locked);
    match out {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Sql(sqlx::Error::Protocol(format!(
            "a read on the database was cancelled: {e}"
        )))),
    }
}

/// `read` between `BEGIN` and its end: committed (a read-only transaction ends so) on
/// success, rolled back on an error.
fn in_read_transaction<T>(
    c: &Connection,
    read: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    c.execute_batch("BEGIN")?;
    match read(c) {
        Ok(v) => {
            c.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("raw.db").display());
        let s = SqliteStore::open(&url).await.unwrap();
        (dir, s)
    }

    /// A caller that gives up (a timeout, a shutdown) does not hand the connection
    /// back to the driver while the reads still run on it: dropping the future waits
    /// for them, and the connection serves the next query.
    #[tokio::test]
    async fn a_dropped_read_ends_before_its_connection_is_reused() {
        let (_dir, s) = store().await;
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let slow = with_handle(s.pool(), move |c| {
            std::thread::sleep(Duration::from_millis(200));
            let n: i64 = c.query_row("SELECT 41 + 1", [], |r| r.get(0))?;
            flag.store(true, Ordering::SeqCst);
            Ok(n)
        });
        let gave_up = tokio::time::timeout(Duration::from_millis(20), slow).await;
        assert!(gave_up.is_err(), "the read outlived the timeout");
        assert!(
            finished.load(Ordering::SeqCst),
            "dropped before the read ended"
        );
        let n: i64 = sqlx::query_scalar("SELECT 7")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(n, 7);
        let again = with_handle(s.pool(), |c| {
            Ok(c.query_row("SELECT 8", [], |r| r.get::<_, i64>(0))?)
        });
        assert_eq!(again.await.unwrap(), 8);
    }

    /// The reads leave no transaction open on the connection, on success or error,
    /// and a failed read keeps its message and class.
    #[tokio::test]
    async fn reads_end_their_transaction_and_errors_keep_their_class() {
        // In memory: one connection, the same one every time.
        let s = SqliteStore::open("sqlite::memory:").await.unwrap();
        let e = with_handle(s.pool(), |c| {
            Ok(c.query_row("SELECT * FROM no_such_table", [], |r| r.get::<_, i64>(0))?)
        })
        .await
        .unwrap_err();
        assert!(matches!(e, StoreError::Sql(_)), "{e:?}");
        assert!(e.to_string().contains("no_such_table"), "{e}");
        let inside = with_handle(s.pool(), |c| Ok(c.is_autocommit()))
            .await
            .unwrap();
        assert!(!inside, "the reads run in a transaction");
        let mut conn = s.pool().acquire().await.unwrap();
        let mut locked = conn.lock_handle().await.unwrap();
        // SAFETY: the handle is locked and open.
        let idle =
            unsafe { rusqlite::ffi::sqlite3_get_autocommit(locked.as_raw_handle().as_ptr()) };
        assert_eq!(idle, 1, "a transaction was left open");
    }
}
