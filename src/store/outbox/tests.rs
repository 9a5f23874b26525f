//! The outbox's operations on every backend the machine offers (`stores()`): rows are
//! set up, and some read back, with plain SQL beside the interface, the same text on
//! SQLite and PostgreSQL, so each backend is held to the same outcomes.

use crate::domain::LeadId;
use crate::store::testing::stores;
use crate::store::{Backend, OutboxFilter, OutboxState, Store, Unsent};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

/// A pool on a store's database beside the interface, for test rows.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// Runs one `query_as` on either backend's pool; the caller's binding names the type.
macro_rules! fetch {
    ($raw:expr, $sql:expr) => {
        match $raw {
            Raw::Sqlite(p) => sqlx::query_as(sqlx::AssertSqlSafe($sql.to_string()))
                .fetch_all(p)
                .await
                .unwrap(),
            Raw::Pg(p) => sqlx::query_as(sqlx::AssertSqlSafe($sql.to_string()))
                .fetch_all(p)
                .await
                .unwrap(),
        }
    };
}

impl Raw {
    fn of(store: &Store) -> Raw {
        match &store.backend {
            Backend::Sqlite(db) => Raw::Sqlite(db.test_pool().clone()),
            Backend::Postgres(db) => Raw::Pg(db.test_pool().clone()),
        }
    }

    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Every backend's store, each with leads 1 (ana) and 2 (bea), no outbox rows.
async fn dbs() -> Vec<(Store, Raw)> {
    let mut out = Vec::new();
    for s in stores().await {
        let raw = Raw::of(&s);
        raw.exec(
            "INSERT INTO leads (id, email, stage, created_at, stage_entered_at, updated_at)
             VALUES (1, 'ana@example.com', 'interest', 0, 0, 0),
                    (2, 'bea@example.com', 'interest', 0, 0, 0)",
        )
        .await;
        out.push((s, raw));
    }
    out
}

/// A `welcome` row of lead 1 in `state`, due at `next` ms, leased until `lease`, one
/// attempt made.
async fn row(raw: &Raw, id: i64, state: &str, next: i64, lease: Option<i64>) {
    let lease = lease.map_or("NULL".to_string(), |l| l.to_string());
    raw.exec(&format!(
        "INSERT INTO outbox (id, lead_id, template, dedupe_key, requested_at, stage, state,
                             attempts, next_attempt_at, lease_until)
         VALUES ({id}, 1, 'welcome', '{id}', 0, 'interest', '{state}', 1, {next}, {lease})"
    ))
    .await;
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    rows.iter().map(id).collect()
}

/// id, state, next_attempt_at, lease_until, last_error.
type Recovered = (i64, String, i64, Option<i64>, Option<String>);

/// id, state, next_attempt_at, released_at, ended_at, message_id.
type Operated = (i64, String, i64, Option<i64>, Option<i64>, Option<String>);

async fn states(raw: &Raw) -> Vec<(i64, String, i64, i64)> {
    fetch!(
        raw,
        "SELECT id, state, next_attempt_at, attempts FROM outbox ORDER BY id"
    )
}

#[tokio::test]
async fn a_claim_takes_lapsed_leases_then_due_rows_oldest_first_and_leaves_the_rest() {
    for (s, raw) in dbs().await {
        row(&raw, 1, "queued", 300, None).await;
        row(&raw, 2, "retry", 100, None).await;
        row(&raw, 3, "held", 5_000, None).await; // released later
        row(&raw, 4, "sending", 0, Some(900)).await; // a crashed sender's, lapsed at 900
        row(&raw, 5, "sending", 0, Some(5_000)).await; // still leased
        row(&raw, 6, "held", 200, None).await;
        row(&raw, 7, "sent", 0, None).await;
        let lease = TimeDelta::milliseconds(60_000);
        let first = s.claim_due(at(1_000), 2, lease, &[]).await.unwrap();
        // The lapsed lease first, then the oldest due row.
        assert_eq!(ids(&first, |c| c.id), [2, 4], "{}", s.engine());
        assert_eq!(ids(&first, |c| c.attempts), [2, 2]);
        let rest = s.claim_due(at(1_000), 10, lease, &[]).await.unwrap();
        assert_eq!(ids(&rest, |c| c.id), [1, 6]);
        let none = s.claim_due(at(1_000), 10, lease, &[]).await.unwrap();
        assert!(none.is_empty());
        let leased: Vec<(i64, i64)> = fetch!(
            &raw,
            "SELECT id, lease_until FROM outbox WHERE state = 'sending' ORDER BY id"
        );
        assert_eq!(
            leased,
            [
                (1, 61_000),
                (2, 61_000),
                (4, 61_000),
                (5, 5_000),
                (6, 61_000)
            ]
        );
    }
}

