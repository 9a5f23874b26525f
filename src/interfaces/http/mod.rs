//! The HTTP API (axum), served by `embudo run` on `http.listen`.
//!
//! Write endpoints and personal data need `Authorization: Bearer <token>` (the token
//! from `http.token_env`); the unsubscribe links in emails carry their own signature.
//! Bodies are capped at 1 MiB. Errors are JSON `{"error": "..."}` naming the item and
//! field, and a batch is all or nothing: a bad item stores none.
//!
//! This file holds the router (every route, in one place) and the server loop; each
//! resource's handlers live in their own module, and [`error::ApiError`] is how every
//! handler says no.

mod auth;
mod batch;
mod error;
mod events;
mod funnel;
mod health;
mod idempotency;
mod leads;
mod metrics;
mod tracking;
mod unsubscribe;

pub use batch::MAX_BATCH;
pub use idempotency::MAX_IDEMPOTENCY_KEY;
pub use tracking::TRACKING_WINDOW;

use crate::app::App;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use error::ApiError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Instrument;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler is given: the application (its clock is the daemon's) and the
/// token.
#[derive(Clone)]
struct Api {
    app: App,
    /// The bearer token (`None`: write endpoints refuse everyone).
    token: Option<String>,
}

/// The router; the bearer token is read from the variable `http.token_env` names.
pub fn router(app: App) -> Router {
    let cfg = &app.funnel().config;
    let token = std::env::var(&cfg.http.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!(
            env = %cfg.http.token_env,
            "no API token in the environment: POST /leads, POST /events and GET /leads/ID answer 401 until {} is set",
            cfg.http.token_env
        );
    }
    Router::new()
        .route("/", get(funnel::dashboard))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/funnel", get(funnel::funnel))
        .route("/leads", post(leads::post_leads))
        .route("/leads/{id}", get(leads::get_lead))
        .route("/events", post(events::post_events))
        .route("/t/o/{token}", get(tracking::opened))
        .route("/t/c/{token}", get(tracking::clicked))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::unsubscribe),
        )
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see the README's HTTP API section".into())
        })
        .layer(middleware::from_fn(traced))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Api { app, token })
}

/// One span per request: its method, its route (the pattern, never the path: paths
/// carry signed tokens) and a request id, with the status recorded once answered.
async fn traced(request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_string();
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        route = %route,
        request = id,
        status = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    tracing::debug!(parent: &span, "answered");
    response
}

/// How long a client has to send a request's headers; also how long an idle
/// keep-alive connection stays open waiting for the next request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections served at once; more wait in the listen queue until one ends.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection may take to finish its request at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the API until `shutdown`: HTTP/1.1 over a connection-limited accept loop,
/// each connection with a header-read (and keep-alive idle) timeout.
pub async fn serve(
    app: App,
    listen: String,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("http.listen {listen}: {e}")))?;
    let listen = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen);
    tracing::info!(%listen, "HTTP API listening");
    let service = hyper_util::service::TowerToHyperService::new(router(app));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    loop {
        // A slot first: beyond the limit, new connections wait in the kernel's queue.
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "HTTP API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain = ?DRAIN,
            "HTTP API: connections still open at shutdown; closing them"
        );
    }
    Ok(())
}
