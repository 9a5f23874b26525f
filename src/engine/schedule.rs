//! Firing times of cron schedules in a time zone, computed with croner and chrono-tz.
//!
//! The daemon's job runner (tokio-cron-scheduler) is only ever asked to fire a one-shot
//! job at an instant computed here; it never keeps its own notion of local time, so a
//! daylight-saving change cannot shift a firing (the crate's zone-aware cron jobs keep
//! the offset they were created with: its issue #107).

use crate::funnel::config::CronExpr;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The first firing strictly after `after`.
pub fn next_after(cron: &CronExpr, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The latest firing at or before `at`.
pub fn latest_at_or_before(cron: &CronExpr, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.cron
        .find_previous_occurrence(&at.with_timezone(&tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Firings in (`after`, `until`], at most `limit` of them.
pub fn between(
    cron: &CronExpr,
    tz: Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = after;
    while out.len() < limit {
        match next_after(cron, tz, t) {
            Some(n) if n <= until => {
                out.push(n);
                t = n;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's campaign rule: a time in a skipped hour fires at the first valid
    /// instant after it; a repeated hour fires once, at its first occurrence.
    #[test]
    fn a_skipped_hour_fires_after_it_and_a_repeated_hour_fires_once() {
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        let c = CronExpr::parse("0 30 2 * * *").unwrap();
        // 29 March 2026: 02:00 → 03:00 in Madrid; 02:30 does not exist.
        let spring = between(
            &c,
            madrid,
            utc("2026-03-28T12:00:00Z"),
            utc("2026-03-30T12:00:00Z"),
            10,
        );
        assert_eq!(
            spring,
            [
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:30:00Z")
            ]
            .into_iter()
            .filter(|t| *t > utc("2026-03-28T12:00:00Z"))
            .collect::<Vec<_>>()
        );
        // 25 October 2026: 03:00 → 02:00; 02:30 happens twice, it fires at the first.
        let autumn = between(
            &c,
            madrid,
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-26T12:00:00Z"),
            10,
        );
        assert_eq!(
            autumn,
            [utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
        assert_eq!(
            latest_at_or_before(&c, madrid, utc("2026-10-25T01:45:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_five_minutes() {
        let c = CronExpr::parse("0 */5 * * * *").unwrap();
        assert_eq!(
            next_after(&c, Tz::UTC, utc("2026-03-02T10:02:30Z")),
            Some(utc("2026-03-02T10:05:00Z"))
        );
        assert_eq!(
            next_after(&c, Tz::UTC, utc("2026-03-02T10:05:00Z")),
            Some(utc("2026-03-02T10:10:00Z"))
        );
    }

    /// Local firings of a 09:00 daily cron in Madrid between two instants.
    fn madrid_nine_oclocks(from: &str, to: &str) -> Vec<String> {
        let c = CronExpr::parse("0 0 9 * * *").unwrap();
        let madrid = chrono_tz::Europe::Madrid;
        between(&c, madrid, utc(from), utc(to), 10)
            .iter()
            .map(|t| t.with_timezone(&madrid).format("%d %H:%M %z").to_string())
            .collect()
    }

    #[test]
    fn a_local_nine_oclock_holds_across_daylight_saving() {
        // Spring forward in Madrid: 2026-03-29 02:00 → 03:00.
        assert_eq!(
            madrid_nine_oclocks("2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z"),
            [
                "28 09:00 +0100",
                "29 09:00 +0200",
                "30 09:00 +0200",
                "31 09:00 +0200"
            ]
        );
        // Fall back: 2026-10-25 03:00 → 02:00.
        assert_eq!(
            madrid_nine_oclocks("2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            ["25 09:00 +0100", "26 09:00 +0100"]
        );
    }

    #[test]
    fn a_time_in_the_skipped_hour_fires_once_after_it() {
        let c = CronExpr::parse("0 30 2 * * *").unwrap();
        let madrid = chrono_tz::Europe::Madrid;
        let fires = between(
            &c,
            madrid,
            utc("2026-03-28T12:00:00Z"),
            utc("2026-03-30T12:00:00Z"),
            10,
        );
        assert_eq!(fires.len(), 2, "{fires:?}");
    }
}
