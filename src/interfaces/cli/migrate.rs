//! `embudo migrate [--to URL]`: create or upgrade the database schema, or copy the
//! whole database into another one, SQLite or PostgreSQL (moving a funnel between
//! backends).
//!
//! **Why the leases.** A copy is one snapshot of the source: anything the daemon
//! writes after it (a pass's moves, an email marked sent) would be lost in the move,
//! and an email sent from the source after the snapshot could be sent again from the
//! copy. So the copy takes the `tick` and `sender` leases for its whole length, as a
//! pass and the sender do, and refuses to start while another process holds them.

use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use crate::funnel::config::transport::resolve_database;
use crate::store::lease::{Acquired, KeepAlive, NamedLease};
use crate::store::{Copied, CopyError, Store, redact_url};
use chrono::TimeDelta;
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::path::Path;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Copy the database into this one (sqlite://FILE, relative to the folder, or
    /// postgres://…), which must hold no leads and no emails yet.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
}

pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let cfg = open::config(config, Clock::system().now())?;
    let Some(to) = args.to else {
        let store = Store::open(&cfg.database).await?;
        let n = store.migrate().await?;
        println!("{}: {n} migration(s) applied", redact_url(&cfg.database));
        return Ok(0);
    };
    let target = resolve_database(&to, &cfg.root)
        .map_err(|m| AppError::Usage(format!("--to: {m}; write sqlite://FILE or postgres://…")))?;
    if target == cfg.database {
        return Err(AppError::Usage(format!(
            "--to names the database embudo already uses ({}): give another one",
            redact_url(&target)
        )));
    }
    let source = open::existing_database(&cfg, "migrate --to").await?;
    let leases = match Leases::take(&source).await? {
        Ok(leases) => leases,
        Err(holder) => {
            eprintln!(
                "error: another embudo process ({holder}) is working on {}: stop the daemon (and any `embudo tick`) before copying its database, then run this again",
                redact_url(&cfg.database)
            );
            return Ok(1);
        }
    };
    let result = copy(&source, &cfg.database, &target).await;
    leases.release(&source).await;
    result
}

/// Copies `source` into the database at `target` and prints the per-table summary.
async fn copy(source: &Store, from: &str, target: &str) -> Result<i32, AppError> {
    let dest = Store::open_and_migrate(target).await?;
    let bars = Bars::default();
    let copied = source
        .copy_to(&dest, |table, done, total| bars.show(table, done, total))
        .await;
    bars.finish();
    dest.close().await;
    let copied = match copied {
        Ok(c) => c,
        Err(CopyError::Store(e)) => return Err(e.into()),
        Err(e @ CopyError::NotEmpty { .. }) => return Err(AppError::Usage(e.to_string())),
        Err(e) => {
            eprintln!("error: {e}; nothing was copied");
            return Ok(1);
        }
    };
    print_summary(&copied, from, target);
    Ok(0)
}

fn print_summary(copied: &[Copied], from: &str, target: &str) {
    let width = copied.iter().map(|c| c.table.len()).max().unwrap_or(0);
    println!("{:width$}  {:>10}  {:>10}", "table", "source", "copy");
    for c in copied {
        println!("{:width$}  {:>10}  {:>10}", c.table, c.source, c.target);
    }
    let rows: i64 = copied.iter().map(|c| c.target).sum();
    println!(
        "copied {} to {}: {rows} row(s) in {} tables, every count equal (leases in `locks` are not copied); point `database:` (or EMBUDO_DATABASE_URL) at the copy to use it",
        redact_url(from),
        redact_url(target),
        copied.len()
    );
}

/// The `tick` and `sender` leases, renewed while the copy runs.
struct Leases {
    held: Vec<(NamedLease, KeepAlive)>,
}

impl Leases {
    /// Both leases, or the holder of one another live process has (the other given
    /// back).
    async fn take(store: &Store) -> Result<Result<Leases, String>, AppError> {
        let mut leases = Leases { held: Vec::new() };
        for name in ["tick", "sender"] {
            let lease = NamedLease::new(name, TimeDelta::seconds(60));
            if let Acquired::Busy { holder } = lease.acquire(store).await? {
                leases.release(store).await;
                return Ok(Err(format!("{holder}, holding the `{name}` lease")));
            }
            // The copy is one transaction: losing a lease midway cannot be acted on,
            // and nobody takes a lease that is being renewed.
            let keep = lease.keep_alive(store, CancellationToken::new());
            leases.held.push((lease, keep));
        }
        Ok(Ok(leases))
    }

    async fn release(self, store: &Store) {
        for (lease, keep) in self.held {
            drop(keep);
            if let Err(e) = lease.release(store).await {
                tracing::warn!(error = %e, "a lease was not given back; it runs out by itself");
            }
        }
    }
}

/// One progress bar per table, in rows.
#[derive(Default)]
struct Bars(RefCell<Option<(String, ProgressBar)>>);

impl Bars {
    fn show(&self, table: &str, done: u64, total: u64) {
        let mut cur = self.0.borrow_mut();
        if cur.as_ref().is_none_or(|(t, _)| t != table) {
            if let Some((_, bar)) = cur.take() {
                bar.finish();
            }
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:18} [{bar:30}] {pos}/{len} rows ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(table.to_string());
            *cur = Some((table.to_string(), bar));
        }
        if let Some((_, bar)) = cur.as_ref() {
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some((_, bar)) = self.0.borrow_mut().take() {
            bar.finish();
        }
    }
}
