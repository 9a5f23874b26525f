//! The HTTP API (axum), served by `embudo run` on `http.listen`.
//!
//! Write endpoints and personal data need `Authorization: Bearer <token>` (the token
//! from `http.token_env`); the unsubscribe links in emails carry their own signature.
//! Bodies are capped at 1 MiB. Errors are JSON `{"error": "..."}` naming the item and
//! field, and a batch is all or nothing: a bad item stores none.

use crate::app::App;
use crate::clock::Clock;
use crate::domain::{EmailAddress, Event, LeadId, Value, ValueMap};
use crate::ingest::csv::{LeadFields, lead_upsert};
use crate::store::Suppression;
use crate::store::{IdempotencyKey, Replay, StoreError};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// The most items in one batch.
pub const MAX_BATCH: usize = 10_000;

#[derive(Clone)]
struct Api {
    app: App,
    clock: Clock,
    token: Option<String>,
}

/// The router; `token` is the bearer token (`None`: write endpoints refuse).
pub fn router(app: App, clock: Clock) -> Router {
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
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/funnel", get(funnel))
        .route("/leads", axum::routing::post(post_leads))
        .route("/leads/{id}", get(get_lead))
        .route("/events", axum::routing::post(post_events))
        .route("/t/o/{token}", get(opened))
        .route("/t/c/{token}", get(clicked))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see the README's HTTP API section",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Api { app, clock, token })
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
    clock: Clock,
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
    let service = hyper_util::service::TowerToHyperService::new(router(app, clock));
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
                    tracing::warn!("HTTP API: accept: {e}");
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
                tracing::debug!("HTTP connection: {e}");
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
            "HTTP API: connections still open after {DRAIN:?} at shutdown; closing them"
        );
    }
    Ok(())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A store error as the client sees it: 503 with the cause and what to do, never the
/// database's own text (that goes to the log).
fn internal(e: StoreError) -> Response {
    tracing::error!("HTTP API: {e}");
    unavailable(&e)
}

fn unavailable(e: &StoreError) -> Response {
    let (cause, advice) = e.public();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Json(json!({ "error": format!("{cause}: {advice}"), "cause": cause })),
    )
        .into_response()
}

/// A write endpoint's store error: also what `/healthz` reports until a write works.
fn write_failed(api: &Api, e: StoreError) -> Response {
    if e.is_write_failure() {
        let (cause, advice) = e.public();
        api.app.health.write_failed(format!("{cause}: {advice}"));
    }
    internal(e)
}

/// A refusal from a helper, small enough to pass around; a handler turns it into its
/// response with `into_response`.
#[derive(Debug)]
enum Refusal {
    Json(StatusCode, String),
    Page(String),
    /// A page for a person, with this status.
    Status(StatusCode, String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Json(status, message) => error(status, message),
            Refusal::Page(html) => (StatusCode::OK, Html(html)).into_response(),
            Refusal::Status(status, html) => (status, Html(html)).into_response(),
        }
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal::Json(status, message.into())
}

fn broken(e: StoreError) -> Refusal {
    tracing::error!("HTTP API: {e}");
    let (cause, advice) = e.public();
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{cause}: {advice}"),
    )
}

/// Checks the bearer token in constant time.
fn authorised(api: &Api, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = &api.token else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "the API token is not configured: set the variable named by http.token_env",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
        })
        .unwrap_or("");
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ))
    }
}

