//! Delivery's cost per outbox row at scale: the first tick of a funnel whose every lead
//! has just queued its welcome, under the demo's limits (2,000 marketing emails a day,
//! quiet hours in each lead's zone), so a few rows go and the rest are held. The
//! mailer is the dry one (`simulate`'s), so what is measured is the round itself:
//! claiming, deciding and recording, not SMTP.
//!
//!     cargo bench --bench deliver -- [LEADS]       (default 100000)

use chrono::{DateTime, TimeDelta, Utc};
use embudo::delivery::signing::Signer;
use embudo::delivery::{Deliverer, Mailer};
use embudo::domain::EmailAddress;
use embudo::funnel::Funnel;
use embudo::store::{LeadUpsert, Store};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Zones the leads are spread over: some in their quiet hours at the bench's instant.
const ZONES: [&str; 8] = [
    "Europe/Madrid",
    "America/Mexico_City",
    "America/Bogota",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Europe/London",
    "Asia/Kolkata",
];

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
    let initial = funnel.config.stages.initial().clone();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<LeadUpsert> = chunk
            .iter()
            .map(|i| LeadUpsert {
                email: EmailAddress::parse(&format!("lead{i}@example.com")).unwrap(),
                name: Some(format!("Lead {i}")),
                stage: None,
                tags: vec![],
                locale: Some(if i % 3 == 0 { "en" } else { "es" }.into()),
                timezone: Some(ZONES[i % ZONES.len()].parse().unwrap()),
                created_at: None,
                attrs: Default::default(),
            })
            .collect();
        store
            .upsert_leads(&rows, &initial, false, t0 - TimeDelta::hours(1))
            .await
            .unwrap();
    }
    let queued = embudo::engine::pass::evaluate_all(&store, &funnel, t0)
        .await
        .unwrap()
        .queued;

    let sender = Deliverer::new(store.clone(), Mailer::Dry, Signer::new(b"bench"));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let r = sender
        .deliver_due(&funnel, || t0, &CancellationToken::new())
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map(|after| after - cpu.unwrap_or(after));
    assert_eq!(r.touched(), queued, "{r:?}");
    println!(
        "first delivery round: {queued} rows in {secs:.2} s = {:.0} rows/s ({} sent, {} held){}",
        queued as f64 / secs,
        r.sent,
        r.held,
        cpu.map(|c| format!("; CPU {c:.2} s = {:.1} µs a row", c * 1e6 / queued as f64))
            .unwrap_or_default()
    );
}

/// The process's CPU time so far (user + system, all threads), where Linux tells it: a
/// fairer measure than the wall clock on a shared machine.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
