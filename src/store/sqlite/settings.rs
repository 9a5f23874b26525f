//! The `settings` table: named values (the signing key, the pause switches) and the
//! write probe of `/healthz`.

use super::{SqliteStore, error, ms};
use crate::store::Result;
use chrono::{DateTime, Utc};

impl SqliteStore {
    pub(in crate::store) async fn probe_write(&self, now: DateTime<Utc>) -> Result<()> {
        // SQLite can reuse its log's free space on a full disk, so a small commit may
        // pass where a real batch fails: first make sure the disk itself takes a few
        // pages next to the database.
        if let Some(file) = &self.file {
            let mut probe = file.clone().into_os_string();
            probe.push("-healthz");
            let probe = std::path::PathBuf::from(probe);
            let written = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let r = std::fs::File::create(&probe).and_then(|mut f| {
                    f.write_all(&[0u8; 16 * 1024])?;
                    f.sync_all()
                });
                let _ = std::fs::remove_file(&probe);
                r
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            written.map_err(error::probe_failed)?;
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('healthz_probe', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(ms(now).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub(in crate::store) async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
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
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
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
                "INSERT INTO settings (key, value) VALUES (?, 'yes') ON CONFLICT (key) DO UPDATE SET value = 'yes'",
            )
            .bind(&key)
            .execute(self.pool())
            .await?;
        } else {
            sqlx::query("DELETE FROM settings WHERE key = ?")
                .bind(&key)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    pub(in crate::store) async fn paused(&self) -> Result<(bool, Vec<String>)> {
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT key FROM settings WHERE key LIKE 'paused%' ORDER BY key")
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