/// `ok` (200) when nothing is wrong; else 503 with one reason a line: a task down, an
/// overdue pass, or a database that does not take a small write now.
async fn healthz(State(api): State<Api>) -> Response {
    let health = &api.app.health;
    match api.app.store.probe_write(api.clock.now()).await {
        Ok(()) => health.write_ok(),
        Err(e) => {
            tracing::error!("health probe: {e}");
            let (cause, advice) = e.public();
            health.write_failed(format!("{cause}: {advice}"));
        }
    }
    let problems = health.problems();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy\n{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let store = &api.app.store;
    let now = api.clock.now();
    let (stages, outbox, held, paused) = match tokio::try_join!(
        store.stage_now(now),
        store.outbox_counts(),
        store.held(),
        store.paused()
    ) {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let mut out =
        String::from("# HELP embudo_leads Leads in each stage.\n# TYPE embudo_leads gauge\n");
    for (stage, n, _) in &stages {
        out.push_str(&format!("embudo_leads{{stage=\"{stage}\"}} {n}\n"));
    }
    out.push_str("# HELP embudo_outbox Outbox rows in each state.\n# TYPE embudo_outbox gauge\n");
    for (state, n) in &outbox {
        out.push_str(&format!("embudo_outbox{{state=\"{state}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP embudo_held Emails the sending policy holds back, by reason.\n# TYPE embudo_held gauge\n",
    );
    for (reason, n, _) in &held {
        let reason = reason.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!("embudo_held{{reason=\"{reason}\"}} {n}\n"));
    }
    out.push_str(&format!(
        "# HELP embudo_paused 1 while all sending is paused.\n# TYPE embudo_paused gauge\nembudo_paused {}\n",
        u8::from(paused.0)
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn funnel(State(api): State<Api>) -> Response {
    let cfg = api.app.funnel().config.clone();
    match crate::tools::report::report(&api.app.store, &cfg, api.clock.now()).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadIn {
    email: String,
    name: Option<String>,
    stage: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    locale: Option<String>,
    timezone: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    attrs: serde_json::Map<String, serde_json::Value>,
}

/// A JSON scalar as a stored value: strings are typed by inference, as in a CSV.
fn value(v: &serde_json::Value) -> Result<Value, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_f64().map(Value::Float))
            .ok_or_else(|| format!("{n} is out of range")),
        serde_json::Value::String(s) => {
            let n = s.chars().count();
            if n > crate::ingest::csv::MAX_VALUE {
                return Err(format!(
                    "{n} characters; a value holds at most {}",
                    crate::ingest::csv::MAX_VALUE
                ));
            }
            Ok(Value::infer(s))
        }
        other => Err(format!("{other} is not a string, number or boolean")),
    }
}

fn values(
    map: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<ValueMap, String> {
    let out = map
        .iter()
        .map(|(k, v)| {
            value(v)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("{field}.{k}: {e}"))
        })
        .collect::<Result<ValueMap, String>>()?;
    // The same limits as a CSV import's.
    crate::ingest::csv::check_values(field, &out)?;
    Ok(out)
}

fn batch<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<Vec<T>, Refusal> {
    let items: Vec<serde_json::Value> = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(one @ serde_json::Value::Object(_)) => vec![one],
        Ok(_) => {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the body must be a JSON array of {what} (or one object)"),
            ));
        }
        Err(e) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not JSON: {e} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            ));
        }
    };
    if items.len() > MAX_BATCH {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} {what} in one request; send at most {MAX_BATCH}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| {
                refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{what}[{i}]: {e}"),
                )
            })
        })
        .collect()
}

/// A write endpoint's body, once the token is checked.
fn authorised_batch<T: for<'de> Deserialize<'de>>(
    api: &Api,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<Vec<T>, Refusal> {
    authorised(api, headers)?;
    batch(body, what)
}

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The request's `Idempotency-Key`, with the hash of its body, if it has one.
fn idempotency(
    headers: &HeaderMap,
    endpoint: &str,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, Refusal> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().map(str::trim).unwrap_or("");
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Idempotency-Key: give 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters (a UUID, say), one per request"
            ),
        ));
    }
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some(IdempotencyKey {
        endpoint: endpoint.to_string(),
        key: key.to_string(),
        hash,
    }))
}

/// The answer for a key seen before: the first answer again, or 422 for another body.
fn replay(k: &IdempotencyKey, r: Replay) -> Response {
    match r {
        Replay::Same { status, response } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::HeaderName::from_static("idempotent-replayed"),
                    "true",
                ),
            ],
            response,
        )
            .into_response(),
        Replay::Conflict | Replay::Fresh => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "Idempotency-Key `{}` was used within 24 h with another body; a new request needs a new key",
                k.key
            ),
        ),
    }
}