#[tokio::test]
async fn a_claim_leaves_the_rows_of_paused_campaigns_alone() {
    for (s, raw) in dbs().await {
        for id in 1..=4 {
            row(&raw, id, "queued", id, None).await;
        }
        raw.exec("UPDATE outbox SET campaign = 'spring' WHERE id = 1")
            .await;
        raw.exec("UPDATE outbox SET campaign = 'fall' WHERE id = 2")
            .await;
        let lease = TimeDelta::minutes(5);
        let paused = ["spring".to_string(), "winter".to_string()];
        let claimed = s.claim_due(at(10), 10, lease, &paused).await.unwrap();
        assert_eq!(ids(&claimed, |c| c.id), [2, 3, 4], "{}", s.engine());
        assert_eq!(claimed[0].campaign.as_deref(), Some("fall"));
        let later = s.claim_due(at(10), 10, lease, &[]).await.unwrap();
        assert_eq!(ids(&later, |c| c.id), [1]);
    }
}

#[tokio::test]
async fn rows_set_aside_together_are_held_or_ended_each_as_decided() {
    for (s, raw) in dbs().await {
        for id in 1..=3 {
            row(&raw, id, "queued", 0, None).await;
        }
        let lease = TimeDelta::minutes(5);
        assert_eq!(s.claim_due(at(10), 10, lease, &[]).await.unwrap().len(), 3);
        let aside = [
            Unsent::Held {
                id: 1,
                until: at(7_000),
                reason: "quiet hours".into(),
            },
            Unsent::Ended {
                id: 2,
                state: OutboxState::Stale,
                reason: "moved on".into(),
                at: at(10),
            },
            Unsent::Held {
                id: 3,
                until: at(9_000),
                reason: "daily capacity".into(),
            },
        ];
        s.set_aside(&aside).await.unwrap();
        s.set_aside(&[]).await.unwrap();
        // A hold is not an attempt: the claim's is undone. An ending keeps it.
        assert_eq!(
            states(&raw).await,
            [
                (1, "held".into(), 7_000, 1),
                (2, "stale".into(), 0, 2),
                (3, "held".into(), 9_000, 1)
            ],
            "{}",
            s.engine()
        );
        let why: Vec<(Option<String>, Option<i64>, Option<i64>)> = fetch!(
            &raw,
            "SELECT last_error, ended_at, lease_until FROM outbox ORDER BY id"
        );
        assert_eq!(why[0], (Some("quiet hours".into()), None, None));
        assert_eq!(why[1], (Some("moved on".into()), Some(10), None));
        // Held rows are not looked at again before their release.
        let early = s.claim_due(at(6_999), 10, lease, &[]).await.unwrap();
        assert!(early.is_empty());
        let released = s.claim_due(at(7_000), 10, lease, &[]).await.unwrap();
        assert_eq!(ids(&released, |c| c.id), [1]);
    }
}

#[tokio::test]
async fn outcomes_keep_the_first_message_id_and_stamp_when_a_row_ended() {
    for (s, raw) in dbs().await {
        for id in 1..=3 {
            row(&raw, id, "sending", 0, Some(100)).await;
        }
        raw.exec("UPDATE outbox SET message_id = '<kept@x>' WHERE id = 1")
            .await;
        s.mark_sent(1, at(500), "<new@x>").await.unwrap();
        s.mark_retry(2, at(900), "timed out", Some("<two@x>"))
            .await
            .unwrap();
        s.mark_retry(2, at(950), "refused", Some("<other@x>"))
            .await
            .unwrap();
        s.mark_retry(3, at(900), "no attempt", None).await.unwrap();
        s.mark_final(3, OutboxState::Failed, "gave up", at(990))
            .await
            .unwrap();
        let rows = s.outbox_of(LeadId(1)).await.unwrap();
        let e = s.engine();
        assert_eq!(rows[0].state, OutboxState::Sent, "{e}");
        assert_eq!(rows[0].message_id.as_deref(), Some("<kept@x>"));
        assert_eq!(
            (rows[0].sent_at, rows[0].ended_at),
            (Some(at(500)), Some(at(500)))
        );
        assert_eq!(rows[0].reason, None);
        assert_eq!(rows[1].state, OutboxState::Retry);
        assert_eq!(rows[1].message_id.as_deref(), Some("<two@x>"));
        assert_eq!(rows[1].next_attempt_at, at(950));
        assert_eq!(rows[1].reason.as_deref(), Some("refused"));
        assert_eq!(rows[1].ended_at, None);
        assert_eq!(rows[2].state, OutboxState::Failed);
        assert_eq!(rows[2].message_id, None);
        assert_eq!(rows[2].ended_at, Some(at(990)));
        assert_eq!(rows[2].reason.as_deref(), Some("gave up"));
        assert_eq!(rows[0].email.as_str(), "ana@example.com");
        let leases: Vec<(Option<i64>,)> = fetch!(&raw, "SELECT lease_until FROM outbox");
        assert!(leases.iter().all(|l| l.0.is_none()));
    }
}

