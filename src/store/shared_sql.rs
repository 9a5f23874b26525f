//! SQL text that both backends use as it is: the pieces of the report's queries that
//! depend on what the user asked for (a segment, a conversion's ends), written in the
//! SQL both engines read alike, and the nearest-rank percentiles over window functions.

use super::report::{ConversionCount, Occurrence, SegmentBy, Spread, TemplateFigures};
use chrono::TimeDelta;

/// `s` as an SQL string literal (quotes doubled): for the names a report segments by
/// and the kinds and stages of a conversion, so a query's text carries them and each
/// backend keeps its own parameter numbering simple. Standard SQL, the same on both.
pub(super) fn text_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQL expression of a lead's segment, for the lead id in column `lead` (same on
/// both backends): `'yes'`/`'no'` for a tag, the attribute's stored JSON or `''`.
pub(super) fn segment_sql(by: Option<&SegmentBy>, lead: &str) -> String {
    match by {
        None => "''".into(),
        Some(SegmentBy::Tag(t)) => format!(
            "CASE WHEN EXISTS (SELECT 1 FROM lead_tags g WHERE g.lead_id = {lead} AND g.tag = {}) THEN 'yes' ELSE 'no' END",
            text_literal(t)
        ),
        Some(SegmentBy::Attr(a)) => format!(
            "COALESCE((SELECT g.value FROM lead_attrs g WHERE g.lead_id = {lead} AND g.key = {}), '')",
            text_literal(a)
        ),
    }
}

/// The `(lead_id, at)` rows of an occurrence (same on both backends).
pub(super) fn occurrence_sql(o: &Occurrence) -> String {
    match o {
        Occurrence::Stage(s) => format!(
            "SELECT lead_id, at FROM stage_history WHERE to_stage = {}",
            text_literal(s)
        ),
        Occurrence::Event(k) => format!(
            "SELECT lead_id, at FROM events WHERE kind = {}",
            text_literal(k)
        ),
    }
}

/// Per `seg`, over the rows `(seg, v)` of the query `vals` (a CTE's name): the count,
/// the mean, and the values at nearest rank ⌈n/2⌉ and ⌈9n/10⌉ (integer arithmetic:
/// ⌈9n/10⌉ = ⌊(9n + 9)/10⌋). `mean` wraps the AVG so PostgreSQL can cast it.
pub(super) fn spread_sql(vals: &str, mean: &str) -> String {
    let avg = mean.replace("{}", "AVG(v)");
    format!(
        "SELECT seg, COUNT(*), {avg}, MIN(CASE WHEN rn = (n + 1) / 2 THEN v END),
                MIN(CASE WHEN rn = (9 * n + 9) / 10 THEN v END)
         FROM (SELECT seg, v, ROW_NUMBER() OVER (PARTITION BY seg ORDER BY v) AS rn,
                      COUNT(*) OVER (PARTITION BY seg) AS n FROM {vals}) ranked
         GROUP BY seg"
    )
}

/// A row of [`spread_sql`]: the segment (here a stage), count, mean, median, p90.
pub(super) fn spread(
    (seg, n, mean, median, p90): (String, i64, f64, i64, i64),
) -> (String, Spread) {
    let d = TimeDelta::milliseconds;
    let spread = Spread {
        count: n,
        mean: d(mean as i64),
        median: d(median),
        p90: d(p90),
    };
    (seg, spread)
}

pub(super) fn figures(
    (template, recipients, opened, clicked, moved_on): (String, i64, i64, i64, i64),
) -> TemplateFigures {
    TemplateFigures {
        template,
        recipients,
        opened,
        clicked,
        moved_on,
    }
}

pub(super) fn conversion(
    (segment, started, converted, median): (String, i64, i64, Option<i64>),
) -> ConversionCount {
    ConversionCount {
        segment,
        started,
        converted,
        median_delay: median.map(TimeDelta::milliseconds),
    }
}
