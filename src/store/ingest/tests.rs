//! Events and idempotency keys through the [`Store`] interface, on every backend the
//! machine offers ([`stores`]).

use crate::domain::{EmailAddress, Event, LeadId, StageId, Value};
use crate::store::testing::stores;
use crate::store::{IDEMPOTENCY_TTL, IdempotencyKey, LeadUpsert, Recorded, Replay, Store};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn lead(email: &str) -> LeadUpsert {
    LeadUpsert {
        email: EmailAddress::parse(email).unwrap(),
        name: None,
        stage: None,
        tags: vec![],
        locale: None,
        timezone: None,
        created_at: None,
        attrs: Default::default(),
    }
}

fn key(hash: &str) -> IdempotencyKey {
    IdempotencyKey {
        endpoint: "/v1/leads".into(),
        key: "k1".into(),
        hash: hash.into(),
    }
}

fn interest() -> StageId {
    StageId::parse("interest").unwrap()
}

/// Ids of the leads answered, as the API's answer text.
fn ids_text(r: &[crate::store::UpsertResult]) -> String {
    let ids: Vec<String> = r.iter().map(|r| r.id().0.to_string()).collect();
    ids.join(",")
}

async fn clicks(s: &Store, id: LeadId) -> usize {
    let l = s.load_lead(id, now() + Duration::days(1)).await.unwrap();
    l.unwrap()
        .events
        .iter()
        .filter(|e| e.kind == "click")
        .count()
}

#[tokio::test]
async fn a_tracking_hit_repeated_within_the_window_is_recorded_once() {
    for s in stores().await {
        let (a, st) = ([lead("a@example.com")], interest());
        let id = s.upsert_leads(&a, &st, false, now()).await.unwrap()[0].id();
        let props = [("url".to_string(), Value::Str("https://x.es".into()))];
        let click = |at: DateTime<Utc>| Event {
            kind: "click".into(),
            at,
            props: props.clone().into_iter().collect(),
        };
        let w = Duration::minutes(10);
        let t = now();
        assert!(s.record_tracking(id, &click(t), w, t).await.unwrap());
        let again = t + Duration::minutes(5);
        assert!(
            !s.record_tracking(id, &click(again), w, again)
                .await
                .unwrap()
        );
        let mut other = click(again);
        other
            .props
            .insert("url".into(), Value::Str("https://y.es".into()));
        assert!(s.record_tracking(id, &other, w, again).await.unwrap());
        let later = t + Duration::minutes(11);
        assert!(
            s.record_tracking(id, &click(later), w, later)
                .await
                .unwrap()
        );
        assert_eq!(clicks(&s, id).await, 3, "{}", s.engine());
    }
}

#[tokio::test]
async fn a_lead_post_with_a_key_is_replayed_not_stored_twice() {
    for s in stores().await {
        let rows = [lead("a@example.com"), lead("b@example.com")];
        let (st, kh, kx) = (interest(), key("h"), key("x"));
        let first = s
            .upsert_leads_once(&rows, &st, Some(&kh), ids_text, now())
            .await
            .unwrap();
        let text = first.unwrap();
        let later = now() + Duration::hours(1);
        let more = [lead("c@example.com")];
        let again = s.upsert_leads_once(&more, &st, Some(&kh), ids_text, later);
        let want = Replay::Same {
            status: 200,
            response: text.clone(),
        };
        assert_eq!(again.await.unwrap(), Err(want));
        let other = s.upsert_leads_once(&more, &st, Some(&kx), ids_text, later);
        assert_eq!(other.await.unwrap(), Err(Replay::Conflict));
        assert_eq!(
            s.lead_count().await.unwrap(),
            2,
            "nothing stored on a replay"
        );

        s.idempotency_update(&kh, 207, "final").await.unwrap();
        let again = s.upsert_leads_once(&more, &st, Some(&kh), ids_text, later);
        let want = Replay::Same {
            status: 207,
            response: "final".into(),
        };
        assert_eq!(again.await.unwrap(), Err(want));

        // Past the TTL the key is fresh: the work is done and the key kept anew.
        let expired = now() + IDEMPOTENCY_TTL + Duration::seconds(1);
        let fresh = s.upsert_leads_once(&more, &st, Some(&kx), ids_text, expired);
        assert!(fresh.await.unwrap().is_ok());
        assert_eq!(s.lead_count().await.unwrap(), 3);
        let no_key = s.upsert_leads_once(&more, &st, None, ids_text, expired);
        assert!(no_key.await.unwrap().is_ok(), "{}", s.engine());
    }
}

#[tokio::test]
async fn an_event_post_with_a_key_is_replayed_not_stored_twice() {
    for s in stores().await {
        let (a, st) = ([lead("a@example.com")], interest());
        let id = s.upsert_leads(&a, &st, false, now()).await.unwrap()[0].id();
        let ev = |ext: Option<&str>| {
            let e = Event {
                kind: "click".into(),
                at: now(),
                props: Default::default(),
            };
            (id, e, ext.map(str::to_string))
        };
        let batch = [ev(Some("e1")), ev(None), ev(Some("e1"))];
        let k = IdempotencyKey {
            endpoint: "/v1/events".into(),
            ..key("h")
        };
        let answer = |r: Recorded| format!("{}/{}", r.recorded, r.duplicates);
        let first = s.record_events_once(&batch, Some(&k), answer, now()).await;
        let recorded = Recorded {
            recorded: 2,
            duplicates: 1,
        };
        assert_eq!(first.unwrap(), Ok(recorded));
        let again = s.record_events_once(&batch, Some(&k), answer, now()).await;
        let want = Replay::Same {
            status: 200,
            response: "2/1".into(),
        };
        assert_eq!(again.unwrap(), Err(want));
        assert_eq!(clicks(&s, id).await, 2, "{}", s.engine());
        let unkeyed = s.record_events_once(&batch, None, answer, now()).await;
        let recorded = Recorded {
            recorded: 1,
            duplicates: 2,
        };
        assert_eq!(unkeyed.unwrap(), Ok(recorded));
    }
}
