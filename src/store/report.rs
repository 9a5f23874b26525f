//! The numbers of `embudo report`, computed in SQL so a million leads are not loaded.

use super::{Result, Store, from_ms, ms};
use chrono::{DateTime, TimeDelta, Utc};

impl Store {
    /// Leads now in each stage, with the mean time they have been there.
    pub async fn stage_now(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64, TimeDelta)>> {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT stage, COUNT(*), AVG(? - stage_entered_at) FROM leads GROUP BY stage",
        )
        .bind(ms(now))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n, avg)| (s, n, TimeDelta::milliseconds(avg as i64)))
            .collect())
    }

    /// Finished stays per stage: how many, and their mean length.
    pub async fn stage_stays(&self) -> Result<Vec<(String, i64, TimeDelta)>> {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT to_stage, COUNT(*), AVG(dur) FROM (
               SELECT to_stage, LEAD(at) OVER (PARTITION BY lead_id ORDER BY at, id) - at AS dur
               FROM stage_history)
             WHERE dur IS NOT NULL GROUP BY to_stage",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n, avg)| (s, n, TimeDelta::milliseconds(avg as i64)))
            .collect())
    }

    /// Leads that were ever in `stage` (its history, or now).
    pub async fn reached(&self, stage: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT lead_id FROM stage_history WHERE to_stage = ?
                                   UNION SELECT id FROM leads WHERE stage = ?)",
        )
        .bind(stage)
        .bind(stage)
        .fetch_one(self.pool())
        .await?)
    }

    /// Leads that moved into `to` after being in `from` (forward conversions only).
    pub async fn converted(&self, from: &str, to: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT a.lead_id) FROM stage_history a
             JOIN stage_history b ON b.lead_id = a.lead_id AND b.to_stage = ?
                  AND (b.at > a.at OR (b.at = a.at AND b.id > a.id))
             WHERE a.to_stage = ?",
        )
        .bind(to)
        .bind(from)
        .fetch_one(self.pool())
        .await?)
    }

    /// Outbox rows per template and state.
    pub async fn sends_by_template(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, state, COUNT(*) FROM outbox GROUP BY template, state ORDER BY template, state",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// `open` and `click` events per template (the tracking links record them).
    pub async fn engagement_by_template(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(json_extract(props, '$.template.str'), ''), kind, COUNT(*) FROM events
             WHERE kind IN ('open', 'click') GROUP BY 1, 2",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// What the policy holds back now: reason, rows, earliest release.
    pub async fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT COALESCE(last_error, ''), COUNT(*), MIN(next_attempt_at) FROM outbox
             WHERE state = 'held' GROUP BY 1 ORDER BY 2 DESC",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(r, n, t)| (r, n, from_ms(t)))
            .collect())
    }
}
