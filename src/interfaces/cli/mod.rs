//! The command line: clap definitions and dispatch. Exit codes: 0 ok, 1 failures
//! found, 2 usage or configuration error.

pub mod campaign;

use crate::app::{App, AppError};
use crate::clock::Clock;
use crate::domain::time::parse_instant;
use crate::domain::{Event, Value, ValueMap};
use chrono::{DateTime, TimeDelta, Utc};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

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

fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(s)
}

fn span(s: &str) -> Result<TimeDelta, String> {
    crate::domain::time::parse_duration(s)
}

fn prop(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.trim().to_string(), Value::infer(v)))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a starter funnel folder (the 3-phase demo) into DIR.
    Init {
        /// The folder to create or fill.
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Check the config, compile every rule and render every template against a sample lead.
    Check {
        /// Also connect to the configured SMTP server (nothing is sent): what it offers
        /// (STARTTLS, AUTH, its name) and whether smtp.url's TLS mode and the
        /// credentials will work with it.
        #[arg(long)]
        smtp: bool,
    },
    /// Run the daemon: evaluate on the tick's schedule and send what is due.
    Run {
        /// Start the clock at this RFC 3339 time; it then runs in real time (tests, demos).
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
        /// Serve the HTTP API on this address instead of `http.listen` (e.g. 127.0.0.1:0
        /// for any free port; the log names the one taken).
        #[arg(long, env = "EMBUDO_HTTP_LISTEN")]
        listen: Option<String>,
        /// After SIGTERM or Ctrl-C: how long sends under way may take before the daemon
        /// exits anyway (a duration: 10s, 1m).
        #[arg(long, value_parser = span, default_value = "10s")]
        shutdown_timeout: TimeDelta,
    },
    /// Run one evaluation pass at NOW, deliver what is due, and exit.
    Tick {
        /// The clock for this pass (RFC 3339); default: the wall clock.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Import leads or events from a CSV file (a `kind` column means events).
    Import {
        file: PathBuf,
        /// Also move existing leads to the file's `stage` (recorded in the stage history).
        #[arg(long)]
        update_stage: bool,
        /// The clock that stamps the imported rows (RFC 3339); default: the wall clock.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Record an event for a lead and run its rules at once.
    Event {
        /// The lead, by email or id.
        lead: String,
        /// The event kind, e.g. quote_requested.
        kind: String,
        /// When it happened (RFC 3339); default: now. The rules run at this time.
        #[arg(long, value_parser = instant)]
        at: Option<DateTime<Utc>>,
        /// A property of the event, typed by inference (repeatable): --prop amount=49.90
        #[arg(long = "prop", value_parser = prop)]
        props: Vec<(String, Value)>,
    },
    /// Run the rule tests in rules/tests/*.yaml.
    Test {
        /// Run only the tests whose name contains this.
        filter: Option<String>,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// The funnel as it stands: leads per stage, conversion, time in stage, emails per
    /// template, and what the sending policy holds back.
    Report {
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// The clock for "time in stage so far" (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Each rule's decision for one lead and the sending policy's verdict on each
    /// email, at T; nothing is written.
    Explain {
        /// The lead, by email or id.
        lead: String,
        /// The clock (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Scheduled campaigns: their next firings, or fire one now.
    Campaign {
        #[command(subcommand)]
        action: CampaignAction,
    },
    /// Unsubscribe an address (it need not be a lead yet) or every `email` in a CSV:
    /// no marketing email ever goes to it again; receipts still do.
    Unsubscribe {
        email: Option<String>,
        /// A CSV with an `email` column (other columns are ignored).
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        file: Option<PathBuf>,
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Erase a person (GDPR): the lead, its events, history and emails. Only a hash of
    /// the address is kept, in the suppression list, so it is never mailed again.
    Forget {
        /// The lead, by email or id.
        lead: String,
    },
    /// Emergency stop: no email leaves until `resume` (survives restarts).
    Pause {
        /// Stop only this campaign's emails.
        #[arg(long)]
        campaign: Option<String>,
    },
    /// Undo `pause`.
    Resume {
        #[arg(long)]
        campaign: Option<String>,
    },
    /// Look at and act on the outbox.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Render a template for a lead (or the sample lead): subject, text and HTML, an
    /// .eml file, or a test send to an address.
    Preview {
        /// The template id (the file name without .html).
        template: String,
        /// The lead, by email or id.
        #[arg(long, required_unless_present = "sample", conflicts_with = "sample")]
        lead: Option<String>,
        /// Use templates/_sample.yaml (no database needed).
        #[arg(long)]
        sample: bool,
        /// Write the whole MIME message to FILE instead of showing it.
        #[arg(long)]
        eml: Option<PathBuf>,
        /// Send it to ADDR through the configured transport (a test send: no outbox row).
        #[arg(long)]
        to: Option<String>,
        /// The clock the template sees (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Dry-run the funnel forward in time on a scratch copy of the data: what would be
    /// sent, when, to whom, and the funnel at the end. Never touches the real database
    /// or SMTP.
    Simulate {
        /// Start of the simulation (RFC 3339).
        #[arg(long, value_parser = instant)]
        from: DateTime<Utc>,
        /// End of the simulation (RFC 3339).
        #[arg(long, value_parser = instant)]
        to: DateTime<Utc>,
        /// Evaluate every STEP (e.g. 1h, 1d) instead of at the tick's cron times.
        #[arg(long, value_parser = span)]
        step: Option<TimeDelta>,
        /// Start from these leads instead of a copy of the funnel's database.
        #[arg(long)]
        leads: Option<PathBuf>,
        /// Events that happen during the simulation, each at its `at`.
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::tools::simulate::Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum CampaignAction {
    /// Each campaign's next firing in its local time, and its last firing.
    List {
        /// The clock (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Fire a campaign now, with the key of its latest scheduled firing at or before
    /// now (the next one if none), unless --key; recorded as done.
    Run {
        id: String,
        /// Count the audience now and show a sample; queue nothing, record nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        key: Option<String>,
        /// The clock (RFC 3339); default: now.
        #[arg(long, value_parser = instant)]
        now: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

/// Which outbox rows: every filter given must match.
#[derive(clap::Args, Debug)]
pub struct OutboxArgs {
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

#[derive(Subcommand, Debug)]
pub enum OutboxAction {
    /// The newest rows first, with their state, times and reason.
    List {
        #[command(flatten)]
        filter: OutboxArgs,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue again rows that did not go (failed, expired, stale, held, retry,
    /// cancelled); the policy and consent still apply.
    Retry {
        #[command(flatten)]
        filter: OutboxArgs,
        /// Required when no filter is given.
        #[arg(long)]
        all: bool,
    },
    /// Cancel rows that have not gone yet (queued, retry, held).
    Cancel {
        #[command(flatten)]
        filter: OutboxArgs,
        /// Required when no filter is given.
        #[arg(long)]
        all: bool,
    },
}

impl OutboxArgs {
    fn is_empty(&self) -> bool {
        self.states.is_empty()
            && self.template.is_none()
            && self.lead.is_none()
            && self.campaign.is_none()
    }

    async fn resolve(
        self,
        store: &crate::store::Store,
    ) -> Result<crate::store::OutboxFilter, AppError> {
        let states = crate::tools::operator::states(&self.states)?;
        crate::tools::operator::filter(
            store,
            states,
            self.template,
            self.lead.as_deref(),
            self.campaign,
        )
        .await
    }
}

impl Command {
    /// The log filter when EMBUDO_LOG is unset: the daemon narrates, commands whose
    /// output is the point only warn.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Run { .. } | Command::Tick { .. } | Command::Event { .. } => "info",
            _ => "warn",
        }
    }
}

/// The database of the funnel, without loading rules or templates (operator commands
/// work even while the folder has a broken rule).
async fn open_store(config: &Path) -> Result<crate::store::Store, AppError> {
    let cfg = crate::funnel::config::Config::load(config, Utc::now())
        .map_err(|e| AppError::Funnel(e.into()))?;
    Ok(crate::store::Store::open_and_migrate(&cfg.database).await?)
}

/// The database of the funnel, which must exist already: an operator's action
/// (pause, outbox, forget) on a new, empty database would report success while the
/// running daemon, on the real one, goes on. That happens when embudo.yaml is
/// half-saved or names another database.
async fn open_existing_store(config: &Path, what: &str) -> Result<crate::store::Store, AppError> {
    let cfg = crate::funnel::config::Config::load(config, Utc::now())
        .map_err(|e| AppError::Funnel(e.into()))?;
    if let Some(file) = crate::store::sqlite_file(&cfg.database)
        && !file.exists()
    {
        return Err(AppError::Usage(format!(
            "no database at {}: {} names `{}`, which does not exist yet, so {what} would act on nothing; check `database:` in {} (or EMBUDO_DATABASE_URL)",
            file.display(),
            cfg.display_path(&cfg.path),
            cfg.database,
            cfg.display_path(&cfg.path),
        )));
    }
    Ok(crate::store::Store::open_and_migrate(&cfg.database).await?)
}

async fn pause(config: &Path, campaign: Option<String>, pause: bool) -> Result<i32, AppError> {
    if let Some(c) = &campaign {
        let cfg = crate::funnel::config::Config::load(config, Utc::now())
            .map_err(|e| AppError::Funnel(e.into()))?;
        if !cfg.campaigns.iter().any(|x| &x.id == c) {
            let ids: Vec<&str> = cfg.campaigns.iter().map(|x| x.id.as_str()).collect();
            return Err(AppError::Usage(format!(
                "no campaign `{c}` in {}; the campaigns are: {}",
                cfg.display_path(&cfg.path),
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            )));
        }
    }
    let store = open_existing_store(config, if pause { "pause" } else { "resume" }).await?;
    store.set_paused(campaign.as_deref(), pause).await?;
    let what = campaign
        .map(|c| format!("campaign `{c}`"))
        .unwrap_or_else(|| "all sending".into());
    if pause {
        println!("{what} paused: nothing leaves until `embudo resume` (this survives restarts)");
    } else {
        println!("{what} resumed");
    }
    Ok(0)
}

/// `check --smtp`: talks to the SMTP server and prints what it offers; 1 when embudo
/// will not be able to send through it as configured.
async fn check_smtp(cfg: &crate::funnel::config::Config) -> i32 {
    println!("\nSMTP server:");
    match crate::delivery::probe::probe(cfg).await {
        Err(why) => {
            println!("  {why}");
            0
        }
        Ok(p) => {
            for f in &p.facts {
                println!("  {f}");
            }
            for n in &p.notes {
                println!("  note: {n}");
            }
            for (m, hint) in &p.problems {
                println!("error: {m}");
                if let Some(h) = hint {
                    println!("  = help: {h}");
                }
            }
            if p.problems.is_empty() {
                println!("embudo can send through this server as configured");
                0
            } else {
                println!("embudo cannot send through this server as configured");
                1
            }
        }
    }
}

/// Runs the command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32, AppError> {
    match cli.command {
        Command::Init { dir, force } => {
            let written = crate::funnel::scaffold::init(&dir, force).map_err(AppError::Usage)?;
            println!("wrote {} files into {}", written.len(), dir.display());
            println!(
                "next: cd {} && embudo check && embudo run   (a new database is seeded with the sample leads.csv and events.csv; emails land in outbox-mail/)",
                dir.display()
            );
            Ok(0)
        }
        Command::Check { smtp } => {
            // Every problem at once: the config's (exit 2) and the folder's (exit 1).
            let checked = match crate::funnel::check::check_all(&cli.config, Utc::now()) {
                Ok(c) => c,
                Err(crate::funnel::FunnelError::Config(e)) => {
                    eprint!("{}", crate::funnel::check::config_diagnostic(&e).render());
                    return Ok(2);
                }
                Err(e) => return Err(AppError::Funnel(e)),
            };
            for w in &checked.warnings {
                println!("{}", w.render_as("warning"));
            }
            for n in &checked.notes {
                println!("{}", n.render_as("note"));
            }
            for p in &checked.config {
                eprintln!("{}", p.render());
            }
            for p in &checked.folder {
                println!("{}", p.render());
            }
            let n = checked.config.len() + checked.folder.len();
            let code = if n == 0 {
                println!("{}: ok", cli.config.display());
                0
            } else {
                println!("{n} problem(s) found");
                if checked.config.is_empty() { 1 } else { 2 }
            };
            if !smtp {
                return Ok(code);
            }
            Ok(code.max(check_smtp(&checked.settings).await))
        }
        Command::Test { filter } => {
            let loaded = crate::funnel::Loaded::read(&cli.config, Utc::now())
                .map_err(|e| AppError::Funnel(e.into()))?;
            if let Some(e) = loaded.config_error() {
                return Err(AppError::Funnel(e.into()));
            }
            let cfg = &loaded.funnel.config;
            let tests = cfg.display_path(&cfg.rules_dir().join("tests"));
            let run = crate::tools::ruletest::run(loaded, filter.as_deref());
            Ok(crate::tools::ruletest::report(&run, Path::new(&tests)))
        }
        Command::Explain { lead, at } => {
            let app = App::open(&cli.config).await?;
            let at = at.unwrap_or_else(Utc::now);
            print!("{}", crate::tools::explain::explain(&app, &lead, at).await?);
            Ok(0)
        }
        Command::Campaign { action } => {
            crate::interfaces::cli::campaign::run(&cli.config, action).await
        }
        Command::Report { format, now } => {
            let cfg = crate::funnel::config::Config::load(&cli.config, Utc::now())
                .map_err(|e| AppError::Funnel(e.into()))?;
            let store = crate::store::Store::open_and_migrate(&cfg.database).await?;
            let r =
                crate::tools::report::report(&store, &cfg, now.unwrap_or_else(Utc::now)).await?;
            match format {
                ReportFormat::Table => print!("{}", r.table()),
                ReportFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&r).expect("plain data"))
                }
            }
            Ok(0)
        }
        Command::Unsubscribe { email, file, now } => {
            let store = open_store(&cli.config).await?;
            let now = now.unwrap_or_else(Utc::now);
            if let Some(file) = file {
                let (n, bad) = crate::tools::operator::unsubscribe_file(&store, &file, now).await?;
                println!("unsubscribed {n} address(es) from {}", file.display());
                for b in &bad {
                    eprintln!("  {}:{}: {}", file.display(), b.line, b.message);
                }
                return Ok(if bad.is_empty() { 0 } else { 1 });
            }
            let raw = email.unwrap_or_default();
            let email = crate::domain::EmailAddress::parse(&raw).map_err(AppError::Usage)?;
            let known = crate::tools::operator::unsubscribe(&store, &email, now).await?;
            println!(
                "unsubscribed {email}{}",
                if known {
                    ""
                } else {
                    " (no lead has it yet; one that comes will get no marketing email)"
                }
            );
            Ok(0)
        }
        Command::Forget { lead } => {
            let store = open_existing_store(&cli.config, "forget").await?;
            let Some(id) = store.find_lead_id(&lead).await? else {
                return Err(AppError::Usage(format!(
                    "no lead `{lead}`; name a lead by its email or id"
                )));
            };
            let email = store.forget(id, Utc::now()).await?;
            println!(
                "forgot lead {id} ({}): its data is erased; a hash of the address stays in the suppression list",
                email.map(|e| e.to_string()).unwrap_or_default()
            );
            Ok(0)
        }
        Command::Pause { campaign } => pause(&cli.config, campaign, true).await,
        Command::Resume { campaign } => pause(&cli.config, campaign, false).await,
        Command::Outbox { action } => {
            let store = open_existing_store(&cli.config, "outbox").await?;
            let now = Utc::now();
            match action {
                OutboxAction::List { filter, limit } => {
                    let f = filter.resolve(&store).await?;
                    let rows = store.outbox_list(&f, limit).await?;
                    print!("{}", crate::tools::operator::outbox_table(&rows));
                    let counts = store.outbox_counts().await?;
                    let counts: Vec<String> =
                        counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
                    println!(
                        "{} row(s) shown; all rows by state: {}",
                        rows.len(),
                        counts.join(", ")
                    );
                    let (all, campaigns) = store.paused().await?;
                    if all {
                        println!(
                            "sending is paused (embudo pause): nothing leaves until `embudo resume`"
                        );
                    }
                    for c in campaigns {
                        println!(
                            "campaign {c} is paused: its emails wait until `embudo resume --campaign {c}`"
                        );
                    }
                    Ok(0)
                }
                OutboxAction::Retry { filter, all } | OutboxAction::Cancel { filter, all }
                    if filter.is_empty() && !all =>
                {
                    Err(AppError::Usage(
                        "name the rows (--state, --template, --lead, --campaign) or pass --all"
                            .into(),
                    ))
                }
                OutboxAction::Retry { filter, .. } => {
                    let f = filter.resolve(&store).await?;
                    let n = store.outbox_retry(&f, now).await?;
                    println!("{n} row(s) queued again");
                    Ok(0)
                }
                OutboxAction::Cancel { filter, .. } => {
                    let f = filter.resolve(&store).await?;
                    let n = store.outbox_cancel(&f, now).await?;
                    println!("{n} row(s) cancelled");
                    Ok(0)
                }
            }
        }
        Command::Preview {
            template,
            lead,
            sample: _,
            eml,
            to,
            now,
        } => {
            let to = to
                .map(|t| crate::domain::EmailAddress::parse(&t))
                .transpose()
                .map_err(|e| AppError::Usage(format!("--to: {e}")))?;
            let who = match lead {
                Some(l) => crate::tools::preview::Who::Lead(l),
                None => crate::tools::preview::Who::Sample,
            };
            let now = now.unwrap_or_else(Utc::now);
            let p = crate::tools::preview::preview(&cli.config, &template, who, now).await?;
            if let Some(file) = &eml {
                std::fs::write(file, p.eml()).map_err(|e| {
                    AppError::Usage(format!("cannot write {}: {e}", file.display()))
                })?;
                println!("wrote {}", file.display());
            }
            if let Some(to) = &to {
                let store = open_store(&cli.config).await?;
                p.send_to(&store, to, now).await?;
                println!("sent `{template}` to {to} (a test send: no outbox row)");
            }
            if eml.is_none() && to.is_none() {
                print!("{}", p.show());
            }
            Ok(0)
        }
        Command::Simulate {
            from,
            to,
            step,
            leads,
            events,
            format,
        } => {
            let opts = crate::tools::simulate::Options {
                from,
                to,
                step,
                leads,
                events,
            };
            let sim = crate::tools::simulate::simulate(&cli.config, &opts).await?;
            print!("{}", sim.render(format));
            if format == crate::tools::simulate::Format::Csv {
                eprint!("{}", sim.summary_lines());
            }
            Ok(0)
        }
        Command::Migrate => {
            let cfg = crate::funnel::config::Config::load(&cli.config, Utc::now())
                .map_err(|e| AppError::Funnel(e.into()))?;
            let store = crate::store::Store::open(&cfg.database).await?;
            let n = store.migrate().await?;
            println!("{}: {n} migration(s) applied", cfg.database);
            Ok(0)
        }
        Command::Run {
            now,
            listen,
            shutdown_timeout,
        } => {
            let app = App::open(&cli.config).await?;
            let token = tokio_util::sync::CancellationToken::new();
            crate::interfaces::daemon::cancel_on_signal(token.clone());
            let options = crate::interfaces::daemon::Options {
                listen,
                shutdown_timeout: shutdown_timeout.to_std().unwrap_or_default(),
            };
            crate::interfaces::daemon::run(app, Clock::from_option(now), options, token).await?;
            Ok(0)
        }
        Command::Tick { now } => {
            let app = App::open(&cli.config).await?;
            let now = now.unwrap_or_else(Utc::now);
            let fired = app.fire_campaigns(now).await?;
            let mut campaign_trouble = false;
            for f in &fired {
                match (&f.problem, &f.skipped) {
                    (Some(p), _) => {
                        campaign_trouble = true;
                        println!("campaign {}: {p}", f.campaign)
                    }
                    (None, Some(why)) => {
                        println!("campaign {} [{}]: skipped, {why}", f.campaign, f.key)
                    }
                    (None, None) => println!(
                        "campaign {} [{}]: {} lead(s) in the audience, {} email(s) queued",
                        f.campaign, f.key, f.audience, f.queued
                    ),
                }
                for e in &f.errors {
                    campaign_trouble = true;
                    eprintln!("audience error (lead left out): {e}");
                }
            }
            let Some(pass) = app.evaluate(now).await? else {
                eprintln!("another tick is running; nothing done");
                return Ok(0);
            };
            let stop = tokio_util::sync::CancellationToken::new();
            crate::interfaces::daemon::cancel_on_signal(stop.clone());
            let d = app.deliver_at(now, &stop).await?;
            let delivered = match &d {
                None => "delivery left to the running daemon".to_string(),
                Some(d) if d.paused => "sending is paused (embudo resume)".to_string(),
                Some(d) => format!(
                    "sent {}, held {}, retry {}, failed {}, stale {}, expired {}, suppressed {}, bounced {}",
                    d.sent,
                    d.held,
                    d.retried,
                    d.failed,
                    d.stale,
                    d.expired,
                    d.suppressed,
                    d.bounced
                ),
            };
            println!(
                "tick at {}: {} leads evaluated, {} changed, {} stage move(s), {} email(s) queued; {delivered}",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                pass.leads,
                pass.changed,
                pass.moves,
                pass.queued,
            );
            let d = d.unwrap_or_default();
            for (e, n, lead) in pass.errors.values() {
                eprintln!("rule error: {e} ({n} lead(s), e.g. lead {lead})");
            }
            // Rules skipped or emails failed: the pass ran, but something needs a look.
            Ok(
                if pass.errors.is_empty() && d.failed == 0 && d.bounced == 0 && !campaign_trouble {
                    0
                } else {
                    1
                },
            )
        }
        Command::Import {
            file,
            update_stage,
            now,
        } => {
            let app = App::open(&cli.config).await?;
            let now = now.unwrap_or_else(Utc::now);
            let r = crate::ingest::csv::import_file(
                &app.store,
                &app.funnel().config,
                &file,
                update_stage,
                now,
            )
            .await?;
            if r.kind == "events" {
                println!("imported {}: {} event(s)", file.display(), r.events);
            } else {
                println!(
                    "imported {}: {} lead(s) created, {} updated",
                    file.display(),
                    r.created,
                    r.updated
                );
            }
            if r.bad.is_empty() {
                return Ok(0);
            }
            eprintln!("{} bad row(s) skipped:", r.bad.len());
            for b in &r.bad {
                eprintln!("  {}:{}: {}", file.display(), b.line, b.message);
            }
            Ok(1)
        }
        Command::Event {
            lead,
            kind,
            at,
            props,
        } => {
            crate::domain::ids::check_name("event kind", &kind).map_err(AppError::Usage)?;
            let app = App::open(&cli.config).await?;
            let at = at.unwrap_or_else(Utc::now);
            let Some(id) = app.store.find_lead_id(&lead).await? else {
                return Err(AppError::Usage(format!(
                    "no lead `{lead}`; name a lead by its email or id, or import it first (embudo import FILE)"
                )));
            };
            let props: ValueMap = props.into_iter().collect();
            app.store
                .insert_events(
                    &[(
                        id,
                        Event {
                            kind: kind.clone(),
                            at,
                            props,
                        },
                    )],
                    at,
                )
                .await?;
            let r = crate::engine::pass::evaluate_lead(&app.store, &app.funnel(), id, at)
                .await?
                .unwrap_or_default();
            println!(
                "recorded `{kind}` for lead {id} at {}; the rules queued {} email(s) and made {} stage move(s)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.queued,
                r.moves
            );
            for (e, _, _) in r.errors.values() {
                eprintln!("rule error: {e}");
            }
            Ok(if r.errors.is_empty() { 0 } else { 1 })
        }
    }
}
