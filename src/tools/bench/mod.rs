//! `embudo bench`: the product's throughput on this machine, measured the way a user
//! would meet it: the demo funnel, SQLite on disk, deterministic data (leads over 40
//! time zones, a year of events), and each scenario's time, throughput, CPU and peak
//! memory against the targets the project holds itself to. `--quick` runs every
//! scenario at small sizes and checks only that the counts are right (CI); the full
//! run is for a person, on a release build, and writes BENCHMARKS.md.

mod client;
mod daemon;
mod daemons;
mod data;
mod http;
mod measure;
mod pipeline;
mod sending;
mod setup;
mod simulation;
mod table;

pub use table::{Row, Section, Target};

use crate::app::AppError;
use crate::ingest::csv::ImportError;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// The instant every scenario's clock is held at (a Monday, 11:00 in Madrid).
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_445_600, 0).expect("a valid instant")
}

/// The data's seed: the same leads and events on every run.
const SEED: u64 = 0x656d_6275_646f;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("setting up the bench: {0}")]
    Setup(String),
    /// A scenario did other work than it should: its numbers would mean nothing.
    #[error("{scenario}: {message}")]
    Wrong { scenario: String, message: String },
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Fails the scenario unless `ok`: a bench that measured the wrong work says so.
fn expect(scenario: &str, ok: bool, message: impl FnOnce() -> String) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Wrong {
            scenario: scenario.into(),
            message: message(),
        })
    }
}

/// The bench's parts, each a group of scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Import leads and events, the first and the steady pass, the first tick's
    /// delivery under the demo's limits, and `report`, at each `--leads` size.
    Pipeline,
    /// `POST /events` to a running daemon, in batches of 100 and one a request.
    Http,
    /// Delivery to Postfix's smtp-sink, against smtp-source's ceiling on that sink.
    Send,
    /// `simulate` a year at a 1-hour step.
    Simulate,
    /// One and three `embudo run` on one PostgreSQL database (`--postgres`): a shared
    /// tick's pass, and the delivery of every lead's welcome.
    Daemons,
}

/// What to measure and how big.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub parts: Vec<Part>,
    /// Leads of each pipeline run (two sizes show whether the cost is linear).
    pub leads: Vec<usize>,
    pub events_per_lead: usize,
    pub http_leads: usize,
    pub http_events: usize,
    pub http_single: usize,
    pub sends: usize,
    /// Send to this server (HOST:PORT) instead of starting smtp-sink; no ceiling then.
    pub smtp: Option<String>,
    pub sim_leads: usize,
    pub sim_days: i64,
    /// The PostgreSQL server of the daemons' scenarios (`postgres://user@host:port`):
    /// a database `embudo_bench_N` is created on it for each count of daemons.
    pub postgres: Option<String>,
    /// Leads of the daemons' scenarios.
    pub daemon_leads: usize,
    /// Where the data goes.
    pub work: PathBuf,
}

impl Options {
    /// The sizes: a million leads (and 100,000 for the linearity check), ten
    /// million events, a year of 10,000 leads simulated.
    pub fn full(work: PathBuf) -> Options {
        Options {
            quick: false,
            parts: vec![
                Part::Pipeline,
                Part::Http,
                Part::Send,
                Part::Simulate,
                Part::Daemons,
            ],
            leads: vec![100_000, 1_000_000],
            events_per_lead: 10,
            http_leads: 10_000,
            http_events: 100_000,
            http_single: 5_000,
            sends: 50_000,
            smtp: None,
            sim_leads: 10_000,
            sim_days: 365,
            postgres: None,
            daemon_leads: 100_000,
            work,
        }
    }

    /// Every scenario, small: checks the bench runs and its counts are right.
    pub fn quick(work: PathBuf) -> Options {
        Options {
            quick: true,
            leads: vec![2_000],
            events_per_lead: 5,
            http_leads: 200,
            http_events: 1_000,
            http_single: 50,
            sends: 300,
            sim_leads: 100,
            sim_days: 3,
            daemon_leads: 2_000,
            ..Options::full(work)
        }
    }
}

/// Runs the parts asked for; each row is also printed to stderr as it is measured.
pub async fn run(opts: &Options) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for part in &opts.parts {
        let got = match part {
            Part::Pipeline => pipeline::run(opts).await?,
            Part::Http => http::run(opts).await?,
            Part::Send => sending::run(opts).await?,
            Part::Simulate => simulation::run(opts).await?,
            Part::Daemons => daemons::run(opts).await?,
        };
        rows.extend(got);
    }
    Ok(rows)
}

/// Prints a row as soon as it is measured: a full run takes many minutes.
fn shown(row: Row) -> Row {
    eprintln!(
        "  {:<48} {:>12} {:>8.2} s {:>10}/s",
        row.scenario,
        format!("{} {}", row.units, row.unit),
        row.cost.wall.as_secs_f64(),
        table::si(row.rate())
    );
    row
}

/// What BENCHMARKS.md holds of `section`: how the run was made, then the table of its
/// rows; `None` when the run measured nothing of it.
pub fn report(
    rows: &[Row],
    section: Section,
    command: &str,
    at: DateTime<Utc>,
    work: &std::path::Path,
) -> Option<String> {
    let rows: Vec<Row> = rows
        .iter()
        .filter(|r| r.section == section)
        .cloned()
        .collect();
    if rows.is_empty() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let build = if cfg!(debug_assertions) {
        "**debug build: these numbers say nothing about speed**"
    } else {
        "release build"
    };
    let store = match section {
        Section::Sqlite => format!("SQLite on disk under {}", work.display()),
        Section::Postgres => "PostgreSQL on this machine (the server given with --postgres; \
            its CPU is not in the CPU column, which counts the daemons')"
            .to_string(),
    };
    Some(format!(
        "Run {} with `{command}`: {build}, embudo {}, {cores} cores ({cpu}), {store}.\n\n{}",
        at.format("%Y-%m-%d %H:%M UTC"),
        env!("CARGO_PKG_VERSION"),
        table::markdown(&rows)
    ))
}

pub use table::write_into;
