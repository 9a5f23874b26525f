//! Throughput of the nurture loop's hot paths on the demo funnel, with SQLite on disk:
//! importing leads, a pass where every lead changes (the first welcome), and a pass
//! where none does (the steady state of a daemon).
//!
//!     cargo bench --bench tick -- [LEADS]       (default 100000)

use chrono::{DateTime, TimeDelta, Utc};
use embudo::domain::{EmailAddress, Value};
use embudo::funnel::Funnel;
use embudo::store::{LeadUpsert, Store};
use std::sync::Arc;
use std::time::Instant;

fn rate(n: usize, secs: f64) -> String {
    format!("{n} leads in {secs:.2} s = {:.0} leads/s", n as f64 / secs)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    embudo::funnel::scaffold::init(dir.path(), false).unwrap();
    let funnel =
        Arc::new(Funnel::load(&dir.path().join("embudo.yaml"), chrono::Utc::now()).unwrap());
    let store = Store::open_and_migrate(&funnel.config.database)
        .await
        .unwrap();
    let t0: DateTime<Utc> = "2026-03-02T10:00:00Z".parse().unwrap();

    let started = Instant::now();
    let initial = funnel.config.stages.initial().clone();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<LeadUpsert> = chunk
            .iter()
            .map(|i| LeadUpsert {
                email: EmailAddress::parse(&format!("lead{i}@example.com")).unwrap(),
                name: Some(format!("Lead {i}")),
                stage: None,
                tags: vec!["school".into()],
                locale: Some(if i % 3 == 0 { "en" } else { "es" }.into()),
                timezone: None,
                created_at: None,
                attrs: [("segment".to_string(), Value::Str("familia".into()))]
                    .into_iter()
                    .collect(),
            })
            .collect();
        store
            .upsert_leads(&rows, &initial, false, t0 - TimeDelta::hours(1))
            .await
            .unwrap();
    }
    println!(
        "import:           {}",
        rate(n, started.elapsed().as_secs_f64())
    );

    let started = Instant::now();
    let r = embudo::engine::pass::evaluate_all(&store, &funnel, t0)
        .await
        .unwrap();
    // On a loaded machine a rule can overrun its wall-clock time budget: that lead is
    // skipped (and counted), as the daemon would skip it until its next pass.
    let skipped: usize = r.errors.values().map(|(_, leads, _)| leads).sum();
    assert_eq!(r.queued + skipped, n, "{:?}", r.errors.keys());
    println!(
        "pass, all change: {} ({} emails queued, {skipped} leads skipped by rule errors)",
        rate(n, started.elapsed().as_secs_f64()),
        r.queued
    );

    let started = Instant::now();
    let r = embudo::engine::pass::evaluate_all(&store, &funnel, t0 + TimeDelta::days(1))
        .await
        .unwrap();
    assert!(r.changed <= skipped, "only leads skipped before change");
    println!(
        "pass, none change: {} ({} leads changed, skipped by the first pass)",
        rate(n, started.elapsed().as_secs_f64()),
        r.changed
    );
}
