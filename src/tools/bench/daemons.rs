//! Several `embudo run` processes on one PostgreSQL database, as on several machines:
//! a tick's pass shared by one and by three daemons over leads with a year of events
//! each (`--events-per-lead`, as the pipeline's passes), and the delivery of every lead's
//! welcome to an SMTP sink with one and with three daemons running. Each count of
//! daemons gets a database of its own on the server given with `--postgres`.
//!
//! The daemons' clock starts at the bench's instant (`run --now`; each later daemon
//! where the first one's has got to) and runs with the wall, so their tick fires at
//! instants the bench can compute, for all of them at once: the measured pass is
//! the first firing after every daemon's start-up pass, and it is timed from that
//! firing until the last of its batches is done.

use super::daemon::Daemon;
use super::measure::Stopwatch;
use super::setup::{self, Limits};
use super::table::Section;
use super::{BenchError, Options, Row, SEED, data, expect, sending, shown, t0};
use crate::app::App;
use crate::engine::schedule;
use crate::ingest::csv::import_file;
use chrono::TimeDelta;
use std::time::{Duration, Instant};

/// How often the daemons' tick fires (`schedule.tick`): often enough that the bench
/// waits little for a firing, seldom enough that a pass ends before the next (the
/// quick run's passes are short).
const TICK: &str = "*/20 * * * * *";
const QUICK_TICK: &str = "*/4 * * * * *";
/// How long any wait of the bench lasts before it says what it was waiting for.
const PATIENCE: Duration = Duration::from_secs(600);

pub async fn run(opts: &Options) -> Result<Vec<Row>, BenchError> {
    let Some(server) = &opts.postgres else {
        eprintln!("  daemons: no PostgreSQL server given (--postgres URL); skipped");
        return Ok(Vec::new());
    };
    let Some((_sink, addr)) = sending::target(opts, "daemons")? else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for daemons in [1, 3] {
        rows.extend(with_daemons(opts, server, &addr, daemons).await?);
    }
    Ok(rows)
}

/// The tick and the sending with `daemons` daemons on a fresh database.
async fn with_daemons(
    opts: &Options,
    server: &str,
    smtp: &str,
    daemons: usize,
) -> Result<Vec<Row>, BenchError> {
    let n = opts.daemon_leads;
    let dir = opts.work.join(format!("daemons-{daemons}"));
    let yaml = setup::funnel(&dir, &format!("smtp://{smtp}?tls=none"), Limits::Unbounded)?;
    let database =
        crate::store::recreate_database(server, &format!("embudo_bench_{daemons}")).await?;
    setup::edit(
        &yaml,
        &[
            (
                "tick: \"0 0 3 1 1 *\"",
                format!("tick: \"{}\"", if opts.quick { QUICK_TICK } else { TICK }),
            ),
            (
                "database: sqlite://embudo.db",
                format!("database: \"{database}\""),
            ),
        ],
    )?;
    // Every lead imported with its year of events (as in the pipeline's passes) and its
    // welcome queued, with sending paused: the daemons start to find the work of a
    // steady tick and a delivery waiting.
    let app = setup::app_with_leads(&dir, &yaml, n).await?;
    let events = dir.join("events.csv");
    let n_events = n * opts.events_per_lead;
    data::write_events(
        &events,
        n_events,
        n,
        t0() - TimeDelta::minutes(1),
        TimeDelta::days(365),
        SEED + 1,
    )
    .map_err(|e| BenchError::io("write events.csv", e))?;
    let imported = import_file(&app.store, &app.funnel().config, &events, false, t0()).await?;
    expect("daemons: events", imported.events == n_events, || {
        format!("{} of {n_events} events stored", imported.events)
    })?;
    let first = app.evaluate(t0()).await?.map_or(0, |p| p.queued);
    expect("daemons: queue", first == n, || {
        format!("{first} of {n} welcomes queued")
    })?;
    app.store.set_paused(None, true).await?;

    // One clock for all: each daemon's starts where the first one's has got to, as
    // on machines whose clocks agree, so they reach each firing together.
    let mut running = Vec::new();
    let first = chrono::Utc::now();
    for i in 0..daemons {
        let name = format!("daemon-{i}");
        let now = t0() + (chrono::Utc::now() - first);
        running.push(Daemon::start(&yaml, &dir, &name, "info", &[], now).await?);
    }
    let result = measure(&app, &mut running, first, n, daemons).await;
    for d in running {
        d.stop().await;
    }
    result
}

