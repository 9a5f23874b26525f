//! A batch upserts as its rows would one by one: the same leads, tags, attributes and
//! stage history, whatever repeats of an address or stored leads it holds.

use crate::domain::{EmailAddress, Lead, StageId, Value};
use crate::store::{HistoryEntry, LeadUpsert, Store, UpsertResult};
use chrono::{DateTime, TimeZone, Utc};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn stage(s: &str) -> StageId {
    StageId::parse(s).unwrap()
}

fn row(
    email: &str,
    name: Option<&str>,
    to: Option<&str>,
    tags: &[&str],
    attrs: &[(&str, &str)],
) -> LeadUpsert {
    LeadUpsert {
        email: EmailAddress::parse(email).unwrap(),
        name: name.map(str::to_string),
        stage: to.map(stage),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        locale: None,
        timezone: None,
        created_at: None,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::infer(v)))
            .collect(),
    }
}

async fn store() -> Store {
    Store::open_and_migrate("sqlite::memory:").await.unwrap()
}

/// The lead of `email` and its stage history.
async fn lead(store: &Store, email: &str) -> (Lead, Vec<HistoryEntry>) {
    let id = store
        .lead_id_by_email(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let l = store.load_lead(id, now()).await.unwrap().unwrap().lead;
    (l, store.stage_history(id).await.unwrap())
}

fn moves(h: &[HistoryEntry]) -> Vec<(Option<&str>, &str, &str)> {
    h.iter()
        .map(|h| {
            (
                h.from.as_ref().map(StageId::as_str),
                h.to.as_str(),
                h.cause.as_str(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_address_twice_in_one_batch_is_created_then_updated() {
    let s = store().await;
    let rows = [
        row(
            "ana@example.com",
            Some("Ana"),
            None,
            &["a"],
            &[("n", "1"), ("x", "keep")],
        ),
        row("bob@example.com", Some("Bob"), Some("evaluation"), &[], &[]),
        row(
            "ANA@example.com",
            None,
            Some("customer"),
            &["b", "a"],
            &[("n", "2")],
        ),
    ];
    let r = s
        .upsert_leads(&rows, &stage("interest"), true, now())
        .await
        .unwrap();
    assert!(
        matches!(r[..], [UpsertResult::Created(a), UpsertResult::Created(b), UpsertResult::Updated(c)] if a == c && a != b)
    );
    let (ana, h) = lead(&s, "ana@example.com").await;
    assert_eq!(
        ana.name.as_deref(),
        Some("Ana"),
        "a row without a name keeps it"
    );
    assert_eq!(ana.stage.as_str(), "customer");
    assert_eq!(ana.tags.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        ana.attrs.get("n"),
        Some(&Value::Int(2)),
        "the later row wins"
    );
    assert_eq!(ana.attrs.get("x"), Some(&Value::Str("keep".into())));
    assert_eq!(
        moves(&h),
        [
            (None, "interest", "import"),
            (Some("interest"), "customer", "import --update-stage")
        ]
    );
    let (bob, h) = lead(&s, "bob@example.com").await;
    assert_eq!((bob.stage.as_str(), h.len()), ("evaluation", 1));
}

#[tokio::test]
async fn a_stored_lead_in_a_big_batch_is_updated_and_moves_only_when_asked() {
    let s = store().await;
    let first = [row(
        "old@example.com",
        Some("Old"),
        Some("evaluation"),
        &["t"],
        &[("a", "1")],
    )];
    s.upsert_leads(&first, &stage("interest"), false, now())
        .await
        .unwrap();
    let mut rows: Vec<LeadUpsert> = (0..3000)
        .map(|i| row(&format!("n{i}@example.com"), None, None, &["bulk"], &[]))
        .collect();
    rows.insert(
        1500,
        row(
            "old@example.com",
            None,
            Some("customer"),
            &["u"],
            &[("b", "x")],
        ),
    );
    rows.insert(
        2500,
        row("old@example.com", Some("New"), Some("evaluation"), &[], &[]),
    );
    let r = s
        .upsert_leads(&rows, &stage("interest"), false, now())
        .await
        .unwrap();
    let updated = r
        .iter()
        .filter(|r| matches!(r, UpsertResult::Updated(_)))
        .count();
    assert_eq!((r.len() - updated, updated), (3000, 2));
    let (old, h) = lead(&s, "old@example.com").await;
    assert_eq!(old.name.as_deref(), Some("New"));
    assert_eq!(
        old.stage.as_str(),
        "evaluation",
        "kept without update_stage"
    );
    assert_eq!(old.tags.iter().collect::<Vec<_>>(), ["t", "u"]);
    assert_eq!(old.attrs.len(), 2);
    assert_eq!(h.len(), 1);

    // With update_stage: two moves, recorded in order; a row in the same stage is none.
    s.upsert_leads(&rows, &stage("interest"), true, now())
        .await
        .unwrap();
    let (old, h) = lead(&s, "old@example.com").await;
    assert_eq!(old.stage.as_str(), "evaluation");
    assert_eq!(
        moves(&h)[1..],
        [
            (Some("evaluation"), "customer", "import --update-stage"),
            (Some("customer"), "evaluation", "import --update-stage")
        ]
    );
    assert_eq!(lead(&s, "n7@example.com").await.1.len(), 1);
}

/// Rows with repeated addresses, stages and overlapping tags and attributes, some of
/// them stored before: one batch gives what one row at a time gives.
#[tokio::test]
async fn a_batch_gives_what_its_rows_give_one_at_a_time() {
    let stages = [None, Some("interest"), Some("evaluation"), Some("customer")];
    let rows: Vec<LeadUpsert> = (0..400usize)
        .map(|i| {
            let email = format!("p{}@example.com", (i * 7) % 61);
            let name = (i % 3 == 0).then(|| format!("N{i}"));
            let tag = format!("t{}", i % 5);
            let v = i.to_string();
            let mut r = row(
                &email,
                name.as_deref(),
                stages[i % 4],
                &[&tag],
                &[(["a", "b"][i % 2], &v)],
            );
            r.locale = (i % 4 == 1).then(|| "es".to_string());
            r
        })
        .collect();
    let (batched, single) = (store().await, store().await);
    for s in [&batched, &single] {
        s.upsert_leads(&rows[..40], &stage("interest"), false, now())
            .await
            .unwrap();
    }
    let a = batched
        .upsert_leads(&rows[40..], &stage("interest"), true, now())
        .await
        .unwrap();
    let mut b = Vec::new();
    for r in &rows[40..] {
        b.extend(
            single
                .upsert_leads(std::slice::from_ref(r), &stage("interest"), true, now())
                .await
                .unwrap(),
        );
    }
    assert_eq!(a, b);
    for i in 0..61 {
        let email = format!("p{i}@example.com");
        assert_eq!(
            lead(&batched, &email).await,
            lead(&single, &email).await,
            "{email}"
        );
    }
}

#[tokio::test]
async fn events_with_an_id_seen_before_or_earlier_in_the_batch_are_duplicates() {
    let s = store().await;
    let r = s
        .upsert_leads(
            &[row("ana@example.com", None, None, &[], &[])],
            &stage("interest"),
            false,
            now(),
        )
        .await
        .unwrap();
    let id = r[0].id();
    let ev = |kind: &str, ext: Option<&str>| {
        let e = crate::domain::Event {
            kind: kind.into(),
            at: now(),
            props: Default::default(),
        };
        (id, e, ext.map(str::to_string))
    };
    let first = s
        .record_events(&[ev("a", Some("1")), ev("b", None)], now())
        .await
        .unwrap();
    assert_eq!((first.recorded, first.duplicates), (2, 0));
    let again = [
        ev("a", Some("1")),
        ev("c", Some("2")),
        ev("c", Some("2")),
        ev("d", None),
    ];
    let r = s.record_events(&again, now()).await.unwrap();
    assert_eq!((r.recorded, r.duplicates), (2, 2));
    let found = s
        .lead_ids_by_email(&[
            EmailAddress::parse("nobody@example.com").unwrap(),
            EmailAddress::parse("ana@example.com").unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(found, [None, Some(id)]);
}
