//! When what a rule read from the clock can next change.
//!
//! Rules read time only through `now`, the `Timestamp` and `Duration` values made
//! from it, and the clock helpers (`days_since`, `local`, `count(kind, within)`…).
//! Each such value knows how it moves with the clock: its *drift*, the nanoseconds it
//! gains per nanosecond of clock (`now` is 1, `now - lead.created_at` is 1,
//! `lead.created_at - now` is -1, a stored instant 0). Wherever a moving value turns
//! into a plain one (a comparison's bool, `days_since`'s integer, a `local` field, a
//! string), the API notes the first instant after `now` at which that plain value
//! could differ. The earliest of them is the evaluation's *horizon*: evaluated again
//! at any instant before it, on the same data, the rules read the same values and so
//! do the same thing. `embudo simulate` uses it to skip leads nothing can change.
//!
//! Every function here answers conservatively: an instant at or before the real
//! change, never after it.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Nanoseconds in a second and a day.
pub const SEC: i128 = 1_000_000_000;
pub const DAY: i128 = 86_400 * SEC;

/// `now` plus `dt` nanoseconds (`dt > 0`); a change beyond the range of time is
/// reported at the range's end, which is before it.
pub fn after(now: DateTime<Utc>, dt: i128) -> DateTime<Utc> {
    let dt = i64::try_from(dt.max(1)).unwrap_or(i64::MAX);
    now.checked_add_signed(TimeDelta::nanoseconds(dt))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The next instant at all: whatever was read may change at once.
pub fn soon(now: DateTime<Utc>) -> DateTime<Utc> {
    after(now, 1)
}

/// `x / y` rounded up, for `x >= 0`, `y > 0`.
fn ceil_div(x: i128, y: i128) -> i128 {
    (x + y - 1) / y
}

/// The time the clock takes to move a value with this `slope` by `dv` (`dv > 0`).
fn time_to_move(now: DateTime<Utc>, dv: i128, slope: i64) -> DateTime<Utc> {
    after(now, ceil_div(dv, (slope as i128).abs()))
}

/// A quantity `diff` now that moves by `slope` per nanosecond: the first instant its
/// sign (negative, zero, positive) differs, which is when every comparison of the
/// two values it is the difference of may change; `None`: never.
pub fn sign_change(now: DateTime<Utc>, diff: i128, slope: i64) -> Option<DateTime<Utc>> {
    if slope == 0 {
        return None;
    }
    if diff == 0 {
        return Some(soon(now));
    }
    if (diff > 0) == (slope > 0) {
        return None;
    }
    Some(time_to_move(now, diff.abs(), slope))
}

/// The first instant `floor(v / unit)` differs, `v` moving by `slope` (`days_since`).
pub fn floor_change(now: DateTime<Utc>, v: i128, unit: i128, slope: i64) -> Option<DateTime<Utc>> {
    let q = v.div_euclid(unit);
    match slope.signum() {
        0 => None,
        1 => Some(time_to_move(now, (q + 1) * unit - v, slope)),
        _ => Some(time_to_move(now, v - (q * unit - 1), slope)),
    }
}

/// The first instant `v / unit` rounded toward zero differs, `v` moving by `slope`
/// (a `Duration`'s `.days`, `.hours`, `.minutes`, `.seconds`).
pub fn trunc_change(now: DateTime<Utc>, v: i128, unit: i128, slope: i64) -> Option<DateTime<Utc>> {
    let q = v / unit;
    // The values with this quotient are [lo, hi].
    let (lo, hi) = match q.signum() {
        1 => (q * unit, (q + 1) * unit - 1),
        -1 => ((q - 1) * unit + 1, q * unit),
        _ => (-(unit - 1), unit - 1),
    };
    match slope.signum() {
        0 => None,
        1 => Some(time_to_move(now, hi + 1 - v, slope)),
        _ => Some(time_to_move(now, v - (lo - 1), slope)),
    }
}

/// The first instant `v`, moving by `slope`, leaves `[lo, hi]` (an arithmetic limit
/// that would make the same expression an error).
pub fn leaves_range(
    now: DateTime<Utc>,
    v: i128,
    slope: i64,
    lo: i128,
    hi: i128,
) -> Option<DateTime<Utc>> {
    match slope.signum() {
        0 => None,
        1 => Some(time_to_move(now, hi + 1 - v, slope)),
        _ => Some(time_to_move(now, v - (lo - 1), slope)),
    }
}

/// A window `(since, now]` whose start moves by `slope`: the first instant it loses
/// one of the rows at `times` (those after `since` are in it). Rows entering it (new
/// rows at their own time) are not the window's doing.
pub fn window_drop(
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    slope: i64,
    times: impl Iterator<Item = DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match slope.signum() {
        0 => None,
        // A window growing backwards takes in older rows: at once, for all we know.
        -1 => Some(soon(now)),
        _ => times
            .filter(|t| *t > since)
            .min()
            .map(|first| time_to_move(now, nanos_between(first, since), slope)),
    }
}

/// `a - b` in nanoseconds.
pub fn nanos_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i128 {
    instant_nanos(a) - instant_nanos(b)
}

/// Nanoseconds since the epoch, for any instant chrono holds.
pub fn instant_nanos(t: DateTime<Utc>) -> i128 {
    t.timestamp() as i128 * SEC + t.timestamp_subsec_nanos() as i128
}

/// A calendar field of `local(ts)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Year,
    Month,
    Day,
    Weekday,
    Hour,
    Minute,
}

