//! `embudo simulate`: the funnel run forward in time on a scratch copy of the data.
//!
//! The simulation is the daemon with a fake clock and a dry mailer: the same `App`
//! (built by the same builder) takes the same `App::step` against a throw-away SQLite
//! file, so what it predicts is what the daemon would do, not what a copy of it would.
//! Events from the events CSV are stored up front; read helpers never see rows later
//! than `now`, and each event makes its lead's rules run at the event's time, as
//! `embudo event` does.
//!
//! A tick evaluates only the leads whose outcome can change at it (see [`due`]): with
//! a year of hourly ticks, most leads are quiet at most of them. [`Mode::Full`]
//! evaluates every lead at every tick instead; tests/simulate_sparse.rs proves both
//! give the same timeline.

mod due;

use crate::app::{App, AppError, Step, StepReport};
use crate::clock::Clock;
use crate::delivery::Mailer;
use crate::delivery::signing::Signer;
use crate::domain::LeadId;
use crate::engine::pass::PassReport;
use crate::engine::schedule;
use crate::funnel::Funnel;
use crate::funnel::config::Config;
use crate::ingest::csv::{BadRow, import_file};
use crate::store::{MoveRow, OutboxRow, OutboxState, Store};
use crate::tools::report::{
    BuyingWindows, ConversionRow, RegressionRow, StageRow, TemplateRow, pct_text,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The wall-clock budget of one rule for one lead in a simulation (the daemon's is
/// [`crate::rules::RULE_TIME_BUDGET`]). A timeline must not depend on how busy the
/// machine is (two runs of the same inputs, or a sparse and a full run, are the same):
/// here the operation limit stops a runaway loop, and only a rule slower than this is
/// stopped by the clock, as in rule tests.
const SIMULATION_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// More instants than this is almost certainly a mistake (a 1-second cron over a year).
const MAX_INSTANTS: usize = 2_000_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Evaluate every `step` from `from`; `None`: at the tick's cron times.
    pub step: Option<TimeDelta>,
    /// Leads to start from; `None`: a copy of the funnel's database.
    pub leads: Option<PathBuf>,
    pub events: Option<PathBuf>,
}

/// The result: a timeline and the funnel at the end. Serialised as the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub from: String,
    pub to: String,
    pub timezone: String,
    pub passes: usize,
    pub event_reactions: usize,
    /// Campaign firings that queued their audience's emails.
    pub campaign_firings: usize,
    pub leads: usize,
    pub timeline: Vec<Entry>,
    /// The report over the simulated period (`tools::report`): the funnel at the end…
    pub funnel: Vec<StageRow>,
    /// …the emails per template…
    pub emails: Vec<TemplateRow>,
    /// …the moves back, the named conversions and the buying windows.
    pub regressions: Vec<RegressionRow>,
    pub conversions: Vec<ConversionRow>,
    pub buying_windows: BuyingWindows,
    /// Each distinct rule error and how many lead evaluations it skipped.
    pub rule_errors: Vec<(String, usize)>,
    /// Rows of the input CSVs that were skipped: "file:line: why".
    pub bad_rows: Vec<String>,
}

/// One line of the timeline: an email's fate or a stage move.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// RFC 3339, UTC: for an email, when it ended (sent, stale…) or was requested if
    /// still pending at the end; for a move, when it happened.
    pub at: String,
    pub lead: i64,
    pub email: String,
    /// `move` or `send`.
    pub action: &'static str,
    /// The template, or `from → to`.
    pub what: String,
    /// The dedupe key of a send (empty for a plain `send(template)`).
    pub key: String,
    /// A send's state at the end (sent, stale, expired, failed, queued, retry, held);
    /// `moved` for a move.
    pub state: String,
    /// The rule or campaign.
    pub by: String,
    /// Why, when the state needs a reason.
    pub detail: String,
    /// When a rule or campaign asked for the email (for a move, its time): later than
    /// `at` means the sending policy held it.
    pub requested_at: String,
    #[serde(skip)]
    local: String,
}

/// How a simulated tick picks the leads it evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Only the leads whose outcome can change at the tick (the default).
    #[default]
    Sparse,
    /// Every lead at every tick, as the daemon's tick does: the reference the sparse
    /// mode is checked against.
    Full,
}

/// Runs the simulation described by `opts` for the funnel at `config_path`.
pub async fn simulate(config_path: &Path, opts: &Options) -> Result<Simulation, AppError> {
    simulate_in(config_path, opts, Mode::Sparse).await
}

