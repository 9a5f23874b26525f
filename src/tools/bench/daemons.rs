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
use crate::clock::Clock;
use crate::engine::schedule;
use crate::ingest::csv::import_file;
use chrono::{DateTime, TimeDelta, Utc};
use std::path::Path;
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

    let mut fleet = Fleet::start(&yaml, &dir, daemons).await?;
    let result = async {
        fleet.wait_start_up().await?;
        let tick = time_tick(&app, &mut fleet, n).await?;
        let send = time_send(&app, &mut fleet, n).await?;
        Ok(vec![tick, send])
    }
    .await;
    fleet.stop().await;
    result
}

/// The daemons under test, on one clock that read `t0` at `first` (the wall's).
struct Fleet {
    daemons: Vec<Daemon>,
    first: DateTime<Utc>,
    wall: Clock,
}

impl Fleet {
    /// Starts `count` daemons on one clock: each starts where the first one's has got
    /// to, as on machines whose clocks agree, so they reach each firing together.
    async fn start(yaml: &Path, dir: &Path, count: usize) -> Result<Fleet, BenchError> {
        let wall = Clock::system();
        let first = wall.now();
        let mut daemons = Vec::new();
        for i in 0..count {
            let now = t0() + (wall.now() - first);
            let name = format!("daemon-{i}");
            daemons.push(Daemon::start(yaml, dir, &name, "info", &[], now).await?);
        }
        Ok(Fleet {
            daemons,
            first,
            wall,
        })
    }

    /// The daemons' clock now.
    fn now(&self) -> DateTime<Utc> {
        t0() + (self.wall.now() - self.first)
    }

    /// Waits for each daemon's own start-up pass (they take turns at it).
    async fn wait_start_up(&mut self) -> Result<(), BenchError> {
        for d in self.daemons.iter_mut() {
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
        Ok(())
    }

    /// Fails if a daemon has stopped, or `what` has not happened by `deadline`.
    fn check(
        &mut self,
        deadline: Instant,
        what: impl FnOnce() -> String,
    ) -> Result<(), BenchError> {
        for d in self.daemons.iter_mut() {
            d.alive()?;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!("after {PATIENCE:?}: {}", what())));
        }
        Ok(())
    }

    fn watch(&self) -> Stopwatch {
        Stopwatch::of_daemons(self.daemons.iter().map(Daemon::pid))
    }

    /// How many daemons logged a part of the pass at `firing` with leads in it. Each
    /// logs its line once it sees the pass done (within a second: it looks every half
    /// second), so this waits for those lines a little.
    async fn sharing(&self, firing: DateTime<Utc>) -> usize {
        let logged = format!("evaluation pass at={firing} ");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && !self.daemons.iter().all(|d| d.log_text().contains(&logged))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.daemons
            .iter()
            .filter(|d| {
                d.log_text()
                    .lines()
                    .filter(|l| l.contains(&logged))
                    .filter_map(leads_of)
                    .any(|leads| leads > 0)
            })
            .count()
    }

    async fn stop(self) {
        for d in self.daemons {
            d.stop().await;
        }
    }
}

/// The first tick firing on the daemons' clock from now, timed from that instant until
/// the last batch of its pass is done.
async fn time_tick(app: &App, fleet: &mut Fleet, n: usize) -> Result<Row, BenchError> {
    let funnel = app.funnel();
    let (cron, tz) = (
        &funnel.config.schedule.tick,
        funnel.config.schedule.timezone.0,
    );
    let firing = schedule::next_after(cron, tz, fleet.now() + TimeDelta::seconds(1))
        .ok_or_else(|| BenchError::Setup(format!("the tick `{}` never fires", cron.source)))?;
    if let Ok(wait) = (firing - fleet.now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let watch = fleet.watch();
    let deadline = Instant::now() + PATIENCE;
    let progress = loop {
        let p = app.store.pass_progress(firing).await?;
        if p.batches > 0 && p.done == p.batches {
            break p;
        }
        fleet.check(deadline, || {
            format!("the pass at {firing} is not done: {p:?}")
        })?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cost = watch.stop();
    let sharing = fleet.sharing(firing).await;
    let daemons = fleet.daemons.len();
    Ok(shown(
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
    ))
}

/// Sending resumed, timed until every welcome is delivered, by whichever daemon holds
/// the sender lease.
async fn time_send(app: &App, fleet: &mut Fleet, n: usize) -> Result<Row, BenchError> {
    let watch = fleet.watch();
    app.store.set_paused(None, false).await?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = app.store.outbox_counts().await?;
        let count = |states: &[&str]| {
            counts
                .iter()
                .filter(|(s, _)| states.contains(&s.as_str()))
                .map(|(_, c)| *c as usize)
                .sum::<usize>()
        };
        let sent = count(&["sent"]);
        if count(&["queued", "retry", "sending", "held"]) == 0 {
            expect("daemons: send", sent == n, || {
                format!("{sent} of {n} sent ({counts:?})")
            })?;
            break;
        }
        fleet.check(deadline, || {
            format!("{sent} of {n} emails sent: {counts:?}")
        })?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cost = watch.stop();
    let daemons = fleet.daemons.len();
    Ok(shown(
        Row::new(
            format!("PostgreSQL send, {daemons} daemon(s)"),
            n,
            "emails",
            cost,
        )
        .on(Section::Postgres)
        .note("one daemon at a time holds the sender lease"),
    ))
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
