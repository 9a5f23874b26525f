//! `embudo run`: the evaluation tick on its cron schedule and the sender, until
//! Ctrl-C or SIGTERM; both finish their current unit of work before exiting.

use crate::app::{App, AppError};
use crate::clock::Clock;
use crate::delivery::{Lease, SenderLease};
use crate::engine::schedule;
use crate::funnel::reload;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The sender looks for due rows at least this often, so an event's email leaves
/// within a second of being queued by another process.
const POLL: Duration = Duration::from_millis(250);

/// How often the funnel folder is looked at for changes.
const WATCH: Duration = Duration::from_millis(500);

/// How long the folder must stand still before a change is taken.
const SETTLE: Duration = Duration::from_millis(1500);

/// How `embudo run` was asked to run, beyond the funnel folder.
#[derive(Debug, Clone)]
pub struct Options {
    /// Overrides `http.listen`.
    pub listen: Option<String>,
    /// After SIGTERM or Ctrl-C, how long the work in hand may take before the daemon
    /// exits anyway (emails still in flight then are retried by the next sender, with
    /// their Message-IDs).
    pub shutdown_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

pub async fn run(
    app: App,
    clock: Clock,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let funnel = app.funnel();
    let cfg = &funnel.config;
    tracing::info!(
        config = %cfg.path.display(),
        database = %cfg.database,
        smtp = %cfg.smtp.url,
        tick = %cfg.schedule.tick.source,
        timezone = %cfg.schedule.timezone.0,
        rules = funnel.rules.rules.len(),
        templates = funnel.templates.ids().len(),
        now = %clock.now(),
        "embudo running"
    );
    match reload::still_used(&app.store, &funnel, None).await {
        Ok(problems) => {
            for p in problems {
                tracing::error!("{p}");
            }
        }
        Err(e) => tracing::error!("cannot check the stages in use: {e}"),
    }
    greet(&app, &clock, &options).await;
    let wake_sender = Arc::new(Notify::new());

    // Every task is supervised: one that panics or gives up is logged, shown by
    // /healthz, and started again after a backoff; the others go on meanwhile.
    let ticker = {
        let (app, shutdown, wake) = (app.clone(), shutdown.clone(), wake_sender.clone());
        supervise("ticker", app.health.clone(), shutdown.clone(), move || {
            ticker(app.clone(), clock, shutdown.clone(), wake.clone())
        })
    };
    let sender = {
        let (app, shutdown, wake) = (app.clone(), shutdown.clone(), wake_sender.clone());
        supervise("sender", app.health.clone(), shutdown.clone(), move || {
            sender(app.clone(), clock, shutdown.clone(), wake.clone())
        })
    };
    let http = {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        let listen = options
            .listen
            .clone()
            .unwrap_or_else(|| app.funnel().config.http.listen.clone());
        supervise("http", app.health.clone(), shutdown.clone(), move || {
            let (app, shutdown, listen) = (app.clone(), shutdown.clone(), listen.clone());
            async move {
                if let Err(e) =
                    crate::interfaces::http::serve(app, clock, listen, shutdown.clone()).await
                {
                    tracing::error!(
                        "the HTTP API is not running ({e}); the rest of the daemon is; free the address or change http.listen (or run --listen)"
                    );
                }
            }
        })
    };
    let watcher = {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        supervise("reload", app.health.clone(), shutdown.clone(), move || {
            watch(app.clone(), shutdown.clone())
        })
    };
    let campaigner = {
        let (app, shutdown, wake) = (app.clone(), shutdown.clone(), wake_sender.clone());
        supervise(
            "campaigns",
            app.health.clone(),
            shutdown.clone(),
            move || campaigns(app.clone(), clock, shutdown.clone(), wake.clone()),
        )
    };

    let all = async {
        let _ = tokio::join!(ticker, sender, watcher, campaigner, http);
    };
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(options.shutdown_timeout).await;
    };
    tokio::select! {
        _ = all => {
            tracing::info!("embudo stopped");
            app.store.close().await;
        }
        _ = deadline => {
            tracing::error!(
                timeout_s = options.shutdown_timeout.as_secs_f64(),
                "the work in hand did not finish in time; exiting anyway: emails still in flight are retried by the next sender with their Message-IDs"
            );
        }
    }
    Ok(())
}

