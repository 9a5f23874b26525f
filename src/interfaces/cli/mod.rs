//! The command line: the clap definitions and the dispatch, one file per command, each
//! calling the operations of `app` and the tools. Exit codes: 0 ok, 1 failures found,
//! 2 usage or configuration error.

mod args;
mod bench;
pub mod campaign;
mod check;
mod event;
mod explain;
mod forget;
mod import;
mod init;
mod migrate;
mod open;
pub mod outbox;
mod pause;
mod preview;
mod report;
mod run;
mod simulate;
mod test;
mod tick;
mod unsubscribe;

use crate::app::AppError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// embudo: marketing automation as code. Stages in YAML, rules in Rhai, emails as
/// templates; the daemon sends each lead the email that fits its stage.
#[derive(Parser, Debug)]
#[command(name = "embudo", version, about, long_about = None)]
pub struct Cli {
    /// The funnel's config file; paths in it are relative to its folder.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "embudo.yaml",
        env = "EMBUDO_CONFIG"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a starter funnel folder (the 3-phase demo) into DIR.
    Init(init::Args),
    /// Check the config, compile every rule and render every template against a sample lead.
    Check(check::Args),
    /// Run the daemon: evaluate on the tick's schedule and send what is due.
    Run(run::Args),
    /// Run one evaluation pass at NOW, deliver what is due, and exit.
    Tick(tick::Args),
    /// Import leads or events from a CSV file (a `kind` column means events).
    Import(import::Args),
    /// Record an event for a lead and run its rules at once.
    Event(event::Args),
    /// Run the rule tests in rules/tests/*.yaml.
    Test(test::Args),
    /// Create or upgrade the database schema; with --to URL, copy the database into
    /// another (SQLite or PostgreSQL).
    Migrate(migrate::Args),
    /// The funnel as it stands: leads per stage, conversion, time in stage, emails per
    /// template, and what the sending policy holds back.
    Report(report::Args),
    /// Each rule's decision for one lead and the sending policy's verdict on each
    /// email, at T; nothing is written.
    Explain(explain::Args),
    /// Scheduled campaigns: their next firings, or fire one now.
    Campaign {
        #[command(subcommand)]
        action: campaign::Action,
    },
    /// Unsubscribe an address (it need not be a lead yet) or every `email` in a CSV:
    /// no marketing email ever goes to it again; receipts still do.
    Unsubscribe(unsubscribe::Args),
    /// Erase a person (GDPR): the lead, its events, history and emails. Only a hash of
    /// the address is kept, in the suppression list, so it is never mailed again.
    Forget(forget::Args),
    /// Emergency stop: no email leaves until `resume` (survives restarts).
    Pause(pause::Args),
    /// Undo `pause`.
    Resume(pause::Args),
    /// Look at and act on the outbox.
    Outbox {
        #[command(subcommand)]
        action: outbox::Action,
    },
    /// Render a template for a lead (or the sample lead): subject, text and HTML, an
    /// .eml file, or a test send to an address.
    Preview(preview::Args),
    /// Dry-run the funnel forward in time on a scratch copy of the data: what would be
    /// sent, when, to whom, and the funnel at the end. Never touches the real database
    /// or SMTP.
    Simulate(simulate::Args),
    /// Measure this build on this machine: import, passes, delivery, HTTP ingest,
    /// sending and simulate, each against its target (writes BENCHMARKS.md with --out).
    Bench(bench::Args),
}

impl Command {
    /// The log filter when EMBUDO_LOG is unset: the daemon narrates, commands whose
    /// output is the point only warn.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Run(_) | Command::Tick(_) | Command::Event(_) => "info",
            _ => "warn",
        }
    }
}

/// Runs the command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32, AppError> {
    let config = cli.config.as_path();
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Check(args) => check::run(config, args).await,
        Command::Run(args) => run::run(config, args).await,
        Command::Tick(args) => tick::run(config, args).await,
        Command::Import(args) => import::run(config, args).await,
        Command::Event(args) => event::run(config, args).await,
        Command::Test(args) => test::run(config, args),
        Command::Migrate(args) => migrate::run(config, args).await,
        Command::Report(args) => report::run(config, args).await,
        Command::Explain(args) => explain::run(config, args).await,
        Command::Campaign { action } => campaign::run(config, action).await,
        Command::Unsubscribe(args) => unsubscribe::run(config, args).await,
        Command::Forget(args) => forget::run(config, args).await,
        Command::Pause(args) => pause::run(config, args, true).await,
        Command::Resume(args) => pause::run(config, args, false).await,
        Command::Outbox { action } => outbox::run(config, action).await,
        Command::Preview(args) => preview::run(config, args).await,
        Command::Simulate(args) => simulate::run(config, args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
