//! Time on the command line and in files: RFC 3339 instants and `1d12h` durations;
//! and the one conversion of a local wall-clock time in a zone to an instant.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Parses an RFC 3339 instant (`2026-03-02T10:00:00Z`, `2026-03-02T11:00:00+01:00`).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-03-02T10:00:00Z")
        })
}

/// Parses an RFC 3339 date-time or a plain date (taken as midnight UTC), for CSV columns.
pub fn parse_instant_or_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    parse_instant(s)
}

/// Parses a duration: integers with units `s`, `m`, `h`, `d`, `w`, combinable (`1d12h`).
pub fn parse_duration(s: &str) -> Result<TimeDelta, String> {
    let src = s.trim();
    let hint = || format!("`{s}` is not a duration; write e.g. 90s, 15m, 36h, 7d, 2w or 1d12h");
    if src.is_empty() {
        return Err(hint());
    }
    let mut total = TimeDelta::zero();
    let mut digits = String::new();
    for c in src.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| hint())?;
        digits.clear();
        let unit = match c {
            's' => TimeDelta::try_seconds(n),
            'm' => TimeDelta::try_minutes(n),
            'h' => TimeDelta::try_hours(n),
            'd' => TimeDelta::try_days(n),
            'w' => TimeDelta::try_weeks(n),
            _ => None,
        }
        .ok_or_else(hint)?;
        total = total.checked_add(&unit).ok_or_else(hint)?;
    }
    if !digits.is_empty() {
        return Err(hint());
    }
    Ok(total)
}

/// Days from `today` to the next anniversary (same month and day) of `date`: 0 on
/// the day itself. A 29 February comes round on 28 February in other years.
pub fn days_to_anniversary(date: chrono::NaiveDate, today: chrono::NaiveDate) -> i64 {
    use chrono::Datelike;
    let on = |year: i32| {
        chrono::NaiveDate::from_ymd_opt(year, date.month(), date.day())
            .or_else(|| chrono::NaiveDate::from_ymd_opt(year, 2, 28))
            .expect("28 February exists every year")
    };
    let this_year = on(today.year());
    let next = if this_year >= today {
        this_year
    } else {
        on(today.year() + 1)
    };
    (next - today).num_days()
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: TimeDelta) -> String {
    let mut secs = d.num_seconds();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// The instant a local date and time in `tz` names, safe across daylight saving:
/// a time that happens twice (autumn) is its first occurrence, and a time that does
/// not exist (spring forward) is the first valid instant after it, the end of the gap.
/// The same rule croner follows for cron firings, so a campaign's delivery time,
/// quiet hours and the business day all move the way its schedule does.
pub fn local_to_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => end_of_gap(tz, local),
    }
}

