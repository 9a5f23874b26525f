//! Consent and the suppression list in SQL.

use super::{PgStore, ms};
use crate::domain::{EmailAddress, LeadId, StageId};
use crate::store::{LeadBrief, Result, StoreError, Suppression};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A lead's id, email, stage, time zone and when it unsubscribed, as stored.
type BriefRow = (i64, String, String, Option<String>, Option<i64>);

/// Ids or addresses read in one statement. An array is one bound value, so this is no
/// limit of PostgreSQL's: it keeps the order of results the SQLite backend gives (by
/// key within each chunk of its `IN` lists).
const CHUNK: usize = 500;

impl PgStore {
    pub(in crate::store) async fn lead_brief(&self, id: LeadId) -> Result<Option<LeadBrief>> {
        Ok(self.lead_briefs(&[id]).await?.pop().map(|(_, b)| b))
    }

    pub(in crate::store) async fn lead_briefs(
        &self,
        ids: &[LeadId],
    ) -> Result<Vec<(LeadId, LeadBrief)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|id| id.0).collect();
            let rows: Vec<BriefRow> = sqlx::query_as(
                "SELECT id, email, stage, timezone, unsubscribed_at FROM leads
                 WHERE id = ANY($1) ORDER BY id",
            )
            .bind(ids)
            .fetch_all(self.pool())
            .await?;
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
        for chunk in emails.chunks(CHUNK) {
            let digests: Vec<String> = chunk.iter().map(EmailAddress::digest).collect();
            let rows: Vec<(String, String)> = sqlx::query_as(
                r#"SELECT email_hash, reason FROM suppressions
                   WHERE email_hash = ANY($1) ORDER BY email_hash COLLATE "C""#,
            )
            .bind(&digests)
            .fetch_all(self.pool())
            .await?;
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
        // Read-then-write (a stronger reason only replaces a weaker one): the write lock.
        let mut tx = self.begin_write().await?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT reason FROM suppressions WHERE email_hash = $1")
                .bind(email.digest())
                .fetch_optional(&mut *tx)
                .await?;
        if old.as_deref().map(Suppression::parse).transpose()? < Some(reason) {
            sqlx::query(
                "INSERT INTO suppressions (email_hash, reason, at, detail) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (email_hash) DO UPDATE SET reason = excluded.reason, at = excluded.at, detail = excluded.detail",
            )
            .bind(email.digest())
            .bind(reason.as_str())
            .bind(ms(at))
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE leads SET unsubscribed_at = COALESCE(unsubscribed_at, $1), updated_at = $1
             WHERE email = $2 RETURNING id",
        )
        .bind(ms(at))
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
        // The same tables, in the same order, as the SQLite backend; the foreign keys'
        // cascades would do it too, but the order keeps each delete a plain one.
        // PostgreSQL leaves the deleted tuples to (auto)vacuum, which reclaims them.
        let mut tx = self.begin_write().await?;
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
                "DELETE FROM {table} WHERE {column} = $1"
            )))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(brief.email))
    }
}
