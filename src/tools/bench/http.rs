//! `POST /events` against a real daemon (this binary's `run`, on its own funnel), from
//! a few keep-alive connections: in batches of 100 events a request, and one event a
//! request. Each event runs its lead's rules, as in production. Sending is paused
//! (`embudo pause`), so what is measured is ingest, not the sender beside it.

use super::client::{Conn, TOKEN};
use super::daemon::Daemon;
use super::data::{Rng, email};
use super::measure::Stopwatch;
use super::setup::{self, Limits};
use super::{BenchError, Options, Row, SEED, Target, expect, shown, t0};
use std::path::Path;

/// Events a request.
const BATCH: usize = 100;
const CONNECTIONS: usize = 4;
/// The target: ten thousand events a second, in batches of 100.
const RATE: f64 = 10_000.0;

pub async fn run(opts: &Options) -> Result<Vec<Row>, BenchError> {
    let dir = opts.work.join("http");
    let yaml = setup::funnel(&dir, "file://./outbox-mail", Limits::Demo)?;
    prepare(&dir, &yaml, opts.http_leads).await?;
    let token = [("EMBUDO_API_TOKEN", TOKEN)];
    let daemon = Daemon::start(&yaml, &dir, "daemon", "warn", &token, t0()).await?;
    let mut rows = Vec::new();

    let per_conn = opts.http_events / BATCH / CONNECTIONS;
    let total = per_conn * BATCH * CONNECTIONS;
    let watch = Stopwatch::of(daemon.pid());
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (port, leads) = (daemon.port, opts.http_leads);
        tasks.spawn(async move { post_all(port, per_conn, BATCH, leads, c as u64).await });
    }
    let mut recorded = 0;
    while let Some(done) = tasks.join_next().await {
        recorded += done.map_err(|e| BenchError::Setup(format!("a client task failed: {e}")))??;
    }
    let s = "HTTP POST /events, 100 a request";
    expect(s, recorded == total, || {
        format!("{recorded} of {total} events recorded")
    })?;
    let note = format!("{CONNECTIONS} connections; each event runs its lead's rules");
    rows.push(shown(
        Row::new(s, total, "events", watch.stop())
            .target(Target::Rate(RATE))
            .note(note),
    ));

    let watch = Stopwatch::of(daemon.pid());
    let recorded = post_all(daemon.port, opts.http_single, 1, opts.http_leads, 99).await?;
    let s = "HTTP POST /events, 1 a request";
    expect(s, recorded == opts.http_single, || {
        format!("{recorded} of {} recorded", opts.http_single)
    })?;
    rows.push(shown(
        Row::new(s, recorded, "events", watch.stop())
            .note("1 connection, one request after another"),
    ));
    daemon.stop().await;
    Ok(rows)
}

/// The funnel's leads, their first pass done and sending paused, before the daemon starts.
async fn prepare(dir: &Path, yaml: &Path, leads: usize) -> Result<(), BenchError> {
    let app = setup::app_with_leads(dir, yaml, leads).await?;
    app.evaluate(t0()).await?;
    app.store.set_paused(None, true).await?;
    Ok(())
}

/// Posts `requests` requests of `batch` page views each, over one connection; returns
/// the events the daemon says it recorded.
async fn post_all(
    port: u16,
    requests: usize,
    batch: usize,
    leads: usize,
    seed: u64,
) -> Result<usize, BenchError> {
    let mut rng = Rng::new(SEED ^ seed);
    let mut conn = Conn::open(port).await?;
    let mut recorded = 0;
    for _ in 0..requests {
        let events: Vec<serde_json::Value> = (0..batch)
            .map(|_| {
                let lead = email(rng.below(leads as u64) as usize);
                serde_json::json!({ "lead": lead, "kind": "page_view", "props": { "url": "/p/1" } })
            })
            .collect();
        let body = serde_json::Value::Array(events).to_string();
        let (status, answer) = conn.send("POST", "/events", &body).await?;
        if status != 200 {
            return Err(BenchError::Wrong {
                scenario: "HTTP POST /events".into(),
                message: format!("answered {status}: {answer}"),
            });
        }
        let json: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        recorded += json["recorded"].as_u64().unwrap_or(0) as usize;
    }
    Ok(recorded)
}