/// [`simulate`], evaluating the leads `mode` says at each tick.
pub async fn simulate_in(
    config_path: &Path,
    opts: &Options,
    mode: Mode,
) -> Result<Simulation, AppError> {
    check_options(opts)?;
    let (app, _scratch) = scratch_app(config_path, opts).await?;
    let mut bad_rows = Vec::new();
    for file in opts.leads.iter().chain(opts.events.iter()) {
        let r = import_file(&app.store, &app.funnel().config, file, false, opts.from).await?;
        bad_rows.extend(
            r.bad
                .iter()
                .map(|b: &BadRow| format!("{}:{}: {}", file.display(), b.line, b.message)),
        );
    }
    let plan = plan(&app.funnel(), &app.store, opts).await?;
    let counts = run_plan(&app, plan, opts, mode).await?;
    summarise(&app, opts, counts, bad_rows).await
}

fn check_options(opts: &Options) -> Result<(), AppError> {
    if opts.to <= opts.from {
        return Err(AppError::Usage(format!(
            "--to ({}) must be after --from ({})",
            rfc(opts.to),
            rfc(opts.from)
        )));
    }
    if let Some(step) = opts.step
        && step <= TimeDelta::zero()
    {
        return Err(AppError::Usage("--step must be positive".into()));
    }
    Ok(())
}

/// The daemon's own parts on a scratch database (a copy of the real one, or empty when
/// the leads come from a CSV), with a dry mailer and links nobody follows. The folder
/// lives as long as the returned guard.
async fn scratch_app(config_path: &Path, opts: &Options) -> Result<(App, TempDir), AppError> {
    let mut config =
        Config::load(config_path, opts.from).map_err(|e| AppError::Funnel(e.into()))?;
    let scratch = tempfile::Builder::new()
        .prefix("embudo-simulate-")
        .tempdir()
        .map_err(|e| AppError::Usage(format!("cannot create a scratch folder: {e}")))?;
    let scratch_db = scratch.path().join("simulate.db");
    let real_db = std::mem::replace(
        &mut config.database,
        format!("sqlite://{}", scratch_db.display()),
    );
    if opts.leads.is_none() {
        copy_real_database(&real_db, &scratch_db).await?;
    }
    let mut funnel = Funnel::from_config(config)?;
    funnel.rules.time_budget = SIMULATION_TIME_BUDGET;
    // The sparse mode's sifting reads each evaluation's horizon.
    funnel.rules.track_horizon = true;
    let app = App::builder_for(funnel)
        .mailer(Mailer::Dry)
        .signer(Signer::new(b"simulate: links are never followed"))
        .clock(Clock::Held(opts.from))
        .scratch()
        .build()
        .await?;
    Ok((app, scratch))
}

/// What the run did, for the summary.
#[derive(Default)]
struct Counts {
    passes: usize,
    reactions: usize,
    fired: usize,
    /// Every rule and audience error, counted once per distinct error.
    errors: PassReport,
}

