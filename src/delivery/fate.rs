//! The sender's decision for one claimed row, before anything is rendered: it goes
//! now, waits for the policy, goes back because its campaign is paused, or ends here.
//!
//! A pure function of the facts the sender gathered (see `facts.rs`), the funnel's
//! limits and the clock, so the round, `embudo explain` and the tests below share one
//! decision and every branch is pinned without a database. The policy's own maths
//! (quiet hours, per-lead cap, daily capacity) is `engine::policy`'s; this module only
//! puts the row's own checks before it.

use crate::domain::time::format_duration;
use crate::engine::policy;
use crate::funnel::config::{Config, Limits};
use crate::store::{Claimed, LeadBrief, OutboxState, Suppression};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Why a row ends before it is sent. Each is a final outbox state, and only those
/// four: a row is never "sent" or "queued" by a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Unsent too long after it was asked for (`limits.expire_after`).
    Expired,
    /// The lead or the template is gone.
    Failed,
    /// Asked for in a stage the lead has left.
    Stale,
    /// The lead unsubscribed or the address is suppressed.
    Suppressed,
}

impl Ending {
    pub fn state(self) -> OutboxState {
        match self {
            Ending::Expired => OutboxState::Expired,
            Ending::Failed => OutboxState::Failed,
            Ending::Stale => OutboxState::Stale,
            Ending::Suppressed => OutboxState::Suppressed,
        }
    }
}

/// What the sender decides for a claimed row before rendering it.
#[derive(Debug, Clone)]
pub enum Fate {
    /// Its campaign is paused (`embudo pause --campaign`): it waits, unchanged.
    Paused,
    /// It ends here, in this state, for this reason.
    End(Ending, String),
    /// The policy holds it until then.
    Hold {
        reason: String,
        until: DateTime<Utc>,
    },
    /// It goes now, to this lead.
    Go(LeadBrief),
}

/// The lead a row is for, as the sender found it.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// Its stage is the lead's current one, or where a pass would leave it (`explain`).
    pub brief: LeadBrief,
    pub suppression: Option<Suppression>,
}

/// Everything the decision needs to know about one row, read beforehand.
#[derive(Debug, Clone)]
pub struct Facts {
    /// A receipt (`transactional: true`): owed whatever the stage, exempt from the policy.
    pub transactional: bool,
    /// The funnel still has the row's template.
    pub template_exists: bool,
    /// The row's campaign is paused. (Pausing all sending stops the round itself
    /// before any row is looked at: see `brakes.rs`.)
    pub campaign_paused: bool,
    /// `None`: the lead no longer exists.
    pub recipient: Option<Recipient>,
    /// What the policy counts: the day's marketing sends and this lead's recent ones.
    pub usage: policy::Usage,
}

/// The funnel settings the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub limits: &'a Limits,
    /// `schedule.timezone`: where the business day (daily capacity) starts.
    pub business_tz: Tz,
    /// The zone of a lead that has none (its quiet hours).
    pub default_tz: Tz,
}