#[tokio::test]
async fn unclaimed_rows_wait_again_as_they_were_and_lost_claims_are_recovered() {
    for (s, raw) in dbs().await {
        row(&raw, 1, "queued", 0, None).await;
        row(&raw, 2, "retry", 0, None).await;
        row(&raw, 3, "sending", 0, Some(5)).await;
        row(&raw, 4, "sending", 0, Some(5_000)).await;
        raw.exec("UPDATE outbox SET attempts = 0 WHERE id = 1")
            .await;
        let lease = TimeDelta::milliseconds(1_000);
        let claimed = s.claim_due(at(10), 2, lease, &[]).await.unwrap();
        assert_eq!(ids(&claimed, |c| c.id), [1, 3], "{}", s.engine());
        // 1 was claimed from queued (its first attempt), 3 from a lapsed lease (its second).
        assert_eq!(s.unclaim(&[1, 2, 3]).await.unwrap(), 2);
        assert_eq!(s.unclaim(&[]).await.unwrap(), 0);
        assert_eq!(
            states(&raw).await,
            [
                (1, "queued".into(), 0, 0),
                (2, "retry".into(), 0, 1),
                (3, "retry".into(), 0, 1),
                (4, "sending".into(), 0, 1)
            ]
        );
        raw.exec("UPDATE outbox SET state = 'sending', lease_until = 100 WHERE id IN (1, 2)")
            .await;
        assert_eq!(s.recover_expired_claims(at(200)).await.unwrap(), 2);
        assert_eq!(s.recover_in_flight(at(300)).await.unwrap(), 1);
        let after: Vec<Recovered> = fetch!(
            &raw,
            "SELECT id, state, next_attempt_at, lease_until, last_error FROM outbox ORDER BY id"
        );
        let why = Some("in flight when the previous sender stopped".to_string());
        assert_eq!(after[0], (1, "retry".into(), 200, None, why.clone()));
        assert_eq!(after[1], (2, "retry".into(), 200, None, why.clone()));
        assert_eq!(after[2], (3, "retry".into(), 0, None, None));
        assert_eq!(after[3], (4, "retry".into(), 300, None, why));
    }
}

#[tokio::test]
async fn reads_count_and_order_the_rows_as_every_backend_does() {
    for (s, raw) in dbs().await {
        row(&raw, 1, "queued", 700, None).await;
        row(&raw, 2, "held", 400, None).await;
        row(&raw, 3, "sent", 0, None).await;
        row(&raw, 4, "sent", 0, None).await;
        row(&raw, 5, "sending", 0, Some(10)).await;
        raw.exec(
            "UPDATE outbox SET template = 'news_b', sent_at = 1000, requested_at = 5 WHERE id = 3;",
        )
        .await;
        raw.exec("UPDATE outbox SET sent_at = 2000, lead_id = 2 WHERE id = 4")
            .await;
        raw.exec("UPDATE outbox SET template = 'news-a', requested_at = 9 WHERE id = 2")
            .await;
        let e = s.engine();
        let counts = s.outbox_counts().await.unwrap();
        let want = [("held", 1), ("queued", 1), ("sending", 1), ("sent", 2)];
        let want: Vec<(String, i64)> = want.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        assert_eq!(counts, want, "{e}");
        let pending = s.pending_templates().await.unwrap();
        assert_eq!(pending, [("news-a".into(), 1), ("welcome".into(), 2)]);
        assert_eq!(s.next_due_after(at(400)).await.unwrap(), Some(at(700)));
        assert_eq!(s.next_due_after(at(0)).await.unwrap(), Some(at(400)));
        assert_eq!(s.next_due_after(at(700)).await.unwrap(), None);
        let sent = s.sent_since(at(1_500)).await.unwrap();
        assert_eq!(sent, [("welcome".into(), 1)]);
        let mut sent = s.sent_since(at(0)).await.unwrap();
        sent.sort();
        assert_eq!(sent, [("news_b".into(), 1), ("welcome".into(), 1)]);
        let by_lead = s.leads_sent_since(&[LeadId(2), LeadId(1)], at(0));
        let by_lead = by_lead.await.unwrap();
        assert_eq!(
            by_lead,
            [
                (LeadId(1), 3, "news_b".into(), at(1_000)),
                (LeadId(2), 4, "welcome".into(), at(2_000))
            ]
        );
        assert!(s.leads_sent_since(&[], at(0)).await.unwrap().is_empty());
        let pending = s.pending_of(LeadId(1)).await.unwrap();
        assert_eq!(ids(&pending, |c| c.id), [2, 1]);
        let of = s.outbox_of(LeadId(1)).await.unwrap();
        assert_eq!(ids(&of, |r| r.id), [1, 5, 3, 2]);
    }
}

