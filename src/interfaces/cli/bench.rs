//! `embudo bench`: the throughput of this build on this machine (see BENCHMARKS.md).

use crate::app::AppError;
use crate::clock::Clock;
use crate::tools::bench::{self, BenchError, Options, Part, Section};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Every scenario at small sizes: checks the bench runs and its counts are right
    /// (CI). The numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Only these parts (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Leads of each pipeline run, e.g. 100000,1000000 (two sizes show whether the
    /// cost per lead stays flat).
    #[arg(long, value_delimiter = ',')]
    leads: Vec<usize>,
    /// Events a lead has, spread over the year before the passes.
    #[arg(long)]
    events_per_lead: Option<usize>,
    /// Send to this SMTP server (HOST:PORT, plain) instead of starting Postfix's
    /// smtp-sink; smtp-source's ceiling is then not measured.
    #[arg(long)]
    smtp: Option<String>,
    /// The PostgreSQL server of the `daemons` part (postgres://USER@HOST:PORT): a
    /// database `embudo_bench_1` and `embudo_bench_3` is (re)created on it. Without
    /// it the part is skipped. `bench/run` starts a throwaway server for it.
    #[arg(long)]
    postgres: Option<String>,
    /// Write the table into this file, between its bench markers (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the data goes (it can take several GB): default a temporary folder,
    /// removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> Result<i32, AppError> {
    let scratch = match &args.dir {
        Some(_) => None,
        None => Some(
            tempfile::tempdir().map_err(|e| AppError::Usage(format!("a temporary folder: {e}")))?,
        ),
    };
    let work = args.dir.clone().unwrap_or_else(|| {
        scratch
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default()
    });
    let mut opts = if args.quick {
        Options::quick(work.clone())
    } else {
        Options::full(work.clone())
    };
    if !args.only.is_empty() {
        opts.parts = args.only.clone();
    }
    if !args.leads.is_empty() {
        opts.leads = args.leads.clone();
    }
    if let Some(n) = args.events_per_lead {
        opts.events_per_lead = n;
    }
    opts.smtp = args.smtp.clone();
    opts.postgres = args.postgres.clone();
    let rows = match bench::run(&opts).await {
        Ok(rows) => rows,
        Err(e @ BenchError::Wrong { .. }) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let command = std::iter::once("embudo".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let at = Clock::system().now();
    for section in Section::ALL {
        let Some(text) = bench::report(&rows, section, &command, at, &work) else {
            continue;
        };
        println!("{text}");
        if let Some(out) = &args.out {
            bench::write_into(out, section, &text)
                .map_err(|e| AppError::Usage(format!("write {}: {e}", out.display())))?;
            eprintln!("wrote the table into {}", out.display());
        }
    }
    Ok(0)
}