/// The first instant after `t` at which `field` of `t`'s local time in `tz` may
/// differ: the next local minute, hour or midnight at the current offset, or the next
/// change of offset (a daylight-saving switch) if that comes first. The year and
/// month are answered at each local midnight (a day is short enough that no zone
/// changes its offset twice within it). Offsets change on whole seconds.
pub fn local_change(t: DateTime<Utc>, tz: Tz, field: Field) -> DateTime<Utc> {
    let offset = |u: DateTime<Utc>| {
        tz.offset_from_utc_datetime(&u.naive_utc())
            .fix()
            .local_minus_utc()
    };
    let o0 = offset(t);
    let local = t.naive_utc() + TimeDelta::seconds(o0 as i64);
    let Some(next) = next_boundary(local, field) else {
        return soon(t);
    };
    let candidate = t + (next - local);
    if offset(candidate) == o0 {
        return candidate;
    }
    // The offset changed on the way: the first whole second it differs.
    let (mut lo, mut hi) = (t.timestamp(), candidate.timestamp() + 1);
    let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or(candidate);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset(at(mid)) == o0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    at(hi).min(candidate)
}

/// The start of the next local minute, hour or day after `local`.
fn next_boundary(local: NaiveDateTime, field: Field) -> Option<NaiveDateTime> {
    let minute = local.with_second(0)?.with_nanosecond(0)?;
    match field {
        Field::Minute => minute.checked_add_signed(TimeDelta::minutes(1)),
        Field::Hour => minute
            .with_minute(0)?
            .checked_add_signed(TimeDelta::hours(1)),
        Field::Day | Field::Weekday | Field::Month | Field::Year => {
            local.date().succ_opt()?.and_hms_opt(0, 0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    fn t(s: &str) -> DateTime<Utc> {
        crate::domain::time::parse_instant(s).unwrap()
    }

    #[test]
    fn a_comparison_changes_when_the_difference_reaches_zero() {
        let now = t("2026-03-01T00:00:00Z");
        // now < x, x three hours ahead: equal in 3 h.
        assert_eq!(
            sign_change(now, -3 * 3600 * SEC, 1),
            Some(t("2026-03-01T03:00:00Z"))
        );
        // Moving apart, or not moving: never.
        assert_eq!(sign_change(now, 5, 1), None);
        assert_eq!(sign_change(now, -5, -1), None);
        assert_eq!(sign_change(now, -5, 0), None);
        // Equal now: unequal at once.
        assert_eq!(sign_change(now, 0, 1), Some(soon(now)));
        // Twice as fast (now - t compared with t - now): half the time, rounded up.
        assert_eq!(sign_change(now, -3, 2), Some(after(now, 2)));
    }

    #[test]
    fn days_since_changes_at_the_next_whole_day_and_never_before() {
        let now = t("2026-03-01T00:00:00Z");
        let sent = t("2026-02-26T10:00:00Z");
        let v = nanos_between(now, sent);
        let w = floor_change(now, v, DAY, 1).unwrap();
        assert_eq!(w, t("2026-03-01T10:00:00Z"));
        let days = |at: DateTime<Utc>| nanos_between(at, sent).div_euclid(DAY);
        assert_eq!(days(w - TimeDelta::nanoseconds(1)), days(now));
        assert_eq!(days(w), days(now) + 1);
        // Exactly on a whole day: the next one is a full day away.
        let w = floor_change(now, 2 * DAY, DAY, 1).unwrap();
        assert_eq!(w, t("2026-03-02T00:00:00Z"));
        // A time in the future (negative days): floor, not truncation.
        let v = nanos_between(now, t("2026-03-01T06:00:00Z"));
        assert_eq!(v.div_euclid(DAY), -1);
        assert_eq!(
            floor_change(now, v, DAY, 1),
            Some(t("2026-03-01T06:00:00Z"))
        );
        // Moving backwards (days_since(now + now - t)): the floor drops below.
        assert_eq!(floor_change(now, 2 * DAY, DAY, -1), Some(after(now, 1)));
    }

    #[test]
    fn truncation_toward_zero_changes_at_the_right_edge_either_side_of_zero() {
        let now = t("2026-03-01T00:00:00Z");
        let h = 3600 * SEC;
        // -1.5 h counts as -1 hour; growing, it counts 0 from -(1 h - 1 ns).
        assert_eq!(
            trunc_change(now, -3 * h / 2, h, 1),
            Some(after(now, h / 2 + 1))
        );
        // 0.5 h is 0 hours until 1 h.
        assert_eq!(trunc_change(now, h / 2, h, 1), Some(after(now, h / 2)));
        // Shrinking from 0.5 h, 0 hours until -1 h.
        assert_eq!(trunc_change(now, h / 2, h, -1), Some(after(now, 3 * h / 2)));
        // Brute force: the quotient is constant up to the answer and differs at it.
        for v in [-7 * h / 3, -h, -1, 0, 1, h - 1, h, 5 * h / 2] {
            for slope in [1i64, -1, 2] {
                let w = trunc_change(now, v, h, slope).unwrap();
                let dt = nanos_between(w, now);
                let q = |d: i128| (v + slope as i128 * d) / h;
                assert_ne!(q(dt), q(0), "v={v} slope={slope}");
                assert_eq!(q(dt - 1), q(0), "v={v} slope={slope}");
            }
        }
    }

    #[test]
    fn a_window_changes_when_its_oldest_row_leaves() {
        let now = t("2026-03-08T00:00:00Z");
        let since = t("2026-03-01T00:00:00Z");
        let rows = [
            t("2026-02-28T00:00:00Z"),
            t("2026-03-03T12:00:00Z"),
            t("2026-03-05T00:00:00Z"),
        ];
        assert_eq!(
            window_drop(now, since, 1, rows.into_iter()),
            Some(t("2026-03-10T12:00:00Z"))
        );
        assert_eq!(window_drop(now, since, 1, [rows[0]].into_iter()), None);
        assert_eq!(window_drop(now, since, 0, rows.into_iter()), None);
        assert_eq!(
            window_drop(now, since, -1, rows.into_iter()),
            Some(soon(now))
        );
    }

    /// Checks `local_change` against the fields minute by minute: the field is the same
    /// up to the answer, and at the answer it changed or the offset did.
    fn check_local(tz: Tz, from: &str, hours: i64) {
        let fields = [
            Field::Year,
            Field::Month,
            Field::Day,
            Field::Weekday,
            Field::Hour,
            Field::Minute,
        ];
        let read = |u: DateTime<Utc>, f: Field| {
            let l = u.with_timezone(&tz);
            match f {
                Field::Year => l.year() as u32,
                Field::Month => l.month(),
                Field::Day => l.day(),
                Field::Weekday => l.weekday().number_from_monday(),
                Field::Hour => l.hour(),
                Field::Minute => l.minute(),
            }
        };
        let offset = |u: DateTime<Utc>| u.with_timezone(&tz).offset().fix();
        let start = t(from);
        for step in 0..hours * 4 {
            let at = start + TimeDelta::minutes(step * 15) + TimeDelta::seconds(7);
            for f in fields {
                let w = local_change(at, tz, f);
                assert!(w > at);
                let mut probe = at;
                while probe < w {
                    assert_eq!(read(probe, f), read(at, f), "{tz} {f:?} from {at} to {w}");
                    probe += TimeDelta::minutes(1);
                }
                let last = w - TimeDelta::nanoseconds(1);
                assert_eq!(read(last, f), read(at, f), "{tz} {f:?} from {at} to {w}");
                let changed = read(w, f) != read(at, f) || offset(w) != offset(at);
                let daily = matches!(f, Field::Year | Field::Month);
                assert!(changed || daily, "{tz} {f:?} from {at}: {w} is no change");
            }
        }
    }

    #[test]
    fn local_fields_change_at_local_boundaries_across_daylight_saving() {
        // Madrid springs forward 29 March 2026 (01:00 UTC) and falls back 25 October.
        check_local(chrono_tz::Europe::Madrid, "2026-03-28T20:00:00Z", 10);
        check_local(chrono_tz::Europe::Madrid, "2026-10-24T20:00:00Z", 10);
        // Half-hour offsets, a half-hour switch, and a zone that switches at midnight.
        check_local(chrono_tz::Asia::Kolkata, "2026-03-01T17:00:00Z", 3);
        check_local(chrono_tz::Australia::Lord_Howe, "2026-10-03T13:00:00Z", 4);
        check_local(chrono_tz::America::Santiago, "2026-04-04T22:00:00Z", 8);
    }

    #[test]
    fn the_spring_gap_moves_the_hour_at_the_switch() {
        // 00:30 UTC is 01:30 in Madrid; at 01:00 UTC it is 03:00.
        let w = local_change(
            t("2026-03-29T00:30:00Z"),
            chrono_tz::Europe::Madrid,
            Field::Hour,
        );
        assert_eq!(w, t("2026-03-29T01:00:00Z"));
        // Autumn: 00:30 UTC is 02:30 CEST; the offset changes at 01:00 UTC (02:00 CET),
        // where the hour reads 2 again: answered at the switch, which is early, not late.
        let w = local_change(
            t("2026-10-25T00:30:00Z"),
            chrono_tz::Europe::Madrid,
            Field::Hour,
        );
        assert_eq!(w, t("2026-10-25T01:00:00Z"));
        // The day of a 23-hour day ends at local midnight.
        let w = local_change(
            t("2026-03-29T12:00:00Z"),
            chrono_tz::Europe::Madrid,
            Field::Day,
        );
        assert_eq!(w, t("2026-03-29T22:00:00Z"));
    }
}
