//! Write transactions that take the write lock up front and never go back to the pool
//! half done.

use super::error::suspect;
use crate::store::{Result, StoreError};
use sqlx::SqliteConnection;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqlitePool};

/// A write transaction begun with `BEGIN IMMEDIATE`: it takes the write lock up front
/// (waiting up to the busy timeout), so a read-then-write never fails to upgrade its
/// lock. Its connection derefs for queries. `commit` ends it; dropped uncommitted (an
/// error, a cancelled request) it rolls back, and a connection whose state is in doubt
/// (a failed commit or rollback, a disk-full or I/O error) is closed, never returned
/// to the pool.
pub(super) struct WriteTx {
    conn: PoolConnection<Sqlite>,
    open: bool,
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl WriteTx {
    /// Takes a connection from `pool` and begins the transaction on it.
    pub(super) async fn begin(pool: &SqlitePool) -> Result<WriteTx> {
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            let e = StoreError::from(e);
            if matches!(e, StoreError::Full(_) | StoreError::Io(_)) {
                conn.close_on_drop();
            }
            return Err(e);
        }
        Ok(WriteTx { conn, open: true })
    }

    /// Commits; the write is acknowledged only if this returns `Ok`.
    pub(super) async fn commit(mut self) -> Result<()> {
        match sqlx::query("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                suspect(false);
                Ok(())
            }
            Err(e) => {
                let e = StoreError::from(e);
                // SQLite may or may not have rolled back: end it for certain.
                let _ = sqlx::query("ROLLBACK").execute(&mut *self.conn).await;
                self.open = false;
                self.conn.close_on_drop();
                Err(e)
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Not committed (an error, or the caller gave up): closing the connection
            // rolls the transaction back; it never goes back to the pool half done.
            self.conn.close_on_drop();
        }
    }
}
