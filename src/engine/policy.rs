//! The sending policy: whether an email may leave now, or must wait, and until when.
//!
//! Pure decisions over counts the sender gathers, so the daemon, `tick` and `simulate`
//! share them and tests can pin every rule with chosen clocks. Nothing is ever
//! dropped here: a row the policy holds gets a reason and the earliest instant it may
//! go, and is looked at again then. Receipts (`transactional: true`) are exempt.

use crate::funnel::config::{Limits, QuietHours};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

/// What the sender knows when it judges one row.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Marketing emails sent (or in flight) since the start of the business day.
    pub sent_today: u32,
    /// When this lead's marketing emails within `per_lead.within` were sent.
    pub lead_recent: Vec<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Hold {
        reason: String,
        until: DateTime<Utc>,
    },
}

/// Judges a marketing email for a lead in `lead_tz` at `now`.
pub fn judge(
    limits: &Limits,
    business_tz: Tz,
    lead_tz: Tz,
    transactional: bool,
    usage: &Usage,
    now: DateTime<Utc>,
) -> Verdict {
    if transactional {
        return Verdict::Send;
    }
    if let Some(q) = &limits.quiet_hours
        && let Some(until) = quiet_until(q, lead_tz, now)
    {
        return Verdict::Hold {
            reason: format!(
                "quiet hours {}–{} in {lead_tz}",
                q.from.0.format("%H:%M"),
                q.to.0.format("%H:%M")
            ),
            until,
        };
    }
    if let Some(cap) = &limits.per_lead {
        let since = now - cap.within.0;
        let mut recent: Vec<_> = usage.lead_recent.iter().filter(|t| **t > since).collect();
        if recent.len() >= cap.max as usize {
            recent.sort();
            // A slot frees when the oldest of the last `max` leaves the window: at
            // `oldest + within` exactly (the window is (now - within, now]).
            let oldest = *recent[recent.len() - cap.max as usize];
            return Verdict::Hold {
                reason: format!(
                    "per-lead cap: {} email(s) in {}",
                    cap.max,
                    crate::domain::time::format_duration(cap.within.0)
                ),
                until: oldest + cap.within.0,
            };
        }
    }
    if let Some(cap) = limits.daily_capacity
        && usage.sent_today >= cap
    {
        return Verdict::Hold {
            reason: format!("daily capacity of {cap} reached ({business_tz})"),
            until: next_day_start(business_tz, now),
        };
    }
    Verdict::Send
}

/// The start of the business day containing `now`, in `tz`.
pub fn day_start(tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    at_local(tz, now.with_timezone(&tz).date_naive(), NaiveTime::MIN)
}

/// The start of the next business day after `now`, in `tz`.
pub fn next_day_start(tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    at_local(tz, today + Days::new(1), NaiveTime::MIN)
}

/// If `now` falls in the quiet hours in `tz`, when they end.
pub fn quiet_until(q: &QuietHours, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    let t = local.time();
    let (from, to) = (q.from.0, q.to.0);
    let quiet = if from <= to {
        t >= from && t < to
    } else {
        // Over midnight, e.g. 21:00–08:00.
        t >= from || t < to
    };
    if !quiet || from == to {
        return None;
    }
    let date = local.date_naive();
    let end_date = if t < to { date } else { date + Days::new(1) };
    Some(at_local(tz, end_date, to))
}