impl<'a> Policy<'a> {
    pub fn of(cfg: &'a Config) -> Policy<'a> {
        Policy {
            limits: &cfg.limits,
            business_tz: cfg.schedule.timezone.0,
            default_tz: cfg.default_timezone(),
        }
    }
}

/// The row's fate at `now`. The checks run in the order a reader would ask: is it
/// still wanted (paused, expired, lead gone, stale, template gone), may this address
/// get it (suppression), and may it go now (the policy).
pub fn decide(row: &Claimed, facts: Facts, policy: &Policy, now: DateTime<Utc>) -> Fate {
    if facts.campaign_paused {
        return Fate::Paused;
    }
    if let Some(why) = expired(row, policy.limits, now) {
        return Fate::End(Ending::Expired, why);
    }
    let Some(Recipient { brief, suppression }) = facts.recipient else {
        return Fate::End(Ending::Failed, "the lead no longer exists".into());
    };
    // A receipt is owed whatever the stage: transactional rows never go stale.
    if row.campaign.is_none() && brief.stage != row.stage && !facts.transactional {
        let why = format!(
            "requested in stage `{}`, the lead is now in `{}`",
            row.stage, brief.stage
        );
        return Fate::End(Ending::Stale, why);
    }
    if !facts.template_exists {
        let why = format!("template `{}` no longer exists", row.template);
        return Fate::End(Ending::Failed, why);
    }
    if let Some(reason) = blocked(suppression, brief.unsubscribed, facts.transactional) {
        let why = format!("the address is suppressed ({reason})");
        return Fate::End(Ending::Suppressed, why);
    }
    let lead_tz = brief.timezone.unwrap_or(policy.default_tz);
    let verdict = policy::judge(
        policy.limits,
        policy.business_tz,
        lead_tz,
        facts.transactional,
        &facts.usage,
        now,
    );
    match verdict {
        policy::Verdict::Hold { reason, until } => Fate::Hold { reason, until },
        policy::Verdict::Send => Fate::Go(brief),
    }
}

/// Why the row is too old to send, if it is: unsent `expire_after` after it was asked
/// for, or after an operator's `outbox retry` released it.
fn expired(row: &Claimed, limits: &Limits, now: DateTime<Utc>) -> Option<String> {
    let since = row.released_at.unwrap_or(row.requested_at);
    (now - since > limits.expire_after.0).then(|| {
        format!(
            "unsent {} after it was {} (limits.expire_after)",
            format_duration(now - since),
            if row.released_at.is_some() {
                "retried"
            } else {
                "requested"
            }
        )
    })
}

/// Why this address may not get this email, if it may not: a bounce or `forget` stops
/// everything; an unsubscribe stops marketing, never a receipt.
/// The sender and a preview's test send ask this same question.
pub fn blocked(
    suppression: Option<Suppression>,
    unsubscribed: bool,
    transactional: bool,
) -> Option<&'static str> {
    match suppression {
        Some(s) if s.blocks_receipts() => Some(s.as_str()),
        Some(s) if !transactional => Some(s.as_str()),
        None if unsubscribed && !transactional => Some("unsubscribed"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, LeadId};
    use crate::funnel::config::{ClockTime, PerLead, QuietHours, Span};
    use chrono::{NaiveTime, TimeDelta};

    const MADRID: Tz = chrono_tz::Europe::Madrid;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Tuesday noon in Madrid: outside any quiet hours below.
    fn noon() -> DateTime<Utc> {
        at("2026-03-03T11:00:00Z")
    }

    fn row() -> Claimed {
        Claimed {
            id: 1,
            lead_id: LeadId(7),
            template: crate::domain::TemplateName::parse("welcome").unwrap(),
            key: String::new(),
            stage: crate::domain::StageId::parse("interest").unwrap(),
            campaign: None,
            requested_at: noon() - TimeDelta::hours(1),
            released_at: None,
            attempts: 0,
            message_id: None,
        }
    }

    fn facts() -> Facts {
        Facts {
            transactional: false,
            template_exists: true,
            campaign_paused: false,
            recipient: Some(Recipient {
                brief: LeadBrief {
                    email: EmailAddress::parse("ana@example.com").unwrap(),
                    stage: crate::domain::StageId::parse("interest").unwrap(),
                    timezone: None,
                    unsubscribed: false,
                },
                suppression: None,
            }),
            usage: policy::Usage::default(),
        }
    }

    fn limits() -> Limits {
        Limits {
            expire_after: Span(TimeDelta::days(2)),
            ..Limits::default()
        }
    }

    fn decide_with(row: &Claimed, facts: Facts, limits: &Limits, now: DateTime<Utc>) -> Fate {
        let policy = Policy {
            limits,
            business_tz: MADRID,
            default_tz: MADRID,
        };
        decide(row, facts, &policy, now)
    }

    fn ending(fate: Fate) -> (Ending, String) {
        match fate {
            Fate::End(e, why) => (e, why),
            other => panic!("expected an ending, got {other:?}"),
        }
    }

    fn recipient(facts: &mut Facts) -> &mut Recipient {
        facts.recipient.as_mut().unwrap()
    }

    #[test]
    fn a_wanted_row_for_a_reachable_lead_goes_now() {
        match decide_with(&row(), facts(), &limits(), noon()) {
            Fate::Go(brief) => assert_eq!(brief.email.as_str(), "ana@example.com"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_paused_campaign_row_waits_before_anything_else_is_looked_at() {
        let mut f = facts();
        f.campaign_paused = true;
        f.recipient = None;
        let old = noon() + TimeDelta::days(30);
        assert!(matches!(
            decide_with(&row(), f, &limits(), old),
            Fate::Paused
        ));
    }

    #[test]
    fn a_row_unsent_past_expire_after_expires_counting_from_a_release() {
        let now = noon() + TimeDelta::days(3);
        let (e, why) = ending(decide_with(&row(), facts(), &limits(), now));
        assert_eq!(e, Ending::Expired);
        assert!(why.contains("after it was requested"), "{why}");
        let mut released = row();
        released.released_at = Some(now - TimeDelta::hours(1));
        assert!(matches!(
            decide_with(&released, facts(), &limits(), now),
            Fate::Go(_)
        ));
        released.released_at = Some(now - TimeDelta::days(3));
        let (_, why) = ending(decide_with(&released, facts(), &limits(), now));
        assert!(why.contains("after it was retried"), "{why}");
    }

    #[test]
    fn a_row_of_a_lead_that_is_gone_fails() {
        let mut f = facts();
        f.recipient = None;
        let (e, why) = ending(decide_with(&row(), f, &limits(), noon()));
        assert_eq!(
            (e, why.as_str()),
            (Ending::Failed, "the lead no longer exists")
        );
    }

    #[test]
    fn a_row_asked_for_in_a_stage_the_lead_left_is_stale_unless_a_receipt_or_a_campaign() {
        let mut f = facts();
        recipient(&mut f).brief.stage = crate::domain::StageId::parse("customer").unwrap();
        let (e, why) = ending(decide_with(&row(), f.clone(), &limits(), noon()));
        assert_eq!(e, Ending::Stale);
        assert!(
            why.contains("`interest`") && why.contains("`customer`"),
            "{why}"
        );
        let mut receipt = f.clone();
        receipt.transactional = true;
        assert!(matches!(
            decide_with(&row(), receipt, &limits(), noon()),
            Fate::Go(_)
        ));
        let mut campaign = row();
        campaign.campaign = Some("spring".into());
        assert!(matches!(
            decide_with(&campaign, f, &limits(), noon()),
            Fate::Go(_)
        ));
    }

    #[test]
    fn a_row_whose_template_is_gone_fails() {
        let mut f = facts();
        f.template_exists = false;
        let (e, why) = ending(decide_with(&row(), f, &limits(), noon()));
        assert_eq!(e, Ending::Failed);
        assert_eq!(why, "template `welcome` no longer exists");
    }

    #[test]
    fn an_unsubscribed_lead_gets_receipts_only() {
        let mut f = facts();
        recipient(&mut f).brief.unsubscribed = true;
        let (e, why) = ending(decide_with(&row(), f.clone(), &limits(), noon()));
        assert_eq!(e, Ending::Suppressed);
        assert_eq!(why, "the address is suppressed (unsubscribed)");
        f.transactional = true;
        assert!(matches!(
            decide_with(&row(), f.clone(), &limits(), noon()),
            Fate::Go(_)
        ));
        // The same through the suppression list.
        recipient(&mut f).brief.unsubscribed = false;
        recipient(&mut f).suppression = Some(Suppression::Unsubscribed);
        assert!(matches!(
            decide_with(&row(), f.clone(), &limits(), noon()),
            Fate::Go(_)
        ));
        f.transactional = false;
        let (e, _) = ending(decide_with(&row(), f, &limits(), noon()));
        assert_eq!(e, Ending::Suppressed);
    }

    #[test]
    fn a_bounced_or_forgotten_address_gets_nothing_not_even_a_receipt() {
        for s in [Suppression::Bounced, Suppression::Forgotten] {
            let mut f = facts();
            f.transactional = true;
            recipient(&mut f).suppression = Some(s);
            let (e, why) = ending(decide_with(&row(), f, &limits(), noon()));
            assert_eq!(e, Ending::Suppressed);
            assert!(why.contains(s.as_str()), "{why}");
        }
    }

    fn quiet() -> Limits {
        Limits {
            quiet_hours: Some(QuietHours {
                from: ClockTime(NaiveTime::from_hms_opt(21, 0, 0).unwrap()),
                to: ClockTime(NaiveTime::from_hms_opt(8, 0, 0).unwrap()),
            }),
            ..limits()
        }
    }

    #[test]
    fn quiet_hours_hold_marketing_in_the_leads_own_zone() {
        // 22:30 in Madrid, 16:30 in New York.
        let late = at("2026-03-03T21:30:00Z");
        match decide_with(&row(), facts(), &quiet(), late) {
            Fate::Hold { reason, until } => {
                assert!(reason.starts_with("quiet hours 21:00–08:00"), "{reason}");
                assert_eq!(until, at("2026-03-04T07:00:00Z"));
            }
            other => panic!("{other:?}"),
        }
        let mut f = facts();
        recipient(&mut f).brief.timezone = Some(chrono_tz::America::New_York);
        assert!(matches!(
            decide_with(&row(), f.clone(), &quiet(), late),
            Fate::Go(_)
        ));
        // No zone (the store reads an unknown one as none): the default one.
        recipient(&mut f).brief.timezone = None;
        assert!(matches!(
            decide_with(&row(), f.clone(), &quiet(), late),
            Fate::Hold { .. }
        ));
        f.transactional = true;
        assert!(matches!(
            decide_with(&row(), f, &quiet(), late),
            Fate::Go(_)
        ));
    }

    #[test]
    fn the_per_lead_cap_and_the_daily_capacity_hold_with_the_counts_gathered() {
        let capped = Limits {
            per_lead: Some(PerLead {
                max: 1,
                within: Span(TimeDelta::days(7)),
            }),
            daily_capacity: Some(10),
            ..limits()
        };
        let mut f = facts();
        f.usage.lead_recent = vec![noon() - TimeDelta::days(1)];
        match decide_with(&row(), f.clone(), &capped, noon()) {
            Fate::Hold { reason, until } => {
                assert!(reason.starts_with("per-lead cap"), "{reason}");
                assert_eq!(until, noon() + TimeDelta::days(6));
            }
            other => panic!("{other:?}"),
        }
        f.usage.lead_recent.clear();
        f.usage.sent_today = 10;
        match decide_with(&row(), f.clone(), &capped, noon()) {
            Fate::Hold { reason, until } => {
                assert!(reason.starts_with("daily capacity of 10"), "{reason}");
                assert_eq!(until, at("2026-03-03T23:00:00Z"));
            }
            other => panic!("{other:?}"),
        }
        f.usage.sent_today = 9;
        assert!(matches!(
            decide_with(&row(), f, &capped, noon()),
            Fate::Go(_)
        ));
    }
}