/// The tick and the sending, with the daemons `running` on a clock that read `t0` at
/// `first`.
async fn measure(
    app: &App,
    running: &mut [Daemon],
    first: chrono::DateTime<chrono::Utc>,
    n: usize,
    daemons: usize,
) -> Result<Vec<Row>, BenchError> {
    // Each daemon's own start-up pass (they take turns at it) comes first.
    for d in running.iter_mut() {
        let deadline = Instant::now() + PATIENCE;
        while !d.log_text().contains("evaluation pass") {
            d.alive()?;
            if Instant::now() > deadline {
                return Err(BenchError::Setup(format!(
                    "no start-up pass in {} after {PATIENCE:?}",
                    d.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut rows = Vec::new();

    // The next firing on the daemons' clock.
    let funnel = app.funnel();
    let (cron, tz) = (
        &funnel.config.schedule.tick,
        funnel.config.schedule.timezone.0,
    );
    let clock_now = t0() + (chrono::Utc::now() - first);
    let firing = schedule::next_after(cron, tz, clock_now + chrono::TimeDelta::seconds(1))
        .ok_or_else(|| BenchError::Setup(format!("the tick `{}` never fires", cron.source)))?;
    let wall = first + (firing - t0());
    if let Ok(wait) = (wall - chrono::Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let watch = Stopwatch::of_daemons(running.iter().map(Daemon::pid));
    let deadline = Instant::now() + PATIENCE;
    let progress = loop {
        let p = app.store.pass_progress(firing).await?;
        if p.batches > 0 && p.done == p.batches {
            break p;
        }
        for d in running.iter_mut() {
            d.alive()?;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "the pass at {firing} is not done after {PATIENCE:?}: {p:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cost = watch.stop();
    // The daemons that evaluated a part of it, from the line each logs for it once it
    // sees the pass done (within a second: it looks every half second).
    let logged = format!("evaluation pass at={firing} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !running.iter().all(|d| d.log_text().contains(&logged)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sharing = running
        .iter()
        .filter(|d| {
            d.log_text()
                .lines()
                .filter(|l| l.contains(&logged))
                .filter_map(leads_of)
                .any(|leads| leads > 0)
        })
        .count();
    rows.push(shown(
        Row::new(
            format!("PostgreSQL tick, {daemons} daemon(s)"),
            n,
            "leads",
            cost,
        )
        .on(Section::Postgres)
        .note(format!(
            "steady pass in {} batches, evaluated by {sharing} daemon(s)",
            progress.batches
        )),
    ));

    // Sending resumed: every welcome delivered, by whichever daemon holds the sender
    // lease.
    let watch = Stopwatch::of_daemons(running.iter().map(Daemon::pid));
    app.store.set_paused(None, false).await?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = app.store.outbox_counts().await?;
        let count = |state: &str| {
            counts
                .iter()
                .filter(|(s, _)| s == state)
                .map(|(_, c)| *c as usize)
                .sum::<usize>()
        };
        let (sent, waiting) = (
            count("sent"),
            count("queued") + count("retry") + count("sending") + count("held"),
        );
        if waiting == 0 {
            expect("daemons: send", sent == n, || {
                format!("{sent} of {n} sent ({counts:?})")
            })?;
            break;
        }
        for d in running.iter_mut() {
            d.alive()?;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "{sent} of {n} emails sent after {PATIENCE:?}: {counts:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cost = watch.stop();
    rows.push(shown(
        Row::new(
            format!("PostgreSQL send, {daemons} daemon(s)"),
            n,
            "emails",
            cost,
        )
        .on(Section::Postgres)
        .note("one daemon at a time holds the sender lease"),
    ));
    Ok(rows)
}

/// The leads of a logged evaluation pass.
fn leads_of(line: &str) -> Option<usize> {
    line.split(" leads=")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}