/// A JSON answer from its text, as first sent and as replayed.
fn json_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn post_leads(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let items: Vec<LeadIn> = match authorised_batch(&api, &headers, &body, "leads") {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let idem = match idempotency(&headers, "leads", &body) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let funnel = api.app.funnel();
    let mut rows = Vec::with_capacity(items.len());
    for (i, l) in items.iter().enumerate() {
        let attrs = match values(&l.attrs, "attrs") {
            Ok(a) => a,
            Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("leads[{i}].{e}")),
        };
        let fields = LeadFields {
            email: &l.email,
            name: l.name.as_deref(),
            stage: l.stage.as_deref(),
            tags: l.tags.clone(),
            locale: l.locale.as_deref(),
            timezone: l.timezone.as_deref(),
            created_at: l.created_at.as_deref(),
            attrs,
        };
        match lead_upsert(fields, &funnel.config) {
            Ok(u) => rows.push(u),
            Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("leads[{i}].{e}")),
        }
    }
    let now = api.clock.now();
    let initial = funnel.config.stages.initial().clone();
    let store = &api.app.store;
    // The key's answer is written in the transaction that stores the leads: both or
    // neither, and the answer is sent only once the commit succeeded.
    let done = async {
        let mut tx = store.begin_write().await?;
        if let Some(k) = &idem {
            let seen = crate::store::idempotency_lookup(&mut tx, k, now).await?;
            if seen != Replay::Fresh {
                tx.commit().await?;
                return Ok(Err(seen));
            }
        }
        let results = crate::store::upsert_leads_in(&mut tx, &rows, &initial, false, now).await?;
        let ids: Vec<i64> = results.iter().map(|r| r.id().0).collect();
        let created = results
            .iter()
            .filter(|r| matches!(r, crate::store::UpsertResult::Created(_)))
            .count();
        let answer =
            json!({ "created": created, "updated": ids.len() - created, "ids": ids }).to_string();
        if let Some(k) = &idem {
            crate::store::idempotency_save(&mut tx, k, 200, &answer, now).await?;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(Ok(answer))
    };
    match done.await {
        Ok(Ok(answer)) => {
            api.app.health.write_ok();
            json_text(answer)
        }
        Ok(Err(seen)) => replay(idem.as_ref().expect("only a key is replayed"), seen),
        Err(e) => write_failed(&api, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    /// The lead, by email or id.
    #[serde(alias = "email")]
    lead: serde_json::Value,
    kind: String,
    at: Option<String>,
    /// The event's own id (unique per lead): a second event with it is a duplicate.
    id: Option<String>,
    #[serde(default)]
    props: serde_json::Map<String, serde_json::Value>,
}

async fn post_events(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let items: Vec<EventIn> = match authorised_batch(&api, &headers, &body, "events") {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let idem = match idempotency(&headers, "events", &body) {
        Ok(k) => k,
        Err(r) => return r.into_response(),
    };
    let now = api.clock.now();
    let mut events: Vec<(LeadId, Event, Option<String>)> = Vec::with_capacity(items.len());
    for (i, e) in items.iter().enumerate() {
        let who = match &e.lead {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("events[{i}].lead: give the lead's email or id"),
                );
            }
        };
        let id = match api.app.store.find_lead_id(&who).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("events[{i}].lead: no lead `{who}`; POST it to /leads first"),
                );
            }
            Err(e) => return internal(e),
        };
        if let Err(m) = crate::domain::ids::check_name("event kind", &e.kind) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("events[{i}].kind: {m}"),
            );
        }
        if let Some(event_id) = &e.id
            && let Err(m) = crate::ingest::csv::check_event_id(event_id)
        {
            return error(StatusCode::UNPROCESSABLE_ENTITY, format!("events[{i}].{m}"));
        }
        let at = match e
            .at
            .as_deref()
            .map(crate::domain::time::parse_instant_or_date)
        {
            None => now,
            Some(Ok(t)) => t,
            Some(Err(m)) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("events[{i}].at: {m}"),
                );
            }
        };
        let props = match values(&e.props, "props") {
            Ok(p) => p,
            Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("events[{i}].{m}")),
        };
        events.push((
            id,
            Event {
                kind: e.kind.clone(),
                at,
                props,
            },
            e.id.clone(),
        ));
    }
    let store = &api.app.store;
    let answer = |r: crate::store::Recorded, queued: usize, moves: usize| {
        json!({ "recorded": r.recorded, "duplicates": r.duplicates, "queued": queued, "moves": moves })
            .to_string()
    };
    // The events and the key's first answer in one transaction; the answer is sent only
    // once it committed.
    let done = async {
        let mut tx = store.begin_write().await?;
        if let Some(k) = &idem {
            let seen = crate::store::idempotency_lookup(&mut tx, k, now).await?;
            if seen != Replay::Fresh {
                tx.commit().await?;
                return Ok(Err(seen));
            }
        }
        let recorded = crate::store::insert_events_in(&mut tx, &events, now).await?;
        if let Some(k) = &idem {
            crate::store::idempotency_save(&mut tx, k, 200, &answer(recorded, 0, 0), now).await?;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(Ok(recorded))
    };
    let recorded = match done.await {
        Ok(Ok(r)) => {
            api.app.health.write_ok();
            r
        }
        Ok(Err(seen)) => return replay(idem.as_ref().expect("only a key is replayed"), seen),
        Err(e) => return write_failed(&api, e),
    };
    // An event makes its lead's rules run at once (at the daemon's clock: an event
    // dated later is read when its time comes); the sender delivers within a second.
    // Leads whose events were all duplicates have nothing new to run on.
    let funnel = api.app.funnel();
    let (mut queued, mut moves) = (0, 0);
    let mut leads: Vec<LeadId> = events.iter().map(|(id, _, _)| *id).collect();
    leads.sort();
    leads.dedup();
    if recorded.recorded == 0 {
        leads.clear();
    }
    let mut failed = None;
    for id in leads {
        match crate::engine::pass::evaluate_lead(&api.app.store, &funnel, id, now).await {
            Ok(Some(r)) => {
                queued += r.queued;
                moves += r.moves;
                r.log_errors();
            }
            Ok(None) => {}
            Err(e) => {
                // The events are stored (and acknowledged below): the next pass runs
                // these rules again.
                tracing::error!(
                    lead = id.0,
                    "rules after an event: {e}; the next pass runs them"
                );
                if e.is_write_failure() {
                    let (cause, advice) = e.public();
                    api.app.health.write_failed(format!("{cause}: {advice}"));
                }
                failed = Some(e);
            }
        }
    }
    let body = answer(recorded, queued, moves);
    if failed.is_none()
        && let Some(k) = &idem
        && let Err(e) = store.idempotency_update(k, 200, &body).await
    {
        tracing::warn!("keeping the answer for Idempotency-Key {}: {e}", k.key);
    }
    json_text(body)
}