/// One step at every instant of the plan (campaigns due, rules, delivery), adding
/// the instants at which held or retried emails fall due as they appear.
async fn run_plan(
    app: &App,
    mut plan: BTreeMap<DateTime<Utc>, Instant>,
    opts: &Options,
    mode: Mode,
) -> Result<Counts, AppError> {
    let bar = progress(plan.len() as u64);
    let mut counts = Counts::default();
    let mut due = due::Due::everyone();
    let never = CancellationToken::new();
    while let Some((at, instant)) = plan.pop_first() {
        let report = match mode {
            Mode::Full => full_step(app, at, &instant, &never).await?,
            Mode::Sparse => sparse_step(app, at, &instant, &mut due, &never).await?,
        };
        for f in report.campaigns {
            counts.fired += usize::from(f.skipped.is_none());
            for e in f.errors {
                counts.errors.absorb(LeadId(0), vec![e]);
            }
        }
        counts.passes += usize::from(instant.tick);
        counts.reactions += if instant.tick { 0 } else { instant.leads.len() };
        counts.errors.add(report.pass.unwrap_or_default());
        // The daemon's sender never sleeps through a release (quiet hours ending, a
        // retry falling due): neither does the simulated one.
        if let Some(next) = app.store.next_due_after(at).await?
            && next <= opts.to
            && plan.first_key_value().is_none_or(|(n, _)| next < *n)
        {
            plan.insert(next, Instant::default());
            bar.inc_length(1);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(counts)
}

/// The daemon's step: a tick evaluates every lead, an event its lead.
async fn full_step(
    app: &App,
    at: DateTime<Utc>,
    instant: &Instant,
    never: &CancellationToken,
) -> Result<StepReport, AppError> {
    let step = match (instant.tick, instant.leads.is_empty()) {
        (true, _) => Step::Everyone,
        (false, false) => Step::Leads(&instant.leads),
        (false, true) => Step::DeliverOnly,
    };
    app.step(step, at, never).await
}

/// A lead evaluated alone (loaded, evaluated, committed by itself) costs about as
/// much as this many evaluated in a pass's pages.
const ALONE_COST: u64 = 12;

/// The same step, in the same order (campaigns, rules, delivery), with a tick's rules
/// run only for the leads whose evaluation changes something: the others are
/// evaluated without recording (which is how we know) and wait for their horizon.
/// Event reactions run as in [`full_step`].
async fn sparse_step(
    app: &App,
    at: DateTime<Utc>,
    instant: &Instant,
    due: &mut due::Due,
    never: &CancellationToken,
) -> Result<StepReport, AppError> {
    let campaigns = app.fire_campaigns(at).await?;
    if !campaigns.is_empty() {
        due.mark_everyone();
    }
    let act = match instant.tick {
        true => tick_leads(app, at, &instant.leads, due).await?,
        false => instant.leads.clone(),
    };
    // Many leads to act on: the pass's pages do it cheaper, and the quiet leads among
    // the rest change nothing in it.
    let pass = if !act.is_empty() && act.len() as u64 * ALONE_COST > app.store.lead_count().await? {
        app.evaluate(at).await?.unwrap_or_default()
    } else {
        app.evaluate_leads(&act, at).await?
    };
    for lead in act {
        due.mark(lead);
    }
    let delivery = app.deliver_at(at, never).await?;
    Ok(StepReport {
        campaigns,
        pass: Some(pass),
        delivery,
    })
}

/// The leads a tick must evaluate for real: of those due (see [`due`]) and those with
/// an event at this instant, the ones whose evaluation changes something or fails. The
/// others are given their next instant.
async fn tick_leads(
    app: &App,
    at: DateTime<Utc>,
    events: &[LeadId],
    due: &mut due::Due,
) -> Result<Vec<LeadId>, AppError> {
    for lead in events {
        due.mark(*lead);
    }
    let leads = due.take(at);
    let sifted = due::sift(&app.store, &app.funnel(), leads.as_deref(), at).await?;
    for (lead, horizon) in sifted.quiet {
        if let Some(h) = horizon {
            due.wake(lead, h);
        }
    }
    Ok(sifted.act)
}

/// The timeline and the funnel at the end, read from the scratch database.
async fn summarise(
    app: &App,
    opts: &Options,
    counts: Counts,
    bad_rows: Vec<String>,
) -> Result<Simulation, AppError> {
    let (funnel, store) = (app.funnel(), &app.store);
    let tz = funnel.config.schedule.timezone.0;
    let sends = store.sends_since(opts.from).await?;
    let moves = store.moves_since(opts.from).await?;
    let stages = store.stages().await?;
    // The report over the simulated period; its end is exclusive, the last instant
    // simulated is `to` itself.
    let options = crate::tools::report::Options {
        from: Some(opts.from),
        to: Some(opts.to + TimeDelta::milliseconds(1)),
        by: None,
    };
    let report = crate::tools::report::report(store, &funnel.config, &options, opts.to).await?;
    store.close().await;
    let mut timeline: Vec<Entry> = moves
        .iter()
        .map(|m| move_entry(m, tz))
        .chain(sends.iter().map(|s| send_entry(s, tz)))
        .collect();
    timeline.sort_by(|a, b| {
        (&a.at, a.lead, a.action, &a.what, &a.key).cmp(&(&b.at, b.lead, b.action, &b.what, &b.key))
    });
    Ok(Simulation {
        from: rfc(opts.from),
        to: rfc(opts.to),
        timezone: tz.to_string(),
        passes: counts.passes,
        event_reactions: counts.reactions,
        campaign_firings: counts.fired,
        leads: stages.len(),
        funnel: report.stages,
        emails: report.templates,
        regressions: report.regressions,
        conversions: report.conversions,
        buying_windows: report.buying_windows,
        timeline,
        rule_errors: counts
            .errors
            .errors
            .values()
            .map(|(e, n, _)| (e.to_string(), *n))
            .collect(),
        bad_rows,
    })
}

/// What happens at one instant: a tick (every lead), event reactions (some leads), or
/// (neither) only the sender's round, when held or retried emails fall due. `leads`
/// are the event leads, at a tick too.
#[derive(Debug, Default)]
struct Instant {
    tick: bool,
    leads: Vec<LeadId>,
}

/// Every instant of the simulation, in order: `from`, the ticks, the events.
async fn plan(
    funnel: &Funnel,
    store: &Store,
    opts: &Options,
) -> Result<BTreeMap<DateTime<Utc>, Instant>, AppError> {
    let mut plan: BTreeMap<DateTime<Utc>, Instant> = BTreeMap::new();
    let mut ticks = vec![opts.from];
    match opts.step {
        Some(step) => {
            let mut t = opts.from + step;
            while t <= opts.to && ticks.len() <= MAX_INSTANTS {
                ticks.push(t);
                t += step;
            }
        }
        None => {
            let s = &funnel.config.schedule;
            ticks.extend(schedule::between(
                &s.tick,
                s.timezone.0,
                opts.from,
                opts.to,
                MAX_INSTANTS + 1,
            ));
        }
    }
    if ticks.len() > MAX_INSTANTS {
        return Err(AppError::Usage(format!(
            "more than {MAX_INSTANTS} evaluation passes between --from and --to; pass a coarser --step (e.g. --step 1h)"
        )));
    }
    for t in ticks {
        plan.entry(t).or_default().tick = true;
    }
    // Campaign firings are instants too (their emails then wake the sender).
    for c in &funnel.config.campaigns {
        let mut t = opts.from;
        while let Some(n) = crate::engine::campaigns::next_firing(c, &funnel.config, t) {
            if n > opts.to || plan.len() > MAX_INSTANTS {
                break;
            }
            plan.entry(n).or_default();
            t = n;
        }
    }
    // A tick evaluates every lead anyway; its event leads are kept for the sparse
    // mode, whose tick evaluates them for sure.
    for (at, lead) in store.event_times(opts.from, opts.to).await? {
        plan.entry(at).or_default().leads.push(lead);
    }
    Ok(plan)
}

/// Copies the funnel's own database, read-only, as the scratch starting point: the
/// SQLite file opened read-only, or the PostgreSQL database read in one snapshot.
async fn copy_real_database(url: &str, scratch: &Path) -> Result<(), AppError> {
    let none = |why: &str| {
        AppError::Usage(format!(
            "no leads to simulate: {} {why}; pass --leads CSV (and --events CSV), or import leads first",
            crate::store::redact_url(url)
        ))
    };
    let real = if crate::store::is_postgres(url) {
        let real = Store::open(url).await?;
        if real.schema_version().await? == 0 {
            real.close().await;
            return Err(none("holds no embudo tables yet"));
        }
        real
    } else {
        let Some(file) = crate::store::sqlite_file(url).filter(|f| f.exists()) else {
            return Err(none("does not exist"));
        };
        Store::open(&format!("sqlite://{}?mode=ro", file.display())).await?
    };
    let copied = real.copy_into(scratch).await;
    real.close().await;
    Ok(copied?)
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} simulating [{bar:30}] {pos}/{len} instants ({eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn local(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

fn move_entry(m: &MoveRow, tz: chrono_tz::Tz) -> Entry {
    Entry {
        at: rfc(m.at),
        lead: m.lead.0,
        email: m.email.clone(),
        action: "move",
        what: format!("{} → {}", m.from, m.to),
        key: String::new(),
        state: "moved".into(),
        by: m.cause.clone(),
        detail: String::new(),
        requested_at: rfc(m.at),
        local: local(m.at, tz),
    }
}

fn send_entry(s: &OutboxRow, tz: chrono_tz::Tz) -> Entry {
    let at = s.ended_at.unwrap_or(s.requested_at);
    Entry {
        at: rfc(at),
        lead: s.lead.0,
        email: s.email.to_string(),
        action: "send",
        what: s.template.to_string(),
        key: s.key.clone(),
        state: s.state.as_str().to_string(),
        by: s
            .origin
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        detail: if s.state == OutboxState::Sent {
            String::new()
        } else {
            s.reason.clone().unwrap_or_default()
        },
        requested_at: rfc(s.requested_at),
        local: local(at, tz),
    }
}

/// The output formats of `simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl Simulation {
    /// The whole output in `format`. CSV carries the timeline only (one table a file);
    /// its funnel summary is what `summary_lines` gives, for stderr.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(self).expect("plain data") + "\n",
            Format::Csv => self.csv(),
            Format::Table => self.table(),
        }
    }

    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "at",
            "lead",
            "email",
            "action",
            "what",
            "key",
            "state",
            "by",
            "detail",
            "requested_at",
        ])
        .expect("in memory");
        for e in &self.timeline {
            w.write_record([
                e.at.as_str(),
                &e.lead.to_string(),
                &e.email,
                e.action,
                &e.what,
                &e.key,
                &e.state,
                &e.by,
                &e.detail,
                &e.requested_at,
            ])
            .expect("in memory");
        }
        String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out")
    }

    fn table(&self) -> String {
        let header = [
            format!("time ({})", self.timezone),
            "lead".into(),
            "action".into(),
            "what".into(),
            "state".into(),
            "by".into(),
        ];
        let rows: Vec<[String; 6]> = self
            .timeline
            .iter()
            .map(|e| {
                let what = if e.key.is_empty() {
                    e.what.clone()
                } else {
                    format!("{} [{}]", e.what, e.key)
                };
                let state = if e.detail.is_empty() {
                    e.state.clone()
                } else {
                    format!("{} ({})", e.state, e.detail)
                };
                [
                    e.local.clone(),
                    e.email.clone(),
                    e.action.into(),
                    what,
                    state,
                    e.by.clone(),
                ]
            })
            .collect();
        let mut out = format!(
            "simulated {} → {}: {} lead(s), {} evaluation pass(es), {} event reaction(s), {} campaign firing(s)\n\n",
            self.from,
            self.to,
            self.leads,
            self.passes,
            self.event_reactions,
            self.campaign_firings
        );
        if rows.is_empty() {
            out.push_str("nothing was sent and no lead moved\n");
        } else {
            out.push_str(&columns(&header, &rows));
        }
        out.push('\n');
        out.push_str(&self.summary_lines());
        out
    }

    /// The funnel at the end, the emails per template, and what went wrong.
    pub fn summary_lines(&self) -> String {
        let mut out = format!("funnel at {}:\n", self.to);
        let header: [String; 4] = [
            "stage".into(),
            "leads".into(),
            "reached".into(),
            "to next stage".into(),
        ];
        let rows: Vec<[String; 4]> = self
            .funnel
            .iter()
            .map(|s| {
                [
                    s.stage.clone(),
                    s.leads.to_string(),
                    s.reached.to_string(),
                    s.to_next_text(),
                ]
            })
            .collect();
        out.push_str(&indent(&columns(&header, &rows)));
        if !self.emails.is_empty() {
            out.push_str("emails:\n");
            let header: [String; 2] = ["template".into(), "rows by state".into()];
            let rows: Vec<[String; 2]> = self
                .emails
                .iter()
                .map(|t| {
                    let states: Vec<String> =
                        t.states.iter().map(|(s, n)| format!("{s} {n}")).collect();
                    [t.template.clone(), states.join(", ")]
                })
                .collect();
            out.push_str(&indent(&columns(&header, &rows)));
        }
        for c in &self.conversions {
            out.push_str(&format!(
                "conversion {}: {} of {} ({}), median {}\n",
                c.name,
                c.all.converted,
                c.all.started,
                pct_text(c.all.rate_pct).unwrap_or_else(|| "-".into()),
                c.all.median_delay.as_deref().unwrap_or("-")
            ));
        }
        for w in &self.buying_windows.segments {
            if w.total > 0 {
                let peaks = if w.peak_months.is_empty() {
                    "none".to_string()
                } else {
                    w.peak_months.join(", ")
                };
                out.push_str(&format!(
                    "buying windows ({} `{}` events): peak months {peaks}\n",
                    w.total, self.buying_windows.kind
                ));
            }
        }
        for (e, n) in &self.rule_errors {
            out.push_str(&format!("rule error ({n} evaluation(s) skipped): {e}\n"));
        }
        for b in &self.bad_rows {
            out.push_str(&format!("skipped row: {b}\n"));
        }
        out
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// Left-aligned columns padded to the widest cell (counted in characters).
fn columns<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in std::iter::once(header).chain(rows.iter()) {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width.iter()).enumerate() {
            line.push_str(c);
            if i + 1 < N {
                line.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
