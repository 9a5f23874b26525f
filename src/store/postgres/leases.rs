//! The `locks` table behind the named leases.
//!
//! `try_lock` is one statement, so several daemons (on several machines) cannot both
//! take a lease: `INSERT … ON CONFLICT DO UPDATE … WHERE` either inserts the row or
//! locks the existing one and checks the condition against its latest version, and
//! reports one row only when it inserted or updated.

use super::{PgStore, from_ms, ms};
use crate::store::Result;
use chrono::{DateTime, Utc};

impl PgStore {
    pub(in crate::store) async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO locks (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE locks.until < $4 OR locks.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ms(until))
        .bind(ms(now))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(in crate::store) async fn lock_holder(
        &self,
        name: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>> {
        let r: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, until FROM locks WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.map(|(h, u)| (h, from_ms(u))))
    }

    pub(in crate::store) async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM locks WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
