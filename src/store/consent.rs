//! Consent: the suppression list, and what the sender must know of a lead before it
//! sends anything.

use super::{Result, StoreError};
use crate::domain::{EmailAddress, LeadId, StageId};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Why an address must not be mailed. Ordered: a stronger reason replaces a weaker one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suppression {
    /// Unsubscribed: no marketing email; receipts still go.
    Unsubscribed,
    /// A hard bounce: the address does not exist; nothing goes.
    Bounced,
    /// Erased on request (`forget`): nothing goes.
    Forgotten,
}

impl Suppression {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::Unsubscribed => "unsubscribed",
            Suppression::Bounced => "bounced",
            Suppression::Forgotten => "forgotten",
        }
    }

    /// The reason of its stored name.
    pub fn parse(s: &str) -> Result<Suppression> {
        [
            Suppression::Unsubscribed,
            Suppression::Bounced,
            Suppression::Forgotten,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| StoreError::corrupt("suppression reason", s, "not a reason"))
    }

    /// Whether receipts are blocked too.
    pub fn blocks_receipts(self) -> bool {
        self != Suppression::Unsubscribed
    }
}

/// What the sender needs to know of a lead before sending it anything.
#[derive(Debug, Clone)]
pub struct LeadBrief {
    pub email: EmailAddress,
    pub stage: StageId,
    /// The lead's own time zone; `None` when it has none (or an unknown one), and the
    /// funnel's default applies.
    pub timezone: Option<Tz>,
    pub unsubscribed: bool,
}

operations! {
    /// What the sender needs of a lead; `None` if there is no such lead.
    fn lead_brief(&self, id: LeadId) -> Result<Option<LeadBrief>>;

    /// What the sender needs of each of these leads that exists (a batch's, read at
    /// once).
    fn lead_briefs(&self, ids: &[LeadId]) -> Result<Vec<(LeadId, LeadBrief)>>;

    /// The suppression of `email`, if any.
    fn suppression(&self, email: &EmailAddress) -> Result<Option<Suppression>>;

    /// The suppressions of those of these addresses that have one.
    fn suppressions(&self, emails: &[EmailAddress]) -> Result<Vec<(EmailAddress, Suppression)>>;

    /// Adds `email` to the suppression list (a stronger reason replaces a weaker one)
    /// and marks its lead unsubscribed. Returns the lead, if there is one.
    fn suppress(
        &self,
        email: &EmailAddress,
        reason: Suppression,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<LeadId>>;

    /// Erases a lead and everything about it; only the suppression (a hash) remains.
    /// Returns the address erased, if there was such a lead.
    fn forget(&self, id: LeadId, at: DateTime<Utc>) -> Result<Option<EmailAddress>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixture::fixtures;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_stronger_suppression_replaces_a_weaker_one() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            f.lead(7, "ana@example.com", "lead", 0).await;
            let (ana, bob) = (addr("ana@example.com"), addr("Bob@Example.com"));
            assert_eq!(store.suppression(&ana).await.unwrap(), None, "{e}");
            let lead = store
                .suppress(&ana, Suppression::Unsubscribed, "link", at(1000))
                .await
                .unwrap();
            assert_eq!(lead, Some(LeadId(7)), "{e}");
            let none = store
                .suppress(&bob, Suppression::Bounced, "550", at(2000))
                .await
                .unwrap();
            assert_eq!(none, None, "{e}");
            store
                .suppress(&ana, Suppression::Bounced, "550", at(3000))
                .await
                .unwrap();
            store
                .suppress(&bob, Suppression::Unsubscribed, "link", at(4000))
                .await
                .unwrap();
            let got = store
                .suppressions(&[bob.clone(), addr("carl@example.com"), ana.clone()])
                .await
                .unwrap();
            let mut got: Vec<_> = got.into_iter().map(|(a, s)| (a.to_string(), s)).collect();
            got.sort();
            let want = [("ana@example.com", Suppression::Bounced)]
                .into_iter()
                .chain([("bob@example.com", Suppression::Bounced)])
                .map(|(a, s)| (a.to_string(), s))
                .collect::<Vec<_>>();
            assert_eq!(got, want, "{e}");
            // The lead is unsubscribed from the first suppression on.
            let since = "SELECT unsubscribed_at FROM leads WHERE id = 7";
            assert_eq!(f.count(since).await, 1000, "{e}");
            assert!(
                store
                    .lead_brief(LeadId(7))
                    .await
                    .unwrap()
                    .unwrap()
                    .unsubscribed
            );
        }
    }

    #[tokio::test]
    async fn briefs_of_the_leads_that_exist() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            f.lead(3, "c@example.com", "customer", 0).await;
            f.lead(1, "a@example.com", "lead", 0).await;
            f.lead(2, "not an address", "lead", 0).await;
            f.exec("UPDATE leads SET timezone = 'Mars/Olympus' WHERE id = 3")
                .await;
            let ids = [LeadId(3), LeadId(9), LeadId(2), LeadId(1)];
            let briefs = store.lead_briefs(&ids).await.unwrap();
            let got: Vec<_> = briefs
                .iter()
                .map(|(id, b)| (id.0, b.email.to_string(), b.stage.to_string(), b.timezone))
                .collect();
            let want = vec![
                (
                    1,
                    "a@example.com".into(),
                    "lead".into(),
                    Some(chrono_tz::Europe::Madrid),
                ),
                (3, "c@example.com".into(), "customer".into(), None),
            ];
            assert_eq!(got, want, "{e}");
            assert!(store.lead_brief(LeadId(9)).await.unwrap().is_none(), "{e}");
            assert!(!briefs[0].1.unsubscribed, "{e}");
        }
    }

    #[tokio::test]
    async fn forget_erases_the_lead_and_keeps_its_suppression() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            f.lead(1, "ana@example.com", "lead", 0).await;
            f.lead(2, "bob@example.com", "lead", 0).await;
            for id in [1, 2] {
                f.exec(&format!(
                    "INSERT INTO lead_tags (lead_id, tag) VALUES ({id}, 'vip');
                     INSERT INTO lead_attrs (lead_id, key, value) VALUES ({id}, 'plan', '{{\"str\":\"pro\"}}');
                     INSERT INTO events (lead_id, kind, at, props, recorded_at) VALUES ({id}, 'signup', 5, '{{}}', 5);
                     INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES ({id}, NULL, 'lead', 5, 'import');
                     INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, next_attempt_at) VALUES ({id}, 'welcome', '', 5, 'lead', 5);"
                ))
                .await;
            }
            let ana = addr("ana@example.com");
            let erased = store.forget(LeadId(1), at(9000)).await.unwrap();
            assert_eq!(erased, Some(ana.clone()), "{e}");
            let supp = store.suppression(&ana).await.unwrap();
            assert_eq!(supp, Some(Suppression::Forgotten), "{e}");
            for table in [
                "leads",
                "lead_tags",
                "lead_attrs",
                "events",
                "stage_history",
                "outbox",
            ] {
                let total = f.count(&format!("SELECT COUNT(*) FROM {table}")).await;
                assert_eq!(total, 1, "{e}: {table} keeps only the other lead's row");
            }
            let hash = "SELECT COUNT(*) FROM suppressions WHERE email_hash = '";
            let kept = f.count(&format!("{hash}{}'", ana.digest())).await;
            assert_eq!(kept, 1, "{e}");
            assert_eq!(
                store.forget(LeadId(1), at(9001)).await.unwrap(),
                None,
                "{e}"
            );
        }
    }
}
