//! `embudo outbox list|retry|cancel`: look at and act on the outbox.

use super::args::instant;
use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use crate::store::Store;
use crate::tools::operator;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// The newest rows first, with their state, times and reason.
    List {
        #[command(flatten)]
        filter: Filter,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue again rows that did not go (failed, expired, stale, held, retry,
    /// cancelled); the policy and consent still apply.
    Retry(Change),
    /// Cancel rows that have not gone yet (queued, retry, held).
    Cancel(Change),
}

/// Which rows a retry or cancel changes, and when.
#[derive(clap::Args, Debug)]
pub struct Change {
    #[command(flatten)]
    filter: Filter,
    /// Required when no filter is given.
    #[arg(long)]
    all: bool,
    /// The clock that stamps the change (RFC 3339); default: the wall clock.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

/// Which outbox rows: every filter given must match.
#[derive(clap::Args, Debug)]
pub struct Filter {
    /// queued, sending, sent, retry, held, failed, stale, expired, suppressed, cancelled
    /// (repeatable, or comma-separated).
    #[arg(long = "state")]
    states: Vec<String>,
    #[arg(long)]
    template: Option<String>,
    /// The lead, by email or id.
    #[arg(long)]
    lead: Option<String>,
    #[arg(long)]
    campaign: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.states.is_empty()
            && self.template.is_none()
            && self.lead.is_none()
            && self.campaign.is_none()
    }

    async fn resolve(self, store: &Store) -> Result<crate::store::OutboxFilter, AppError> {
        let states = operator::states(&self.states)?;
        operator::filter(
            store,
            states,
            self.template,
            self.lead.as_deref(),
            self.campaign,
        )
        .await
    }
}

impl Change {
    fn clock(&self) -> Clock {
        Clock::held_or_system(self.now)
    }

    /// The rows named, refusing to change every row without `--all`.
    async fn rows(
        self,
        store: &Store,
    ) -> Result<(crate::store::OutboxFilter, DateTime<Utc>), AppError> {
        if self.filter.is_empty() && !self.all {
            return Err(AppError::Usage(
                "name the rows (--state, --template, --lead, --campaign) or pass --all".into(),
            ));
        }
        let now = self.clock().now();
        Ok((self.filter.resolve(store).await?, now))
    }
}

pub async fn run(config: &Path, action: Action) -> Result<i32, AppError> {
    let clock = match &action {
        Action::List { .. } => Clock::system(),
        Action::Retry(change) | Action::Cancel(change) => change.clock(),
    };
    let store = open::existing_store(config, "outbox", clock.now()).await?;
    match action {
        Action::List { filter, limit } => list(&store, filter, limit).await,
        Action::Retry(change) => {
            let (f, now) = change.rows(&store).await?;
            let n = store.outbox_retry(&f, now).await?;
            println!("{n} row(s) queued again");
            Ok(0)
        }
        Action::Cancel(change) => {
            let (f, now) = change.rows(&store).await?;
            let n = store.outbox_cancel(&f, now).await?;
            println!("{n} row(s) cancelled");
            Ok(0)
        }
    }
}

async fn list(store: &Store, filter: Filter, limit: i64) -> Result<i32, AppError> {
    let f = filter.resolve(store).await?;
    let rows = store.outbox_list(&f, limit).await?;
    print!("{}", operator::outbox_table(&rows));
    let counts = store.outbox_counts().await?;
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "{} row(s) shown; all rows by state: {}",
        rows.len(),
        counts.join(", ")
    );
    let (all, campaigns) = store.paused().await?;
    if all {
        println!("sending is paused (embudo pause): nothing leaves until `embudo resume`");
    }
    for c in campaigns {
        println!("campaign {c} is paused: its emails wait until `embudo resume --campaign {c}`");
    }
    Ok(0)
}
