//! `embudo run`: the evaluation tick, campaign firings and the reload poll as jobs of
//! tokio-cron-scheduler (`jobs`), the sender and the HTTP API as supervised tasks,
//! until Ctrl-C or SIGTERM; each finishes its current unit of work before exiting.

mod campaigns;
mod jobs;
mod sender;
mod supervise;
mod tick;
mod watch;

use crate::app::{App, AppError};
use crate::clock::Clock;
use crate::funnel::reload;
use jobs::Jobs;
use std::sync::Arc;
use std::time::Duration;
use supervise::supervise;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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

/// Runs the daemon until `shutdown` (SIGTERM, Ctrl-C): then the scheduler stops, each
/// task finishes its unit of work, and the daemon exits, after `shutdown_timeout` at
/// the latest.
/// Every task runs on the app's clock.
pub async fn run(app: App, options: Options, shutdown: CancellationToken) -> Result<(), AppError> {
    let clock = app.clock;
    announce(&app, &clock).await;
    greet(&app, &clock, &options).await;
    let jobs = Jobs::start(clock, app.health.clone(), shutdown.clone())
        .await
        .map_err(|e| AppError::Scheduler(e.to_string()))?;
    let wake_sender = Arc::new(Notify::new());
    schedule_jobs(&jobs, &app, clock, &wake_sender);
    let all = async {
        let _ = tokio::join!(
            jobs.finished(),
            sender_task(&app, clock, &shutdown, &wake_sender),
            http_task(&app, &options, &shutdown),
        );
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

/// Logs what runs, and any stage still used by leads that the funnel no longer has.
async fn announce(app: &App, clock: &Clock) {
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
        Err(e) => tracing::error!(error = %e, "cannot check the stages in use"),
    }
}

/// The daemon's recurring work, each a chain of one-shot jobs at computed instants:
/// the evaluation tick, campaign firings, and the reload poll.
fn schedule_jobs(jobs: &Jobs, app: &App, clock: Clock, wake: &Arc<Notify>) {
    let (a, w) = (app.clone(), wake.clone());
    jobs.chain("ticker", move |firing| {
        tick::step(a.clone(), clock, w.clone(), firing)
    });
    let (a, w) = (app.clone(), wake.clone());
    jobs.chain("campaigns", move |_| {
        campaigns::step(a.clone(), clock, w.clone())
    });
    let (a, watcher) = (app.clone(), watch::Watcher::default());
    jobs.chain("reload", move |firing| {
        let (a, watcher) = (a.clone(), watcher.clone());
        async move { watcher.step(a, clock, firing).await }
    });
}

/// The sender, supervised: it runs whenever there is something to deliver.
async fn sender_task(app: &App, clock: Clock, shutdown: &CancellationToken, wake: &Arc<Notify>) {
    let (app, shutdown, wake) = (app.clone(), shutdown.clone(), wake.clone());
    supervise("sender", app.health.clone(), shutdown.clone(), move || {
        sender::run(app.clone(), clock, shutdown.clone(), wake.clone())
    })
    .await
}

/// The HTTP API, supervised; one that cannot bind leaves the rest of the daemon running.
async fn http_task(app: &App, options: &Options, shutdown: &CancellationToken) {
    let (app, shutdown) = (app.clone(), shutdown.clone());
    let listen = options
        .listen
        .clone()
        .unwrap_or_else(|| app.funnel().config.http.listen.clone());
    supervise("http", app.health.clone(), shutdown.clone(), move || {
        let (app, shutdown, listen) = (app.clone(), shutdown.clone(), listen.clone());
        async move {
            if let Err(e) =
                crate::interfaces::http::serve(app, listen, shutdown.clone()).await
            {
                tracing::error!(
                    error = %e,
                    "the HTTP API is not running; the rest of the daemon is; free the address or change http.listen (or run --listen)"
                );
            }
        }
    })
    .await
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
        Err(e) => tracing::error!(error = %e, "the sample data (`seed:`) was not imported"),
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
