//! What the sender reads before deciding a row's fate: the one async step in front of
//! the pure `fate::decide`. The round and `embudo explain` both come through
//! [`Deliverer::fate`], so what explain prints is what the daemon would do.

use super::Deliverer;
use super::fate::{self, Facts, Fate, Policy, Recipient};
use crate::domain::{EmailAddress, LeadId, StageId};
use crate::engine::policy;
use crate::funnel::Funnel;
use crate::store::{Claimed, StoreError, Suppression};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Usage counted across one batch, so the policy sees the sends it has just started.
#[derive(Debug, Default)]
pub(super) struct BatchUsage {
    pub(super) marketing_today: u32,
    /// The rows started in this batch, per lead, by id: a row already recorded as sent
    /// is both here and in the database, and must count once.
    lead_recent: HashMap<LeadId, Vec<(i64, DateTime<Utc>)>>,
}

impl BatchUsage {
    /// A batch's usage, starting from the day's marketing sends so far.
    pub(super) fn new(marketing_today: u32) -> BatchUsage {
        BatchUsage {
            marketing_today,
            lead_recent: HashMap::new(),
        }
    }

    /// Counts a row that goes now: marketing email uses the day's capacity and the
    /// lead's cap; receipts use neither.
    pub(super) fn count(&mut self, transactional: bool, row: &Claimed, now: DateTime<Utc>) {
        if !transactional {
            self.marketing_today += 1;
            self.lead_recent
                .entry(row.lead_id)
                .or_default()
                .push((row.id, now));
        }
    }

    /// When `lead`'s marketing emails went: those the database has recorded
    /// (`recorded`: row id and time, receipts left out by the caller) and those this
    /// batch has started, each row once.
    fn lead_recent(
        &self,
        lead: LeadId,
        recorded: impl IntoIterator<Item = (i64, DateTime<Utc>)>,
    ) -> Vec<DateTime<Utc>> {
        let started = self
            .lead_recent
            .get(&lead)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut at: Vec<DateTime<Utc>> = recorded
            .into_iter()
            .filter(|(id, _)| !started.iter().any(|(s, _)| s == id))
            .map(|(_, t)| t)
            .collect();
        at.extend(started.iter().map(|(_, t)| *t));
        at
    }
}

/// What the store said about a batch's leads, read in a few statements for the whole
/// batch rather than three a row: each lead's brief and suppression, and its marketing
/// emails within the per-lead cap's window.
#[derive(Debug, Default)]
pub(super) struct Known {
    /// The leads that exist.
    recipients: HashMap<LeadId, Recipient>,
    /// (row id, sent_at) of each lead's marketing emails since the window began as of
    /// the read; `judge` drops those that left it since.
    recorded: HashMap<LeadId, Vec<(i64, DateTime<Utc>)>>,
}

impl Known {
    /// The fate of one of the rows this was read for at `now`, with the batch's usage
    /// so far: `fate::decide` over what was read.
    pub(super) fn fate(
        &self,
        funnel: &Funnel,
        row: &Claimed,
        now: DateTime<Utc>,
        usage: &BatchUsage,
        campaign_paused: bool,
    ) -> Fate {
        let transactional = funnel.templates.is_transactional(row.template.as_str());
        let recipient = self.recipients.get(&row.lead_id).cloned();
        // Counted only against a cap (without one, `Deliverer::known` read none).
        let capped = funnel.config.limits.per_lead.is_some();
        let lead_recent = if capped && recipient.is_some() && !transactional {
            let recorded = self.recorded.get(&row.lead_id).map(Vec::as_slice);
            usage.lead_recent(row.lead_id, recorded.unwrap_or(&[]).iter().copied())
        } else {
            Vec::new()
        };
        let facts = Facts {
            transactional,
            template_exists: funnel.templates.contains(row.template.as_str()),
            campaign_paused,
            recipient,
            usage: policy::Usage {
                sent_today: usage.marketing_today,
                lead_recent,
            },
        };
        fate::decide(row, facts, &Policy::of(&funnel.config), now)
    }
}

impl Deliverer {
    /// Decides a claimed row's fate at `now`: reads its facts, then `fate::decide`.
    /// `stage` stands in for the lead's stage (explain's "after this pass"); `usage`
    /// is the batch's so far. Reads, never writes.
    pub(super) async fn fate(
        &self,
        funnel: &Funnel,
        row: &Claimed,
        now: DateTime<Utc>,
        usage: &BatchUsage,
        stage: Option<&StageId>,
        campaign_paused: bool,
    ) -> Result<Fate, StoreError> {
        let known = self
            .known(funnel, std::slice::from_ref(row), now, stage)
            .await?;
        Ok(known.fate(funnel, row, now, usage, campaign_paused))
    }

