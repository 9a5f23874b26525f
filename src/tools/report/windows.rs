//! Buying windows: when the funnel's customers buy (or do any one kind of thing), per
//! month of the year and ISO week, in the business's time zone, with the peak months
//! named, so a seasonal campaign can be timed. The database counts the events per
//! quarter of an hour; placing those in local days here is exact in every zone (all
//! offsets are whole quarters of an hour).

use super::segment_label;
use crate::funnel::config::Config;
use crate::store::{Period, SegmentBy, Store, StoreError};
use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;

/// A month counts as a peak when it has at least this many times the monthly mean.
pub const PEAK_FACTOR: f64 = 1.5;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[derive(Debug, Clone, Serialize)]
pub struct BuyingWindows {
    /// The event kind counted (`reports.buying`, `purchase` by default).
    pub kind: String,
    /// The zone months and weeks are read in.
    pub timezone: String,
    /// All leads first, then one per segment when the report is segmented.
    pub segments: Vec<Windows>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Windows {
    pub segment: String,
    pub total: i64,
    /// January to December, over every year of the period.
    pub months: Vec<MonthCount>,
    /// ISO weeks 1 to 53: `weeks[0]` is week 1.
    pub weeks: Vec<i64>,
    /// Months with at least 1.5 × the monthly mean, busiest first.
    pub peak_months: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthCount {
    pub month: String,
    pub count: i64,
}

pub(super) async fn buying_windows(
    store: &Store,
    cfg: &Config,
    period: Period,
    by: Option<&SegmentBy>,
) -> Result<BuyingWindows, StoreError> {
    let kind = &cfg.reports.buying;
    let tz = cfg.schedule.timezone.0;
    // One count per segment and quarter hour: every lead is in exactly one segment
    // (tagged or not; one value of the attribute or none), so all leads' windows are
    // the sum of the segments' and need no second pass over the events.
    let rows = store.occurrences(kind, period, by).await?;
    let mut segments = vec![fold(None, &rows, tz)];
    if by.is_some() {
        segments.extend(
            rows.chunk_by(|a, b| a.0 == b.0)
                .map(|one| fold(by, one, tz)),
        );
    }
    Ok(BuyingWindows {
        kind: kind.clone(),
        timezone: tz.to_string(),
        segments,
    })
}

/// One segment's quarter-hour counts folded into local months and ISO weeks.
fn fold(by: Option<&SegmentBy>, rows: &[(String, i64, i64)], tz: chrono_tz::Tz) -> Windows {
    let mut months = [0i64; 12];
    let mut weeks = [0i64; 53];
    let segment = segment_label(by, rows.first().map_or("", |r| r.0.as_str()));
    for &(_, quarter, n) in rows {
        let Some(at) = Utc
            .timestamp_millis_opt(quarter.saturating_mul(900_000))
            .single()
        else {
            continue;
        };
        let local = at.with_timezone(&tz).date_naive();
        months[local.month0() as usize] += n;
        weeks[local.iso_week().week0() as usize] += n;
    }
    let total: i64 = months.iter().sum();
    let mut peaks: Vec<usize> = (0..12)
        .filter(|&m| total > 0 && months[m] as f64 >= PEAK_FACTOR * total as f64 / 12.0)
        .collect();
    peaks.sort_by_key(|&m| (-months[m], m));
    Windows {
        segment,
        total,
        months: MONTHS
            .iter()
            .zip(months)
            .map(|(m, count)| MonthCount {
                month: m.to_string(),
                count,
            })
            .collect(),
        weeks: weeks.to_vec(),
        peak_months: peaks.into_iter().map(|m| MONTHS[m].to_string()).collect(),
    }
}