/// Seeds a new demo database (`seed:`) and tells the operator where to look: where
/// the emails go, how to see the ones that wait, and what to do when there are no
/// leads yet, so a first run is never silent.
async fn greet(app: &App, clock: &Clock, options: &Options) {
    let funnel = app.funnel();
    let cfg = &funnel.config;
    match crate::ingest::seed::seed_new_database(&app.store, cfg, clock.now()).await {
        Ok(Some(s)) => {
            let n = |r: &Option<crate::ingest::csv::ImportReport>| {
                r.as_ref()
                    .map(|r| r.created + r.updated + r.events)
                    .unwrap_or(0)
            };
            tracing::info!(
                leads = n(&s.leads),
                events = n(&s.events),
                "seeded the new database with the sample data named by `seed:` in {}; remove that key for a funnel of your own",
                cfg.display_path(&cfg.path)
            );
        }
        Ok(None) => {}
        Err(e) => tracing::error!("the sample data (`seed:`) was not imported: {e}"),
    }
    match &cfg.smtp.transport {
        crate::funnel::config::Transport::File(dir) => tracing::info!(
            "emails are written as .eml files into {}; `embudo outbox list` shows every email's state (sent, held until when and why, retry)",
            tidy(dir).display()
        ),
        _ => tracing::info!(
            "emails go to {}; `embudo outbox list` shows every email's state (sent, held until when and why, retry)",
            cfg.smtp.url
        ),
    }
    if let Ok(0) = app.store.lead_count().await {
        // Port 0 means "any free port": the one taken is logged when the API binds.
        let listen = options.listen.as_deref().unwrap_or(&cfg.http.listen);
        let at = if listen.ends_with(":0") {
            "/leads on the HTTP API (its address is logged as it starts)".to_string()
        } else {
            format!("http://{listen}/leads")
        };
        tracing::warn!(
            "no leads yet: import some with `embudo import leads.csv` (columns email,name,stage,tags,…) or POST them to {at}; each pass evaluates every lead"
        );
    }
}

/// `./././x` as `./x`: a path as the user wrote it, without the `./` that joining
/// relative paths piles up.
fn tidy(p: &std::path::Path) -> std::path::PathBuf {
    let rest: std::path::PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if p.is_relative() {
        std::path::Path::new(".").join(rest)
    } else {
        rest
    }
}