    /// Everything `fate::decide` needs about the leads of `rows` at `now`, read in one
    /// go: one statement each for the leads, their suppressions and their recent sends.
    pub(super) async fn known(
        &self,
        funnel: &Funnel,
        rows: &[Claimed],
        now: DateTime<Utc>,
        stage: Option<&StageId>,
    ) -> Result<Known, StoreError> {
        let mut leads: Vec<LeadId> = rows.iter().map(|r| r.lead_id).collect();
        leads.sort_unstable_by_key(|l| l.0);
        leads.dedup();
        let briefs = self.store.lead_briefs(&leads).await?;
        let emails: Vec<EmailAddress> = briefs.iter().map(|(_, b)| b.email.clone()).collect();
        let suppressed: HashMap<EmailAddress, Suppression> = self
            .store
            .suppressions(&emails)
            .await?
            .into_iter()
            .collect();
        let mut known = Known::default();
        for (lead, mut brief) in briefs {
            if let Some(s) = stage {
                brief.stage = s.clone();
            }
            let suppression = suppressed.get(&brief.email).copied();
            known
                .recipients
                .insert(lead, Recipient { brief, suppression });
        }
        // The per-lead cap's window; nothing to read when there is no cap.
        let Some(cap) = &funnel.config.limits.per_lead else {
            return Ok(known);
        };
        let existing: Vec<LeadId> = leads
            .into_iter()
            .filter(|l| known.recipients.contains_key(l))
            .collect();
        let sent = self
            .store
            .leads_sent_since(&existing, now - cap.within.0)
            .await?;
        for (lead, id, template, at) in sent {
            if !funnel.templates.is_transactional(&template) {
                known.recorded.entry(lead).or_default().push((id, at));
            }
        }
        Ok(known)
    }

    /// Marketing emails sent since the business day began; none counted when there is
    /// no daily capacity to hold them to.
    pub(super) async fn marketing_sent_today(
        &self,
        funnel: &Funnel,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        if funnel.config.limits.daily_capacity.is_none() {
            return Ok(0);
        }
        let since = policy::day_start(funnel.config.schedule.timezone.0, now);
        Ok(self
            .store
            .sent_since(since)
            .await?
            .into_iter()
            .filter(|(t, _)| !funnel.templates.is_transactional(t))
            .map(|(_, n)| n as u32)
            .sum())
    }

    /// What would happen to these rows, in this order, if they were claimed together at
    /// `now` with the lead in `stage` (where a pass at `now` would leave it): the
    /// decisions the sender makes, each seeing the ones before it, written nowhere.
    /// For `embudo explain`.
    pub async fn fates_now(
        &self,
        funnel: &Arc<Funnel>,
        rows: &[Claimed],
        now: DateTime<Utc>,
        stage: &StageId,
    ) -> Result<Vec<Fate>, StoreError> {
        let (_, paused_campaigns) = self.store.paused().await?;
        let mut usage = BatchUsage::new(self.marketing_sent_today(funnel, now).await?);
        let known = self.known(funnel, rows, now, Some(stage)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let paused = row
                .campaign
                .as_ref()
                .is_some_and(|c| paused_campaigns.contains(c));
            let fate = known.fate(funnel, row, now, &usage, paused);
            if matches!(fate, Fate::Go(_)) {
                usage.count(
                    funnel.templates.is_transactional(row.template.as_str()),
                    row,
                    now,
                );
            }
            out.push(fate);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn claimed(id: i64, lead: i64) -> Claimed {
        Claimed {
            id,
            lead_id: LeadId(lead),
            template: crate::domain::TemplateName::parse("t").unwrap(),
            key: String::new(),
            stage: crate::domain::StageId::parse("s").unwrap(),
            campaign: None,
            requested_at: DateTime::UNIX_EPOCH,
            released_at: None,
            attempts: 0,
            message_id: None,
        }
    }

    #[test]
    fn a_send_started_in_the_batch_counts_once_even_when_already_recorded() {
        let t0: DateTime<Utc> = "2026-03-03T10:00:00Z".parse().unwrap();
        let t1 = t0 + TimeDelta::minutes(1);
        let mut usage = BatchUsage::default();
        usage.count(false, &claimed(5, 7), t1);
        // Row 5 is recorded too (its send finished); row 3 went yesterday.
        let yesterday = t0 - TimeDelta::days(1);
        let recent = usage.lead_recent(LeadId(7), [(3, yesterday), (5, t1)]);
        assert_eq!(recent, [yesterday, t1]);
        assert_eq!(usage.marketing_today, 1);
        // Another lead's batch sends are not this one's.
        assert_eq!(usage.lead_recent(LeadId(8), [(4, t0)]), [t0]);
    }

    #[test]
    fn receipts_use_neither_the_day_nor_the_leads_cap() {
        let t0: DateTime<Utc> = "2026-03-03T10:00:00Z".parse().unwrap();
        let mut usage = BatchUsage::default();
        usage.count(true, &claimed(5, 7), t0);
        assert_eq!(usage.marketing_today, 0);
        assert!(usage.lead_recent(LeadId(7), []).is_empty());
    }
}
