//! `GET /metrics`: Prometheus gauges of stages, the outbox, held emails and the pause.

use super::Api;
use super::error::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

pub(super) async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let store = &api.app.store;
    let now = api.app.clock.now();
    let (stages, outbox, held, paused) = tokio::try_join!(
        store.stage_now(now),
        store.outbox_counts(),
        store.held(),
        store.paused()
    )?;
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
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