async fn get_lead(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorised(&api, &headers) {
        return r.into_response();
    }
    let store = &api.app.store;
    let now = api.clock.now();
    let lead_id = match store.find_lead_id(&id).await {
        Ok(Some(l)) => l,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no lead `{id}`")),
        Err(e) => return internal(e),
    };
    let (loaded, history, outbox) = match tokio::try_join!(
        store.load_lead(lead_id, now),
        store.stage_history(lead_id),
        store.outbox_of(lead_id)
    ) {
        Ok((Some(l), h, o)) => (l, h, o),
        Ok((None, _, _)) => return error(StatusCode::NOT_FOUND, format!("no lead `{id}`")),
        Err(e) => return internal(e),
    };
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let l = &loaded.lead;
    let attrs: serde_json::Map<String, serde_json::Value> = l
        .attrs
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.to_string())))
        .collect();
    Json(json!({
        "id": l.id.0,
        "email": l.email.as_str(),
        "name": l.name,
        "stage": l.stage.as_str(),
        "stage_entered_at": rfc(l.stage_entered_at),
        "created_at": rfc(l.created_at),
        "tags": l.tags,
        "attrs": attrs,
        "locale": l.locale,
        "timezone": l.timezone.map(|z| z.to_string()),
        "unsubscribed": l.unsubscribed_at.is_some(),
        "events": loaded.events.iter().map(|e| json!({
            "kind": e.kind,
            "at": rfc(e.at),
            "props": e.props.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "sends": outbox.iter().map(|(t, k, s, req, sent, _)| json!({
            "template": t, "key": k, "state": s, "requested_at": rfc(*req), "sent_at": sent.map(rfc),
        })).collect::<Vec<_>>(),
        "stage_history": history.iter().map(|(from, to, at, cause)| json!({
            "from": from, "to": to, "at": rfc(*at), "cause": cause,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// The lead a genuine unsubscribe token names, if its address still matches.
async fn token_lead(api: &Api, token: &str) -> Result<EmailAddress, Refusal> {
    let Some((id, digest)) = signer(api).verify_unsubscribe(token) else {
        // A person in a browser reads this: a page, not JSON.
        return Err(Refusal::Status(
            StatusCode::NOT_FOUND,
            page(
                "This link is not valid",
                "<p>It may have been cut short by your mail client: open the whole link from the email, or reply to the email and ask us to remove you.</p>",
            ),
        ));
    };
    let lead = api.app.store.lead_brief(LeadId(id)).await.map_err(broken)?;
    match lead {
        Some(l) if l.email.digest().starts_with(&digest) => Ok(l.email),
        // Forgotten, or the id now belongs to someone else: nothing to do, and say so
        // without naming anyone.
        _ => Err(Refusal::Page(page(
            "You are unsubscribed",
            "This address receives no more emails from us.",
        ))),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{title}</h1>{body}</body></html>"
    )
}

/// GET: a page with one button. Mail scanners follow links; only the button (or a
/// one-click POST from the mail client) unsubscribes.
async fn unsubscribe_page(State(api): State<Api>, Path(token): Path<String>) -> Response {
    match token_lead(&api, &token).await {
        Err(r) => r.into_response(),
        Ok(_) => Html(page(
            "Unsubscribe",
            "<p>Stop all marketing emails to this address?</p><form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
        ))
        .into_response(),
    }
}

/// POST: the one-click unsubscribe of RFC 8058 (`List-Unsubscribe=One-Click`), or the
/// page's button.
async fn unsubscribe(State(api): State<Api>, Path(token): Path<String>) -> Response {
    let email = match token_lead(&api, &token).await {
        Ok(e) => e,
        Err(r) => return r.into_response(),
    };
    let now = api.clock.now();
    if let Err(e) = api
        .app
        .store
        .suppress(&email, Suppression::Unsubscribed, "unsubscribe link", now)
        .await
    {
        return internal(e);
    }
    tracing::info!(email = %email, "unsubscribed by link");
    Html(page(
        "You are unsubscribed",
        "<p>This address receives no more marketing emails from us. Receipts for your orders still arrive.</p>",
    ))
    .into_response()
}

/// A transparent 1×1 GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// How long a repeat of the same open or click (the same token) counts as the same.
pub const TRACKING_WINDOW: chrono::Duration = chrono::Duration::minutes(1);

/// Records an `open` or `click` event and runs the lead's rules at once, as for any
/// event (`has_event("click")`, `last_event_props("click").url`). The same token again
/// within [`TRACKING_WINDOW`] (an image proxy, a double click) records nothing and runs
/// nothing. A lead since forgotten, or an id now someone else's (the address digest
/// differs), records nothing.
async fn record(api: &Api, who: &crate::delivery::tracking::Who, kind: &str, props: ValueMap) {
    let now = api.clock.now();
    let id = LeadId(who.lead);
    let result = async {
        match api.app.store.lead_brief(id).await? {
            Some(l) if l.email.digest().starts_with(&who.digest) => {}
            _ => return Ok(()),
        }
        let event = Event {
            kind: kind.to_string(),
            at: now,
            props,
        };
        if !api
            .app
            .store
            .record_tracking(id, &event, TRACKING_WINDOW, now)
            .await?
        {
            return Ok(());
        }
        if let Some(r) =
            crate::engine::pass::evaluate_lead(&api.app.store, &api.app.funnel(), id, now).await?
        {
            r.log_errors();
        }
        Ok::<(), crate::store::StoreError>(())
    };
    if let Err(e) = result.await {
        tracing::error!("recording a {kind}: {e}");
    }
}

fn signer(api: &Api) -> &crate::delivery::signing::Signer {
    api.app.deliverer.signer()
}

async fn opened(State(api): State<Api>, Path(token): Path<String>) -> Response {
    if let Some((who, template)) = crate::delivery::tracking::open(signer(&api), &token) {
        let props = ValueMap::from([("template".to_string(), Value::Str(template))]);
        record(&api, &who, "open", props).await;
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL.to_vec(),
    )
        .into_response()
}

/// Redirects to the link's own target, which the signature covers: a token cannot
/// send anyone anywhere else.
async fn clicked(State(api): State<Api>, Path(token): Path<String>) -> Response {
    let Some((who, template, url)) = crate::delivery::tracking::click(signer(&api), &token) else {
        return error(
            StatusCode::NOT_FOUND,
            "this link is not valid (it may have been cut short by the mail client)",
        );
    };
    let props = ValueMap::from([
        ("template".to_string(), Value::Str(template)),
        ("url".to_string(), Value::Str(url.clone())),
    ]);
    record(&api, &who, "click", props).await;
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}
