//! Consent and the suppression list in SQL.

use super::{IN_LIST, SqliteStore, ms, placeholders};
use crate::domain::{EmailAddress, LeadId, StageId};
use crate::store::{LeadBrief, Result, StoreError, Suppression};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A lead's id, email, stage, time zone and when it unsubscribed, as stored.
type BriefRow = (i64, String, String, Option<String>, Option<i64>);

impl SqliteStore {
    pub(in crate::store) async fn lead_brief(&self, id: LeadId) -> Result<Option<LeadBrief>> {
        Ok(self.lead_briefs(&[id]).await?.pop().map(|(_, b)| b))
    }

    pub(in crate::store) async fn lead_briefs(
        &self,
        ids: &[LeadId],
    ) -> Result<Vec<(LeadId, LeadBrief)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST) {
            let sql = format!(
                "SELECT id, email, stage, timezone, unsubscribed_at FROM leads WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.0);
            }
            let rows: Vec<BriefRow> = q.fetch_all(self.pool()).await?;
            for (id, email, stage, timezone, unsub) in rows {
                // An address that no longer parses cannot be mailed: as good as no lead.
                let Ok(email) = EmailAddress::parse(&email) else {
                    continue;
                };
                let brief = LeadBrief {
                    email,
                    stage: StageId::parse(&stage).map_err(StoreError::Corrupt)?,
                    timezone: timezone.and_then(|t| t.parse::<Tz>().ok()),
                    unsubscribed: unsub.is_some(),
                };
                out.push((LeadId(id), brief));
            }
        }
        Ok(out)
    }

    pub(in crate::store) async fn suppression(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<Suppression>> {
        let found = self.suppressions(std::slice::from_ref(email)).await?;
        Ok(found.into_iter().next().map(|(_, s)| s))
    }

    pub(in crate::store) async fn suppressions(
        &self,
        emails: &[EmailAddress],
    ) -> Result<Vec<(EmailAddress, Suppression)>> {
        let mut out = Vec::new();
        for chunk in emails.chunks(IN_LIST) {
            let digests: Vec<String> = chunk.iter().map(EmailAddress::digest).collect();
            let sql = format!(
                "SELECT email_hash, reason FROM suppressions WHERE email_hash IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for d in &digests {
                q = q.bind(d);
            }
            let rows: Vec<(String, String)> = q.fetch_all(self.pool()).await?;
            for (hash, reason) in rows {
                let reason = Suppression::parse(&reason)?;
                for (email, _) in chunk.iter().zip(&digests).filter(|(_, d)| **d == hash) {
                    out.push((email.clone(), reason));
                }
            }
        }
        Ok(out)
    }

    pub(in crate::store) async fn suppress(
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
        if old.as_deref().map(Suppression::parse).transpose()? < Some(reason) {
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

    pub(in crate::store) async fn forget(
        &self,
        id: LeadId,
        at: DateTime<Utc>,
    ) -> Result<Option<EmailAddress>> {
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
}
