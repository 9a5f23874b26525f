//! The numbers of `embudo report` and `/metrics` in SQL.

use super::{SqliteStore, from_ms, ms};
use crate::store::Result;
use chrono::{DateTime, TimeDelta, Utc};

impl SqliteStore {
    pub(in crate::store) async fn stage_now(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, TimeDelta)>> {
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

    pub(in crate::store) async fn stage_stays(&self) -> Result<Vec<(String, i64, TimeDelta)>> {
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

    pub(in crate::store) async fn reached(&self, stage: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT lead_id FROM stage_history WHERE to_stage = ?
                                   UNION SELECT id FROM leads WHERE stage = ?)",
        )
        .bind(stage)
        .bind(stage)
        .fetch_one(self.pool())
        .await?)
    }

    pub(in crate::store) async fn converted(&self, from: &str, to: &str) -> Result<i64> {
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

    pub(in crate::store) async fn sends_by_template(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT template, state, COUNT(*) FROM outbox GROUP BY template, state ORDER BY template, state",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn engagement_by_template(
        &self,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(json_extract(props, '$.template.str'), ''), kind, COUNT(*) FROM events
             WHERE kind IN ('open', 'click') GROUP BY 1, 2",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>> {
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