#[tokio::test]
async fn the_operator_lists_retries_and_cancels_the_rows_of_a_filter() {
    use OutboxState::*;
    for (s, raw) in dbs().await {
        for (id, state) in [(1, "failed"), (2, "held"), (3, "sent"), (4, "queued")] {
            row(&raw, id, state, 500, None).await;
        }
        row(&raw, 5, "queued", 500, None).await;
        raw.exec("UPDATE outbox SET ended_at = 40, message_id = '<m@x>' WHERE id = 1")
            .await;
        raw.exec(
            "UPDATE outbox SET lead_id = 2, campaign = 'spring', requested_at = 3 WHERE id = 5",
        )
        .await;
        let e = s.engine();
        let any = OutboxFilter::default();
        let all = s.outbox_list(&any, 10).await.unwrap();
        assert_eq!(ids(&all, |r| r.id), [5, 4, 3, 2, 1], "{e}");
        let two = s.outbox_list(&any, 2).await.unwrap();
        assert_eq!(ids(&two, |r| r.id), [5, 4]);
        let f = OutboxFilter {
            states: vec![Queued, Sent],
            template: Some("welcome".into()),
            lead: Some(LeadId(1)),
            campaign: None,
        };
        let some = s.outbox_list(&f, 10).await.unwrap();
        assert_eq!(ids(&some, |r| r.id), [4, 3]);
        let spring = OutboxFilter {
            campaign: Some("spring".into()),
            ..Default::default()
        };
        let spring = s.outbox_list(&spring, 10).await.unwrap();
        assert_eq!(ids(&spring, |r| r.id), [5]);
        // Sent rows are never retried; failed and held ones are, at once.
        let sent_only = OutboxFilter {
            states: vec![Sent],
            ..Default::default()
        };
        assert_eq!(s.outbox_retry(&sent_only, at(900)).await.unwrap(), 0);
        assert_eq!(s.outbox_retry(&any, at(900)).await.unwrap(), 2);
        let mine = OutboxFilter {
            lead: Some(LeadId(1)),
            ..Default::default()
        };
        assert_eq!(s.outbox_cancel(&mine, at(950)).await.unwrap(), 3);
        let after: Vec<Operated> = fetch!(
            &raw,
            "SELECT id, state, next_attempt_at, released_at, ended_at, message_id FROM outbox ORDER BY id"
        );
        let cancelled = |id, released| (id, "cancelled".into(), 0, released, Some(950), None);
        let mut first = cancelled(1, Some(900));
        first.5 = Some("<m@x>".into());
        assert_eq!(after[0], first);
        assert_eq!(after[1], cancelled(2, Some(900)));
        assert_eq!(after[2], (3, "sent".into(), 500, None, None, None));
        assert_eq!(
            after[3],
            (4, "cancelled".into(), 500, Some(950), Some(950), None)
        );
        assert_eq!(after[4], (5, "queued".into(), 500, None, None, None));
        let why: Vec<(Option<String>,)> =
            fetch!(&raw, "SELECT last_error FROM outbox WHERE id = 1");
        assert_eq!(why[0].0.as_deref(), Some("cancelled by the operator"));
    }
}
