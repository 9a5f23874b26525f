//! A lead's evaluation reads a bounded history: the most recent events of each kind,
//! with the older ones counted. A lead with thousands of events costs no more to
//! evaluate than one with a thousand, and its counts stay exact.

use chrono::{DateTime, TimeDelta, Utc};
use embudo::domain::{EmailAddress, Event, StageId, ValueMap};
use embudo::store::{EVENTS_PER_KIND, LeadUpsert, Store};

mod support;

#[tokio::test]
async fn a_lead_with_more_events_than_the_bound_loads_the_latest_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::new_database()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("h.db").display()));
    let store = Store::open_and_migrate(&url).await.unwrap();
    let now: DateTime<Utc> = "2026-03-02T10:00:00Z".parse().unwrap();
    let ids = store
        .upsert_leads(
            &[LeadUpsert {
                email: EmailAddress::parse("ana@example.com").unwrap(),
                name: None,
                stage: None,
                tags: vec![],
                locale: None,
                timezone: None,
                created_at: None,
                attrs: Default::default(),
            }],
            &StageId::parse("interest").unwrap(),
            false,
            now,
        )
        .await
        .unwrap();
    let lead = ids[0].id();
    let n = EVENTS_PER_KIND as usize + 5;
    let events: Vec<_> = (0..n)
        .map(|i| {
            (
                lead,
                Event {
                    kind: "page_view".into(),
                    at: now - TimeDelta::minutes((n - i) as i64),
                    props: ValueMap::new(),
                },
            )
        })
        .chain(std::iter::once((
            lead,
            Event {
                kind: "purchase".into(),
                at: now - TimeDelta::days(400),
                props: ValueMap::new(),
            },
        )))
        .collect();
    store.insert_events(&events, now).await.unwrap();
    let loaded = store.load_lead(lead, now).await.unwrap().unwrap();
    let views = loaded.events.iter().filter(|e| e.kind == "page_view");
    assert_eq!(views.clone().count(), EVENTS_PER_KIND as usize);
    // The latest are the ones loaded; the five oldest are counted, from the first.
    assert_eq!(
        views.clone().next_back().unwrap().at,
        now - TimeDelta::minutes(1)
    );
    let older = loaded.older["page_view"];
    assert_eq!(older.count, 5);
    assert_eq!(older.first_at, now - TimeDelta::minutes(n as i64));
    assert!(!loaded.older.contains_key("purchase"));
    assert_eq!(
        loaded
            .events
            .iter()
            .filter(|e| e.kind == "purchase")
            .count(),
        1
    );
}
