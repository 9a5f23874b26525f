//! Consent and the suppression list, and the operator's pause switch.

use super::{Result, Store, ms};
use crate::domain::{EmailAddress, LeadId};
use chrono::{DateTime, Utc};

/// Why an address must not be mailed. Ordered: a stronger reason replaces a weaker one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suppression {
    /// Unsubscribed: no marketing email; receipts still go.
    Unsubscribed,
    /// A hard bounce: the address does not exist; nothing goes.
    Bounced,
    /// Erased on request (`forget`): nothing goes.
    Forgotten,
}

impl Suppression {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Unsubscribed => "unsubscribed",
            Suppression::Bounced => "bounced",
            Suppression::Forgotten => "forgotten",
        }
    }

    fn parse(s: &str) -> Suppression {
        match s {
            "bounced" => Suppression::Bounced,
            "forgotten" => Suppression::Forgotten,
            _ => Suppression::Unsubscribed,
        }
    }

    /// Whether receipts are blocked too.
    pub fn blocks_receipts(self) -> bool {
        self != Suppression::Unsubscribed
    }
}

/// What the sender needs to know of a lead before sending it anything.
#[derive(Debug, Clone)]
pub struct LeadBrief {
    pub email: EmailAddress,
    pub stage: String,
    pub timezone: Option<String>,
    pub unsubscribed: bool,
}

impl Store {
    pub async fn lead_brief(&self, id: LeadId) -> Result<Option<LeadBrief>> {
        let row: Option<(String, String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT email, stage, timezone, unsubscribed_at FROM leads WHERE id = ?",
        )
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(email, stage, timezone, unsub)| {
            Some(LeadBrief {
                email: EmailAddress::parse(&email).ok()?,
                stage,
                timezone,
                unsubscribed: unsub.is_some(),
            })
        }))
    }

    /// The suppression of `email`, if any.
    pub async fn suppression(&self, email: &EmailAddress) -> Result<Option<Suppression>> {
        let r: Option<String> =
            sqlx::query_scalar("SELECT reason FROM suppressions WHERE email_hash = ?")
                .bind(email.digest())
                .fetch_optional(self.pool())
                .await?;
        Ok(r.as_deref().map(Suppression::parse))
    }

    /// Adds `email` to the suppression list (a stronger reason replaces a weaker one)
    /// and marks its lead unsubscribed. Returns the lead, if there is one.
    pub async fn suppress(
        &self,
        email: &EmailAddress,
        reason: Suppression,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<LeadId>> {
        let mut tx = self.begin_write().await?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT reason FROM suppressions WHERE email_hash = ?")
                .bind(email.digest())
                .fetch_optional(&mut *tx)
                .await?;
        if old.as_deref().map(Suppression::parse) < Some(reason) {
            sqlx::query(
                "INSERT INTO suppressions (email_hash, reason, at, detail) VALUES (?, ?, ?, ?)
                 ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason, at = excluded.at, detail = excluded.detail",
            )
            .bind(email.digest())
            .bind(reason.as_str())
            .bind(ms(at))
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE leads SET unsubscribed_at = COALESCE(unsubscribed_at, ?), updated_at = ? WHERE email = ?",
        )
        .bind(ms(at))
        .bind(ms(at))
        .bind(email.as_str())
        .execute(&mut *tx)
        .await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id.map(LeadId))
    }

    /// Erases a lead and everything about it; only the suppression (a hash) remains.
    pub async fn forget(&self, id: LeadId, at: DateTime<Utc>) -> Result<Option<EmailAddress>> {
        let Some(brief) = self.lead_brief(id).await? else {
            return Ok(None);
        };
        self.suppress(&brief.email, Suppression::Forgotten, "forget", at)
            .await?;
        // Overwrite what is deleted, and fold the write-ahead log back into the file,
        // so the erased data is not left in free pages or old log frames.
        let mut tx = self.begin_write().await?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *tx)
            .await?;
        for table in [
            "lead_tags",
            "lead_attrs",
            "events",
            "stage_history",
            "outbox",
            "leads",
        ] {
            let column = if table == "leads" { "id" } else { "lead_id" };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {column} = ?"
            )))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        // The deletes above ran with it on; the connection goes back to the pool as
        // it came.
        sqlx::query("PRAGMA secure_delete = OFF")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(self.pool())
            .await?;
        Ok(Some(brief.email))
    }

    /// The operator's emergency stop: all sending (`None`) or one campaign's.
    pub async fn set_paused(&self, campaign: Option<&str>, paused: bool) -> Result<()> {
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

    /// Whether all sending is paused, and the campaigns paused one by one.
    pub async fn paused(&self) -> Result<(bool, Vec<String>)> {
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
