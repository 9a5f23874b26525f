//! The leads concern through the [`Store`] interface, on every backend the machine
//! offers ([`stores`]): a batch upserts as its rows would one by one (the same leads,
//! tags, attributes and stage history, whatever repeats of an address or stored leads
//! it holds), look-ups, page loads and the commit of a page of changes.

use crate::domain::{
    EmailAddress, Event, Lead, LeadChanges, LeadId, NewSend, StageId, TemplateName, Value,
};
use crate::store::testing::stores;
use crate::store::{HistoryEntry, LeadUpsert, Store, UpsertResult};
use chrono::{DateTime, Duration, TimeZone, Utc};

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
    for s in stores().await {
        an_address_twice_in_one_batch_is_created_then_updated_on(&s).await;
    }
}

async fn an_address_twice_in_one_batch_is_created_then_updated_on(s: &Store) {
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
    let (ana, h) = lead(s, "ana@example.com").await;
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
    let (bob, h) = lead(s, "bob@example.com").await;
    assert_eq!((bob.stage.as_str(), h.len()), ("evaluation", 1));
}

#[tokio::test]
async fn a_stored_lead_in_a_big_batch_is_updated_and_moves_only_when_asked() {
    for s in stores().await {
        a_stored_lead_in_a_big_batch_is_updated_and_moves_only_when_asked_on(&s).await;
    }
}

async fn a_stored_lead_in_a_big_batch_is_updated_and_moves_only_when_asked_on(s: &Store) {
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
    let (old, h) = lead(s, "old@example.com").await;
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
    let (old, h) = lead(s, "old@example.com").await;
    assert_eq!(old.stage.as_str(), "evaluation");
    assert_eq!(
        moves(&h)[1..],
        [
            (Some("evaluation"), "customer", "import --update-stage"),
            (Some("customer"), "evaluation", "import --update-stage")
        ]
    );
    assert_eq!(lead(s, "n7@example.com").await.1.len(), 1);
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
    for (batched, single) in stores().await.into_iter().zip(stores().await) {
        batch_against_single(&rows, &batched, &single).await;
    }
}

async fn batch_against_single(rows: &[LeadUpsert], batched: &Store, single: &Store) {
    for s in [batched, single] {
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
            lead(batched, &email).await,
            lead(single, &email).await,
            "{email} on {}",
            batched.engine()
        );
    }
}

#[tokio::test]
async fn events_with_an_id_seen_before_or_earlier_in_the_batch_are_duplicates() {
    for s in stores().await {
        events_with_an_id_seen_before_or_earlier_in_the_batch_are_duplicates_on(&s).await;
    }
}

