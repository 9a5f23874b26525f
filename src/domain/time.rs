//! Time on the command line and in files: RFC 3339 instants and `1d12h` durations.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

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

/// Formats a duration the way [`parse_duration`] reads it.
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

#[cfg(test)]
mod tests {
    use super::*;

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