/// The change of offset that skips `local`: the first instant whose local time is
/// past it. Found by bisection between the instants `local` names under the offsets
/// either side of the gap, so no probe step can overshoot the gap's end.
fn end_of_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // Whole seconds since the epoch: zone changes happen on whole seconds.
    let offset = |u: i64| {
        DateTime::from_timestamp(u, 0)
            .map(|t| {
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc() as i64
            })
            .unwrap_or(0)
    };
    let wall = local.and_utc().timestamp();
    // Offsets are at most a day from UTC; a day either side is before and after the gap.
    let (before, after) = (offset(wall - 86_400), offset(wall + 86_400));
    let past = |u: i64| u + offset(u) >= wall;
    // Under the later offset `local` names an instant before the change, under the
    // earlier one an instant at or after it.
    let (mut lo, mut hi) = (wall - after, wall - before);
    if past(lo) || !past(hi) {
        // Not a single forward change (cannot happen with real zone data): the
        // earlier offset's reading.
        hi = wall - before;
    } else {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if past(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or_else(|| local.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn madrid(local: &str) -> DateTime<Utc> {
        let l = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        local_to_instant(chrono_tz::Europe::Madrid, l)
    }

    #[test]
    fn a_time_in_the_spring_gap_is_the_end_of_the_gap() {
        // 29 March 2026 in Madrid: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        assert_eq!(
            madrid("2026-03-29 02:30").to_rfc3339(),
            "2026-03-29T01:00:00+00:00"
        );
        assert_eq!(
            madrid("2026-03-29 02:00").to_rfc3339(),
            "2026-03-29T01:00:00+00:00"
        );
        assert_eq!(
            madrid("2026-03-29 02:59").to_rfc3339(),
            "2026-03-29T01:00:00+00:00"
        );
        // Either side of the gap, the plain reading.
        assert_eq!(
            madrid("2026-03-29 01:59").to_rfc3339(),
            "2026-03-29T00:59:00+00:00"
        );
        assert_eq!(
            madrid("2026-03-29 03:00").to_rfc3339(),
            "2026-03-29T01:00:00+00:00"
        );
        assert_eq!(
            madrid("2026-03-29 08:00").to_rfc3339(),
            "2026-03-29T06:00:00+00:00"
        );
    }

    #[test]
    fn a_time_in_the_autumn_overlap_is_its_first_occurrence() {
        // 25 October 2026 in Madrid: 03:00 CEST goes back to 02:00 CET; 02:30 happens
        // at 00:30 UTC and again at 01:30 UTC.
        assert_eq!(
            madrid("2026-10-25 02:30").to_rfc3339(),
            "2026-10-25T00:30:00+00:00"
        );
        assert_eq!(
            madrid("2026-10-25 01:59").to_rfc3339(),
            "2026-10-24T23:59:00+00:00"
        );
        assert_eq!(
            madrid("2026-10-25 03:00").to_rfc3339(),
            "2026-10-25T02:00:00+00:00"
        );
    }

    #[test]
    fn a_gap_of_half_an_hour_ends_at_its_own_change() {
        // Lord Howe Island moves its clocks by 30 minutes: 02:00 → 02:30 on 4 October 2026.
        let l = NaiveDateTime::parse_from_str("2026-10-04 02:10", "%Y-%m-%d %H:%M").unwrap();
        let t = local_to_instant(chrono_tz::Australia::Lord_Howe, l);
        assert_eq!(t.to_rfc3339(), "2026-10-03T15:30:00+00:00");
    }

    #[test]
    fn anniversaries_come_round_every_year_and_29_february_on_the_28th() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(days_to_anniversary(d("1988-05-14"), d("2026-05-14")), 0);
        assert_eq!(days_to_anniversary(d("1988-05-14"), d("2026-05-10")), 4);
        assert_eq!(days_to_anniversary(d("1988-05-14"), d("2026-05-15")), 364);
        assert_eq!(days_to_anniversary(d("2000-02-29"), d("2026-02-27")), 1);
        assert_eq!(days_to_anniversary(d("2000-02-29"), d("2028-02-28")), 1);
    }

    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_duration("90s").unwrap(), TimeDelta::seconds(90));
        assert_eq!(parse_duration("15m").unwrap(), TimeDelta::minutes(15));
        assert_eq!(parse_duration("36h").unwrap(), TimeDelta::hours(36));
        assert_eq!(parse_duration("7d").unwrap(), TimeDelta::days(7));
        assert_eq!(parse_duration("2w").unwrap(), TimeDelta::days(14));
        assert_eq!(parse_duration("1d12h").unwrap(), TimeDelta::hours(36));
        assert_eq!(format_duration(TimeDelta::hours(36)), "1d12h");
    }

    #[test]
    fn bad_durations_are_rejected_with_a_hint() {
        for bad in ["", "7", "d", "7x", "1.5d", "-3d"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("e.g. 90s"), "{e}");
        }
    }

    #[test]
    fn instants_are_rfc3339() {
        let t = parse_instant("2026-03-02T11:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-02T10:00:00+00:00");
        assert!(parse_instant("2026-03-02").is_err());
        assert!(parse_instant_or_date("2026-03-02").is_ok());
    }
}