async fn events_with_an_id_seen_before_or_earlier_in_the_batch_are_duplicates_on(s: &Store) {
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

fn tagged(email: &str) -> LeadUpsert {
    LeadUpsert {
        email: EmailAddress::parse(email).unwrap(),
        name: None,
        stage: None,
        tags: vec!["old".into(), "kept".into()],
        locale: None,
        timezone: None,
        created_at: None,
        attrs: [
            ("gone".to_string(), Value::Int(1)),
            ("same".to_string(), Value::Int(2)),
        ]
        .into_iter()
        .collect(),
    }
}

fn send(template: &str, key: &str, stage: &StageId) -> NewSend {
    NewSend {
        template: TemplateName::parse(template).unwrap(),
        key: key.into(),
        stage: stage.clone(),
        rule: "10_r".into(),
    }
}

#[tokio::test]
async fn a_page_of_changes_is_written_table_by_table_as_each_lead_made_them() {
    for store in stores().await {
        a_page_of_changes_is_written_on(&store).await;
    }
}

async fn a_page_of_changes_is_written_on(store: &Store) {
    let t: DateTime<Utc> = "2026-03-02T10:00:00Z".parse().unwrap();
    let interest = StageId::parse("interest").unwrap();
    let rows = [tagged("a@x.es"), tagged("b@x.es"), tagged("c@x.es")];
    let ids: Vec<LeadId> = store
        .upsert_leads(&rows, &interest, false, t - Duration::days(1))
        .await
        .unwrap()
        .iter()
        .map(|r| r.id())
        .collect();
    let loaded = store.load_leads(&ids, t).await.unwrap();
    assert_eq!(loaded.iter().map(|l| l.lead.id).collect::<Vec<_>>(), ids);

    // Lead a moves twice, swaps a tag and an attribute, and asks for two sends, one
    // of them twice; lead b only asks for a send; lead c is left alone.
    let evaluation = StageId::parse("evaluation").unwrap();
    let customer = StageId::parse("customer").unwrap();
    let mut a = loaded[0].lead.clone();
    a.stage = customer.clone();
    a.stage_entered_at = t;
    a.tags.remove("old");
    a.tags.insert("new".into());
    a.attrs.remove("gone");
    a.attrs.insert("score".into(), Value::Int(7));
    let changes = [
        LeadChanges {
            before: loaded[0].lead.clone(),
            after: a,
            moves: vec![
                (interest.clone(), evaluation.clone(), "rule:10_r".into()),
                (evaluation.clone(), customer.clone(), "rule:20_r".into()),
            ],
            sends: vec![
                send("edu-welcome", "", &interest),
                send("edu-welcome", "", &interest),
                send("eval-comparison", "k", &customer),
            ],
        },
        LeadChanges {
            before: loaded[1].lead.clone(),
            after: loaded[1].lead.clone(),
            moves: vec![],
            sends: vec![send("edu-welcome", "", &interest)],
        },
    ];
    assert_eq!(
        store.apply_all(&changes, t).await.unwrap(),
        3,
        "a repeated key inserts once"
    );
    assert_eq!(
        store.apply_all(&changes[1..], t).await.unwrap(),
        0,
        "already asked for"
    );

    let after = store.load_leads(&ids, t).await.unwrap();
    let a = &after[0];
    assert_eq!(
        (a.lead.stage.as_str(), a.lead.stage_entered_at),
        ("customer", t)
    );
    assert_eq!(a.lead.tags.iter().collect::<Vec<_>>(), ["kept", "new"]);
    let attrs: Vec<_> = a
        .lead
        .attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(attrs, [("same", Value::Int(2)), ("score", Value::Int(7))]);
    let sent: Vec<_> = a
        .sends
        .iter()
        .map(|s| (s.template.as_str(), s.key.as_str()))
        .collect();
    assert_eq!(sent, [("edu-welcome", ""), ("eval-comparison", "k")]);
    let history: Vec<_> = store
        .stage_history(ids[0])
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.to, h.cause))
        .collect();
    assert_eq!(
        history,
        [
            (interest.clone(), "import".to_string()),
            (evaluation, "rule:10_r".into()),
            (customer, "rule:20_r".into())
        ]
    );
    assert_eq!(after[1].sends.len(), 1);
    assert_eq!(after[1].lead, loaded[1].lead);
    assert!(after[2].sends.is_empty());
    assert_eq!(after[2].lead, loaded[2].lead);
}

/// Events of `kind` at each of `minutes` after `t0`.
fn events(lead: LeadId, kind: &str, t0: DateTime<Utc>, minutes: &[i64]) -> Vec<(LeadId, Event)> {
    minutes
        .iter()
        .map(|m| {
            let props = [("m".to_string(), Value::Int(*m))].into_iter().collect();
            let e = Event {
                kind: kind.into(),
                at: t0 + Duration::minutes(*m),
                props,
            };
            (lead, e)
        })
        .collect()
}

/// What a loaded lead holds, comparable across backends.
type Loaded = (
    Lead,
    Vec<Event>,
    Vec<(String, crate::domain::OlderEvents)>,
    Vec<crate::domain::SendRecord>,
);

fn comparable(l: crate::domain::LoadedLead) -> Loaded {
    let mut older: Vec<_> = l.older.into_iter().collect();
    older.sort_by(|a, b| a.0.cmp(&b.0));
    (l.lead, l.events, older, l.sends)
}

/// Five leads with tags and attributes; the first with more views than a page keeps,
/// a click, an event after `now` and a send; the third with a send after `now`.
async fn history(s: &Store, now: DateTime<Utc>) -> Vec<LeadId> {
    let rows: Vec<LeadUpsert> = (0..5)
        .map(|i| {
            row(
                &format!("h{i}@example.com"),
                None,
                None,
                &["t"],
                &[("n", "1")],
            )
        })
        .collect();
    let r = s
        .upsert_leads(&rows, &stage("interest"), false, now - Duration::days(30))
        .await
        .unwrap();
    let ids: Vec<LeadId> = r.iter().map(|r| r.id()).collect();
    let t0 = now - Duration::days(20);
    let views: Vec<i64> = (0..crate::domain::EVENTS_PER_KIND + 3).rev().collect();
    let mut evs = events(ids[0], "view", t0, &views);
    evs.extend(events(ids[0], "click", t0, &[5, 5]));
    evs.extend(events(ids[0], "view", now, &[1]));
    evs.extend(events(ids[1], "click", t0, &[7]));
    assert_eq!(s.insert_events(&evs, now).await.unwrap(), evs.len());
    let lead = |i: usize| s.load_lead(ids[i], now);
    let (a, c) = (
        lead(0).await.unwrap().unwrap(),
        lead(2).await.unwrap().unwrap(),
    );
    let change = |l: &Lead, key: &str| LeadChanges {
        before: l.clone(),
        after: l.clone(),
        moves: vec![],
        sends: vec![send("edu-welcome", key, &l.stage)],
    };
    s.apply_all(&[change(&a.lead, "")], now - Duration::days(1))
        .await
        .unwrap();
    s.apply_all(&[change(&c.lead, "later")], now + Duration::days(1))
        .await
        .unwrap();
    ids
}

