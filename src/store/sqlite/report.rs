//! The numbers of `embudo report` and `/metrics` in SQL.

use super::{SqliteStore, from_ms, ms};
use crate::store::Result;
use crate::store::report::{
    ConversionCount, Occurrence, Period, SegmentBy, Spread, TemplateFigures,
};
use crate::store::shared_sql::{
    conversion, figures, occurrence_sql, segment_sql, spread, spread_sql,
};
use chrono::{DateTime, TimeDelta, Utc};

/// Each stay in a stage: the lead, the stage, when it began and when it ended (NULL
/// while it lasts), over the whole history (a period filters it afterwards).
const STAYS: &str = "SELECT id, lead_id, to_stage, at,
        LEAD(at) OVER (PARTITION BY lead_id ORDER BY at, id) AS ended FROM stage_history";

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

    pub(in crate::store) async fn stage_stays(
        &self,
        period: Period,
    ) -> Result<Vec<(String, Spread)>> {
        let (from, to) = period.bounds_ms();
        let sql = format!(
            "WITH vals AS (SELECT to_stage AS seg, ended - at AS v FROM ({STAYS}) s
                           WHERE ended IS NOT NULL AND ended >= ?1 AND ended < ?2)
             {} ORDER BY seg",
            spread_sql("vals", "{}")
        );
        let rows: Vec<(String, i64, f64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(spread).collect())
    }

    pub(in crate::store) async fn reached(&self, period: Period) -> Result<Vec<(String, i64)>> {
        let (from, to) = period.bounds_ms();
        let sql = format!(
            "SELECT stage, COUNT(DISTINCT lead) FROM (
               SELECT to_stage AS stage, lead_id AS lead FROM ({STAYS}) s
               WHERE at < ?2 AND (ended IS NULL OR ended > ?1)
               UNION ALL SELECT stage, id FROM leads WHERE stage_entered_at < ?2) x
             GROUP BY stage ORDER BY stage"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?)
    }

    pub(in crate::store) async fn converted(
        &self,
        from: &str,
        to: &str,
        period: Period,
    ) -> Result<i64> {
        let (start, end) = period.bounds_ms();
        let sql = format!(
            "SELECT COUNT(DISTINCT a.lead_id) FROM ({STAYS}) a
             JOIN stage_history b ON b.lead_id = a.lead_id AND b.to_stage = ?2
                  AND (b.at > a.at OR (b.at = a.at AND b.id > a.id)) AND b.at >= ?3 AND b.at < ?4
             WHERE a.to_stage = ?1 AND a.at < ?4 AND (a.ended IS NULL OR a.ended > ?3)"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(start)
            .bind(end)
            .fetch_one(self.pool())
            .await?)
    }

    pub(in crate::store) async fn moves_between(
        &self,
        period: Period,
    ) -> Result<Vec<(String, String, String, i64)>> {
        let (from, to) = period.bounds_ms();
        Ok(sqlx::query_as(
            "SELECT from_stage, to_stage, cause, COUNT(*) FROM stage_history
             WHERE at >= ?1 AND at < ?2 AND from_stage IS NOT NULL
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn sends_by_template(
        &self,
        period: Period,
    ) -> Result<Vec<(String, String, i64)>> {
        let (from, to) = period.bounds_ms();
        Ok(sqlx::query_as(
            "SELECT template, state, COUNT(*) FROM outbox WHERE requested_at >= ?1 AND requested_at < ?2
             GROUP BY template, state ORDER BY template, state",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn template_figures(
        &self,
        period: Period,
        within: TimeDelta,
        order: &[String],
    ) -> Result<Vec<TemplateFigures>> {
        let (from, to) = period.bounds_ms();
        let tracked = |kind: &str| {
            format!(
                "SUM(CASE WHEN EXISTS (SELECT 1 FROM events e WHERE e.lead_id = r.lead_id AND e.kind = '{kind}'
                      AND e.at >= r.t AND e.at < ?2 AND json_extract(e.props, '$.template.str') = r.template)
                 THEN 1 ELSE 0 END)"
            )
        };
        let sql = format!(
            "WITH ord AS (SELECT value AS stage, key AS idx FROM json_each(?4)),
             r AS (SELECT template, lead_id, t, stage FROM (
                     SELECT template, lead_id, sent_at AS t, stage,
                            ROW_NUMBER() OVER (PARTITION BY template, lead_id ORDER BY sent_at, id) AS rn
                     FROM outbox WHERE state = 'sent' AND sent_at >= ?1 AND sent_at < ?2) f
                   WHERE rn = 1)
             SELECT r.template, COUNT(*), {}, {},
               SUM(CASE WHEN EXISTS (SELECT 1 FROM stage_history h JOIN ord a ON a.stage = h.to_stage
                                     JOIN ord b ON b.stage = r.stage
                                     WHERE h.lead_id = r.lead_id AND h.at >= r.t AND h.at <= r.t + ?3
                                       AND h.at < ?2 AND a.idx > b.idx)
                   THEN 1 ELSE 0 END)
             FROM r GROUP BY r.template ORDER BY r.template",
            tracked("open"),
            tracked("click")
        );
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(within.num_milliseconds())
            .bind(serde_json::to_string(order).expect("strings"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(figures).collect())
    }

    pub(in crate::store) async fn bounces_by_template(
        &self,
        period: Period,
    ) -> Result<Vec<(String, i64)>> {
        let (from, to) = period.bounds_ms();
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM outbox
             WHERE state = 'failed' AND last_error LIKE 'hard bounce%' AND ended_at >= ?1 AND ended_at < ?2
             GROUP BY template ORDER BY template",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn unsubscribes_by_template(
        &self,
        period: Period,
    ) -> Result<Vec<(String, i64)>> {
        let (from, to) = period.bounds_ms();
        Ok(sqlx::query_as(
            "SELECT template, COUNT(*) FROM (
               SELECT (SELECT o.template FROM outbox o
                       WHERE o.lead_id = l.id AND o.state = 'sent' AND o.sent_at <= l.unsubscribed_at
                       ORDER BY o.sent_at DESC, o.id DESC LIMIT 1) AS template
               FROM leads l WHERE l.unsubscribed_at >= ?1 AND l.unsubscribed_at < ?2) u
             WHERE template IS NOT NULL GROUP BY template ORDER BY template",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    pub(in crate::store) async fn conversion(
        &self,
        from: &Occurrence,
        to: &Occurrence,
        within: TimeDelta,
        period: Period,
        by: Option<&SegmentBy>,
    ) -> Result<Vec<ConversionCount>> {
        let (start, end) = period.bounds_ms();
        let sql = format!(
            "WITH starts AS (SELECT lead_id, MIN(at) AS t0 FROM ({}) s WHERE at >= ?1 AND at < ?2 GROUP BY lead_id),
             done AS (SELECT s.lead_id, MIN(x.at) - s.t0 AS v FROM starts s
                      JOIN ({}) x ON x.lead_id = s.lead_id AND x.at >= s.t0 AND x.at <= s.t0 + ?3 AND x.at < ?2
                      GROUP BY s.lead_id, s.t0),
             vals AS (SELECT {} AS seg, d.v FROM starts s LEFT JOIN done d ON d.lead_id = s.lead_id)
             SELECT seg, COUNT(*), COUNT(v), MIN(CASE WHEN v IS NOT NULL AND rn = (c + 1) / 2 THEN v END)
             FROM (SELECT seg, v, ROW_NUMBER() OVER (PARTITION BY seg, v IS NULL ORDER BY v) AS rn,
                          COUNT(v) OVER (PARTITION BY seg) AS c FROM vals) ranked
             GROUP BY seg ORDER BY seg",
            occurrence_sql(from),
            occurrence_sql(to),
            segment_sql(by, "s.lead_id")
        );
        let rows: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(start)
            .bind(end)
            .bind(within.num_milliseconds())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(conversion).collect())
    }

    pub(in crate::store) async fn occurrences(
        &self,
        kind: &str,
        period: Period,
        by: Option<&SegmentBy>,
    ) -> Result<Vec<(String, i64, i64)>> {
        let (from, to) = period.bounds_ms();
        let sql = format!(
            "SELECT {} AS seg, e.at / 900000 AS q, COUNT(*) FROM events e
             WHERE e.kind = ?1 AND e.at >= ?2 AND e.at < ?3 GROUP BY 1, 2 ORDER BY 1, 2",
            segment_sql(by, "e.lead_id")
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(kind)
            .bind(from)
            .bind(to)
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