/// A local date and time in `tz` as an instant, daylight-saving safe.
fn at_local(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    crate::domain::time::local_to_instant(tz, date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::funnel::config::{ClockTime, PerLead, Span};
    use chrono::TimeDelta;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }
    const MADRID: Tz = chrono_tz::Europe::Madrid;
    const MEXICO: Tz = chrono_tz::America::Mexico_City;

    fn limits() -> Limits {
        Limits {
            daily_capacity: Some(2),
            per_lead: Some(PerLead {
                max: 2,
                within: Span(TimeDelta::days(7)),
            }),
            quiet_hours: Some(QuietHours {
                from: ClockTime(NaiveTime::from_hms_opt(21, 0, 0).unwrap()),
                to: ClockTime(NaiveTime::from_hms_opt(8, 0, 0).unwrap()),
            }),
            ..Limits::default()
        }
    }

    #[test]
    fn quiet_hours_are_the_leads_own_and_end_at_their_morning() {
        let l = limits();
        // 22:30 in Madrid (21:30 UTC in winter): held until 08:00 Madrid = 07:00 UTC.
        let now = t("2026-03-02T21:30:00Z");
        let v = judge(&l, MADRID, MADRID, false, &Usage::default(), now);
        assert_eq!(
            v,
            Verdict::Hold {
                reason: "quiet hours 21:00–08:00 in Europe/Madrid".into(),
                until: t("2026-03-03T07:00:00Z")
            }
        );
        // The same instant is 15:30 in Mexico City: it goes.
        assert_eq!(
            judge(&l, MADRID, MEXICO, false, &Usage::default(), now),
            Verdict::Send
        );
        // Just after midnight: until 08:00 the same day.
        let v = judge(
            &l,
            MADRID,
            MADRID,
            false,
            &Usage::default(),
            t("2026-03-03T00:10:00Z"),
        );
        assert!(matches!(v, Verdict::Hold { until, .. } if until == t("2026-03-03T07:00:00Z")));
        // Receipts are exempt.
        assert_eq!(
            judge(&l, MADRID, MADRID, true, &Usage::default(), now),
            Verdict::Send
        );
    }

    #[test]
    fn quiet_hours_end_at_local_eight_across_a_daylight_saving_change() {
        let l = limits();
        // Night of 28–29 March 2026: Madrid moves to summer time at 02:00.
        let v = judge(
            &l,
            MADRID,
            MADRID,
            false,
            &Usage::default(),
            t("2026-03-28T22:00:00Z"),
        );
        // 08:00 CEST on the 29th is 06:00 UTC, not 07:00.
        assert!(
            matches!(v, Verdict::Hold { until, .. } if until == t("2026-03-29T06:00:00Z")),
            "{v:?}"
        );
    }

    #[test]
    fn the_per_lead_cap_holds_until_the_oldest_send_leaves_the_window() {
        let mut l = limits();
        l.quiet_hours = None;
        let now = t("2026-03-05T10:00:00Z");
        let usage = Usage {
            sent_today: 0,
            lead_recent: vec![t("2026-03-01T10:00:00Z"), t("2026-03-04T10:00:00Z")],
        };
        let v = judge(&l, MADRID, MADRID, false, &usage, now);
        assert!(
            matches!(&v, Verdict::Hold { until, reason } if *until == t("2026-03-08T10:00:00Z") && reason.contains("per-lead cap: 2 email(s) in 7d")),
            "{v:?}"
        );
        // Once the first leaves the window, it goes.
        assert_eq!(
            judge(&l, MADRID, MADRID, false, &usage, t("2026-03-08T10:00:00Z")),
            Verdict::Send
        );
    }

    #[test]
    fn the_daily_capacity_is_counted_in_the_business_zone_and_reopens_at_its_midnight() {
        let mut l = limits();
        l.quiet_hours = None;
        l.per_lead = None;
        let full = Usage {
            sent_today: 2,
            lead_recent: vec![],
        };
        let now = t("2026-03-02T15:00:00Z");
        let v = judge(&l, MADRID, MEXICO, false, &full, now);
        assert!(
            matches!(&v, Verdict::Hold { until, .. } if *until == t("2026-03-02T23:00:00Z")),
            "midnight in Madrid: {v:?}"
        );
        assert_eq!(day_start(MADRID, now), t("2026-03-01T23:00:00Z"));
        let one_left = Usage {
            sent_today: 1,
            lead_recent: vec![],
        };
        assert_eq!(
            judge(&l, MADRID, MEXICO, false, &one_left, now),
            Verdict::Send
        );
    }
}