#[tokio::test]
async fn pages_load_the_history_up_to_now_and_every_backend_loads_the_same() {
    let now = now();
    let mut seen: Vec<(&str, Vec<Loaded>)> = Vec::new();
    for s in stores().await {
        let ids = history(&s, now).await;
        let first = s.load_page(0, 2, now).await.unwrap();
        let rest = s.load_page(ids[1].0, 10, now).await.unwrap();
        assert_eq!(first.len() + rest.len(), 5);
        assert!(s.load_page(ids[4].0, 10, now).await.unwrap().is_empty());
        let paged: Vec<Loaded> = first.into_iter().chain(rest).map(comparable).collect();
        let mut wanted = vec![ids[3], ids[0], ids[3], LeadId(999_999), ids[1]];
        wanted.extend([ids[2], ids[4]]);
        let listed = s.load_leads(&wanted, now).await.unwrap();
        let listed: Vec<Loaded> = listed.into_iter().map(comparable).collect();
        assert_eq!(paged, listed, "a page and a list load alike");
        let one = s.load_lead(ids[0], now).await.unwrap().unwrap();
        assert_eq!(comparable(one), paged[0]);
        assert!(s.load_lead(LeadId(999_999), now).await.unwrap().is_none());

        let (lead, evs, older, sends) = &paged[0];
        assert_eq!(lead.tags.iter().collect::<Vec<_>>(), ["t"]);
        assert_eq!(lead.attrs.get("n"), Some(&Value::Int(1)));
        let views = evs.iter().filter(|e| e.kind == "view").count();
        assert_eq!(views as i64, crate::domain::EVENTS_PER_KIND);
        assert!(evs.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
        assert!(evs.iter().all(|e| e.at <= now));
        let first_at = now - Duration::days(20);
        assert_eq!(older.len(), 1);
        assert_eq!((older[0].1.count, older[0].1.first_at), (3, first_at));
        assert_eq!(sends.len(), 1);
        assert!(paged[2].3.is_empty(), "a send after now is not loaded");
        assert_eq!(paged[1].1.len(), 1);
        seen.push((s.engine(), paged));
    }
    for w in seen.windows(2) {
        assert_eq!(w[0].1, w[1].1, "{} and {}", w[0].0, w[1].0);
    }
}

#[tokio::test]
async fn leads_are_found_by_id_or_address_and_stages_counted() {
    for s in stores().await {
        let rows = [
            row("a@example.com", None, Some("customer"), &[], &[]),
            row("b@example.com", None, None, &[], &[]),
            row("c@example.com", None, Some("Evaluation_2"), &[], &[]),
        ];
        let r = s
            .upsert_leads(&rows, &stage("interest"), false, now())
            .await
            .unwrap();
        let (a, b) = (r[0].id(), r[1].id());
        assert_eq!(s.lead_count().await.unwrap(), 3);
        assert_eq!(s.find_lead_id(&a.0.to_string()).await.unwrap(), Some(a));
        assert_eq!(s.find_lead_id(" B@example.com").await.unwrap(), Some(b));
        assert_eq!(s.find_lead_id("999999").await.unwrap(), None);
        assert_eq!(s.find_lead_id("not an address").await.unwrap(), None);
        let who: Vec<String> = [
            &b.0.to_string(),
            "nobody@example.com",
            "??",
            "a@example.com",
        ]
        .iter()
        .map(|w| w.to_string())
        .chain([" 424242 ".to_string()])
        .collect();
        let found = s.find_lead_ids(&who).await.unwrap();
        assert_eq!(found, [Some(b), None, None, Some(a), None]);
        assert_eq!(s.find_lead_ids(&[]).await.unwrap(), []);
        let in_use = s.stages_in_use().await.unwrap();
        let want = [("Evaluation_2", 1), ("customer", 1), ("interest", 1)];
        let want: Vec<(String, i64)> = want.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        assert_eq!(in_use, want, "{}: by bytes, as SQLite orders", s.engine());
    }
}