/// Evaluates at start-up, then at each firing of `schedule.tick`.
async fn ticker(app: App, clock: Clock, shutdown: CancellationToken, wake: Arc<Notify>) {
    // One pass at start-up, so a fresh daemon does not wait for the first firing.
    run_pass(&app, &clock).await;
    wake.notify_one();
    let mut last = clock.now();
    loop {
        // Read each time: a reload may change the schedule.
        let funnel = app.funnel();
        let cron = funnel.config.schedule.tick.clone();
        let tz = funnel.config.schedule.timezone.0;
        let Some(next) = schedule::next_after(&cron, tz, last) else {
            tracing::warn!(
                "the tick schedule never fires again; evaluation stops, sending goes on"
            );
            app.health.pass_done(None);
            shutdown.cancelled().await;
            return;
        };
        let wait = (next - clock.now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        run_pass(&app, &clock).await;
        wake.notify_one();
        let now = clock.now();
        let missed = schedule::between(&cron, tz, next, now, 10_000).len();
        if missed > 0 {
            tracing::warn!(
                missed,
                "the pass outlasted {missed} tick firing(s); they are coalesced into the next one"
            );
        }
        last = now;
    }
}

/// Holds the sender lease and delivers what is due, round after round.
async fn sender(app: App, clock: Clock, shutdown: CancellationToken, wake: Arc<Notify>) {
    let lease = SenderLease::new();
    let mut backoff = POLL;
    let mut waiting_for: Option<String> = None;
    let mut was_paused = false;
    loop {
        match lease.acquire(&app.store).await {
            Ok(Lease::Busy { holder }) => {
                if waiting_for.as_ref() != Some(&holder) {
                    tracing::warn!(%holder, "another sender delivers from this database; this daemon evaluates and waits to take over");
                    waiting_for = Some(holder);
                }
                backoff = Duration::from_secs(2);
            }
            Ok(_) => {
                waiting_for = None;
                // The lease is renewed all round long, however long the round; if it
                // is lost anyway, the round stops between two sends.
                let stop = shutdown.child_token();
                let _keep = lease.keep_alive(&app.store, stop.clone());
                let paused;
                (backoff, paused) = deliver_round(&app, &clock, backoff, &stop).await;
                if let Some(p) = paused
                    && p != was_paused
                {
                    if p {
                        tracing::warn!(
                            "sending is paused (embudo pause): nothing leaves until `embudo resume`"
                        );
                    } else {
                        tracing::info!("sending resumed");
                    }
                    was_paused = p;
                }
            }
            Err(e) => {
                backoff = (backoff * 2).min(Duration::from_secs(30));
                tracing::error!(
                    retry_in_ms = backoff.as_millis() as u64,
                    "delivery paused: {e}"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => {
                let _ = lease.release(&app.store).await;
                return;
            }
        }
    }
}

/// Runs the task `make` builds until shutdown. A task that panics or returns early is
/// logged, marked down in `health` (so `/healthz` says so), and started again after a
/// backoff (1 s, doubling to a minute); it counts as up again once it has run for
/// half a minute.
async fn supervise<F, Fut>(
    name: &'static str,
    health: crate::app::health::Health,
    shutdown: CancellationToken,
    make: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    const STEADY: Duration = Duration::from_secs(30);
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut task = tokio::spawn(make());
        let result = tokio::select! {
            r = &mut task => r,
            _ = tokio::time::sleep(STEADY) => {
                health.task_up(name);
                backoff = Duration::from_secs(1);
                task.await
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        let why = match result {
            Ok(()) => "it stopped".to_string(),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
            Err(e) => e.to_string(),
        };
        tracing::error!(
            task = name,
            restart_in_s = backoff.as_secs(),
            "the daemon's {name} task died ({why}); it is restarted"
        );
        health.task_down(name, why);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// The message of a panic payload.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Fires each campaign at its computed instants (and, at start-up, what was missed,
/// as `missed:` says). Wakes at least once a minute, so a reload's new campaign or
/// schedule is taken up.
async fn campaigns(app: App, clock: Clock, shutdown: CancellationToken, wake: Arc<Notify>) {
    loop {
        match app.fire_campaigns(clock.now()).await {
            Ok(fired) => {
                if fired.iter().any(|f| f.queued > 0) {
                    wake.notify_one();
                }
            }
            Err(e) => tracing::error!("campaigns not fired, retrying: {e}"),
        }
        let funnel = app.funnel();
        let now = clock.now();
        let next = funnel
            .config
            .campaigns
            .iter()
            .filter_map(|c| crate::engine::campaigns::next_firing(c, &funnel, now))
            .min();
        let wait = next
            .map(|n| (n - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Polls the funnel folder and swaps in each valid change; an invalid one is logged
/// with its positions and the running version stays.
async fn watch(app: App, shutdown: CancellationToken) {
    let fp = |app: &App| {
        let cfg = app.funnel().config.clone();
        async move {
            tokio::task::spawn_blocking(move || reload::fingerprint(&cfg))
                .await
                .unwrap_or_default()
        }
    };
    // The settings a reload cannot change are the ones the daemon started with.
    let started = app.funnel().config.clone();
    let mut seen = fp(&app).await;
    let mut settled = seen;
    let mut still_since = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = fp(&app).await;
        if now != seen {
            seen = now;
            still_since = std::time::Instant::now();
            continue;
        }
        // Act once the files have stood still for a moment: not on a file an editor
        // is still writing.
        if now == settled || still_since.elapsed() < SETTLE {
            continue;
        }
        settled = now;
        let old = app.funnel();
        match reload::prepare(&old.config.path, &app.store, &old, chrono::Utc::now()).await {
            Ok(mut new) => {
                let restart = reload::keep_restart_settings(&started, &mut new.config);
                if !restart.is_empty() {
                    tracing::warn!(
                        settings = %restart.join(", "),
                        "restart required: the running daemon keeps the old {}",
                        restart.join(", ")
                    );
                }
                tracing::info!(
                    rules = new.rules.rules.len(),
                    templates = new.templates.ids().len(),
                    campaigns = new.config.campaigns.len(),
                    "reloaded the funnel"
                );
                app.cell.swap(Arc::new(new));
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!("reload rejected: {p}");
                }
                tracing::error!(
                    problems = problems.len(),
                    "the change was not applied; the last good version keeps running"
                );
            }
        }
    }
}

/// One delivery round; returns how long to wait before the next, and whether sending
/// is paused (when the round could tell).
async fn deliver_round(
    app: &App,
    clock: &Clock,
    backoff: Duration,
    stop: &CancellationToken,
) -> (Duration, Option<bool>) {
    match app
        .deliverer
        .deliver_due(&app.funnel(), || clock.now(), stop)
        .await
    {
        Ok(r) => {
            if r.touched() > 0 {
                tracing::info!(
                    sent = r.sent,
                    held = r.held,
                    retried = r.retried,
                    failed = r.failed,
                    stale = r.stale,
                    expired = r.expired,
                    suppressed = r.suppressed,
                    bounced = r.bounced,
                    "delivery round"
                );
            }
            (POLL, Some(r.paused))
        }
        Err(e) => {
            let backoff = (backoff * 2).min(Duration::from_secs(30));
            tracing::error!(
                retry_in_ms = backoff.as_millis() as u64,
                "delivery paused, nothing is lost: {e}"
            );
            (backoff, None)
        }
    }
}

async fn run_pass(app: &App, clock: &Clock) {
    match app.evaluate(clock.now()).await {
        Ok(_) => {
            // Overdue when the next pass has not finished within two tick intervals.
            let funnel = app.funnel();
            let (cron, tz) = (
                &funnel.config.schedule.tick,
                funnel.config.schedule.timezone.0,
            );
            let now = clock.now();
            let within = schedule::next_after(cron, tz, now)
                .and_then(|a| Some((a, schedule::next_after(cron, tz, a)?)))
                .and_then(|(a, b)| (b - now + (b - a)).to_std().ok());
            app.health.pass_done(within);
        }
        Err(e) => tracing::error!("evaluation pass failed, the next tick tries again: {e}"),
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing the current work");
        token.cancel();
    });
}
