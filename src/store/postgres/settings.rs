//! The `settings` table: named values (the signing key, the pause switches) and the
//! write probe of `/healthz`.

use super::{PgStore, ms};
use crate::store::Result;
use chrono::{DateTime, Utc};

impl PgStore {
    pub(in crate::store) async fn probe_write(&self, now: DateTime<Utc>) -> Result<()> {
        // No file to probe on a server: a small committed write under the write lock
        // is the probe (a full disk, a read-only server or a lost connection fail it).
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('healthz_probe', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(ms(now).to_string())
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    pub(in crate::store) async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub(in crate::store) async fn setting_or_insert(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String> {
        // Concurrent callers: ON CONFLICT DO NOTHING lets one value in; all read it.
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(self
            .setting(key)
            .await?
            .unwrap_or_else(|| value.to_string()))
    }

    pub(in crate::store) async fn set_paused(
        &self,
        campaign: Option<&str>,
        paused: bool,
    ) -> Result<()> {
        let key = pause_key(campaign);
        if paused {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, 'yes') ON CONFLICT (key) DO UPDATE SET value = 'yes'",
            )
            .bind(&key)
            .execute(self.pool())
            .await?;
        } else {
            sqlx::query("DELETE FROM settings WHERE key = $1")
                .bind(&key)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    pub(in crate::store) async fn paused(&self) -> Result<(bool, Vec<String>)> {
        // Byte order ("C"), as SQLite sorts, whatever the database's collation.
        let keys: Vec<String> = sqlx::query_scalar(
            r#"SELECT key FROM settings WHERE key LIKE 'paused%' ORDER BY key COLLATE "C""#,
        )
        .fetch_all(self.pool())
        .await?;
        let all = keys.iter().any(|k| k == "paused");
        let campaigns = keys
            .iter()
            .filter_map(|k| k.strip_prefix("paused:campaign:").map(str::to_string))
            .collect();
        Ok((all, campaigns))
    }
}

fn pause_key(campaign: Option<&str>) -> String {
    match campaign {
        None => "paused".into(),
        Some(c) => format!("paused:campaign:{c}"),
    }
}
