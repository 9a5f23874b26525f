//! What happened in a window of time, read back for `simulate`: outbox rows with
//! their outcome, stage moves, and the events that make rules react.

use super::{OutboxRow, Result};
use crate::domain::LeadId;
use chrono::{DateTime, Utc};
use std::path::Path;

/// One stage move.
#[derive(Debug, Clone)]
pub struct MoveRow {
    pub lead: LeadId,
    pub email: String,
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
    pub cause: String,
}

operations! {
    /// Outbox rows requested or ended at or after `since`, oldest request first.
    fn sends_since(&self, since: DateTime<Utc>) -> Result<Vec<OutboxRow>>;

    /// Stage moves (not first entries) at or after `since`, oldest first.
    fn moves_since(&self, since: DateTime<Utc>) -> Result<Vec<MoveRow>>;

    /// Every lead's current stage, by id.
    fn stages(&self) -> Result<Vec<(LeadId, String)>>;

    /// Each (time, lead) with an event in `(after, until]`: the moments the rules react.
    fn event_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, LeadId)>>;

    /// A consistent copy of the whole database into a new file, taken while others may
    /// be writing: simulate's scratch copy.
    fn copy_into(&self, path: &Path) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Origin;
    use crate::store::fixture::fixtures;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    #[tokio::test]
    async fn sends_moves_stages_and_event_times_in_a_window() {
        for f in fixtures().await {
            let (store, e) = (&f.store, f.store.engine());
            f.lead(1, "a@example.com", "customer", 0).await;
            f.lead(2, "b@example.com", "trial", 0).await;
            f.lead(3, "c@example.com", "lead", 0).await;
            f.exec(
                "INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, rule, campaign, state, next_attempt_at, sent_at, ended_at, attempts, message_id)
                   VALUES (1, 'welcome', '', 100, 'lead', 'r1', NULL, 'sent', 100, 600, 600, 1, '<m@x>');
                 INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, rule, state, next_attempt_at, sent_at, ended_at)
                   VALUES (2, 'welcome', '', 100, 'lead', 'r1', 'sent', 100, 200, 200);
                 INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, campaign, state, next_attempt_at)
                   VALUES (3, 'promo', 'x', 700, 'lead', 'spring', 'queued', 700);
                 INSERT INTO outbox (lead_id, template, dedupe_key, requested_at, stage, rule, campaign, state, next_attempt_at, last_error)
                   VALUES (1, 'promo', 'x', 500, 'lead', 'r2', 'spring', 'held', 800, 'quiet hours');
                 INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES (1, NULL, 'lead', 0, 'import');
                 INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES (1, 'lead', 'trial', 100, 'rule r1');
                 INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES (2, NULL, 'lead', 150, 'import');
                 INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES (1, 'trial', 'customer', 200, 'event');
                 INSERT INTO stage_history (lead_id, from_stage, to_stage, at, cause) VALUES (2, 'lead', 'trial', 150, 'rule r1');
                 INSERT INTO events (lead_id, kind, at, recorded_at) VALUES (1, 'a', 100, 0);
                 INSERT INTO events (lead_id, kind, at, recorded_at) VALUES (2, 'a', 200, 0);
                 INSERT INTO events (lead_id, kind, at, recorded_at) VALUES (1, 'a', 200, 0);
                 INSERT INTO events (lead_id, kind, at, recorded_at) VALUES (1, 'b', 200, 0);
                 INSERT INTO events (lead_id, kind, at, recorded_at) VALUES (3, 'a', 300, 0);
                 INSERT INTO events (lead_id, kind, at, recorded_at) VALUES (3, 'a', 301, 0);",
            )
            .await;
            let sends = store.sends_since(at(500)).await.unwrap();
            let got: Vec<_> = sends
                .iter()
                .map(|r| {
                    (
                        r.lead.0,
                        r.template.to_string(),
                        r.state.as_str(),
                        r.origin.clone(),
                    )
                })
                .collect();
            let rule = |r: &str| Some(Origin::Rule(r.into()));
            let spring = Some(Origin::Campaign("spring".into()));
            let want = vec![
                (1, "welcome".to_string(), "sent", rule("r1")),
                (1, "promo".to_string(), "held", spring.clone()),
                (3, "promo".to_string(), "queued", spring),
            ];
            assert_eq!(got, want, "{e}");
            let first = &sends[0];
            assert_eq!(
                (first.sent_at, first.ended_at),
                (Some(at(600)), Some(at(600)))
            );
            assert_eq!(
                (first.attempts, first.message_id.as_deref()),
                (1, Some("<m@x>"))
            );
            assert_eq!(sends[1].reason.as_deref(), Some("quiet hours"), "{e}");
            assert_eq!(sends[1].next_attempt_at, at(800), "{e}");

            let moves = store.moves_since(at(100)).await.unwrap();
            let got: Vec<_> = moves
                .iter()
                .map(|m| {
                    (
                        m.lead.0,
                        m.email.as_str(),
                        m.from.as_str(),
                        m.to.as_str(),
                        m.at,
                        m.cause.as_str(),
                    )
                })
                .collect();
            let want = vec![
                (1, "a@example.com", "lead", "trial", at(100), "rule r1"),
                (2, "b@example.com", "lead", "trial", at(150), "rule r1"),
                (1, "a@example.com", "trial", "customer", at(200), "event"),
            ];
            assert_eq!(got, want, "{e}");

            let stages = store.stages().await.unwrap();
            let want = [(1, "customer"), (2, "trial"), (3, "lead")]
                .map(|(id, s)| (LeadId(id), s.to_string()));
            assert_eq!(stages, want.to_vec(), "{e}");

            let times = store.event_times(at(100), at(300)).await.unwrap();
            let want = vec![
                (at(200), LeadId(1)),
                (at(200), LeadId(2)),
                (at(300), LeadId(3)),
            ];
            assert_eq!(times, want, "{e}");
        }
    }
}
