//! The numbers of `embudo report` and `/metrics` in SQL.
//!
//! PostgreSQL's `AVG` of a BIGINT is a NUMERIC: cast to double precision, which Rust
//! truncates to whole milliseconds as the SQLite backend does. Groups are ordered by
//! their key in byte order (`COLLATE "C"`), the order SQLite's grouping gives.

use super::{PgStore, from_ms, ms};
use crate::store::Result;
use chrono::{DateTime, TimeDelta, Utc};

impl PgStore {
    pub(in crate::store) async fn stage_now(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, TimeDelta)>> {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            r#"SELECT stage, COUNT(*), AVG($1 - stage_entered_at)::double precision FROM leads
               GROUP BY stage ORDER BY stage COLLATE "C""#,
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
            r#"SELECT to_stage, COUNT(*), AVG(dur)::double precision FROM (
                 SELECT to_stage, LEAD(at) OVER (PARTITION BY lead_id ORDER BY at, id) - at AS dur
                 FROM stage_history) stays
               WHERE dur IS NOT NULL GROUP BY to_stage ORDER BY to_stage COLLATE "C""#,
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
            "SELECT COUNT(*) FROM (SELECT lead_id FROM stage_history WHERE to_stage = $1
                                   UNION SELECT id FROM leads WHERE stage = $1) ever",
        )
        .bind(stage)
        .fetch_one(self.pool())
        .await?)
    }

    pub(in crate::store) async fn converted(&self, from: &str, to: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT a.lead_id) FROM stage_history a
             JOIN stage_history b ON b.lead_id = a.lead_id AND b.to_stage = $1
                  AND (b.at > a.at OR (b.at = a.at AND b.id > a.id))
             WHERE a.to_stage = $2",
        )
        .bind(to)
        .bind(from)
        .fetch_one(self.pool())
        .await?)
    }

    pub(in crate::store) async fn sends_by_template(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            r#"SELECT template, state, COUNT(*) FROM outbox GROUP BY template, state
               ORDER BY template COLLATE "C", state COLLATE "C""#,
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn engagement_by_template(
        &self,
    ) -> Result<Vec<(String, String, i64)>> {
        // `props` is JSON text: {"template": {"str": "welcome"}, …}.
        Ok(sqlx::query_as(
            r#"SELECT template, kind, COUNT(*) FROM (
                 SELECT COALESCE(props::jsonb -> 'template' ->> 'str', '') AS template, kind
                 FROM events WHERE kind IN ('open', 'click')) e
               GROUP BY template, kind ORDER BY template COLLATE "C", kind COLLATE "C""#,
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn held(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>> {
        // Ties (as many rows held for two reasons) in reverse byte order of the
        // reason: what SQLite's sort gives the SQLite backend's query, which leaves
        // them unordered.
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            r#"SELECT reason, n, first FROM (
                 SELECT COALESCE(last_error, '') AS reason, COUNT(*) AS n, MIN(next_attempt_at) AS first
                 FROM outbox WHERE state = 'held' GROUP BY 1) h
               ORDER BY n DESC, reason COLLATE "C" DESC"#,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(r, n, t)| (r, n, from_ms(t)))
            .collect())
    }
}
