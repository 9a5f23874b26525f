//! `GET /healthz`, and how the write endpoints tell it whether the database takes
//! writes: a failed write shows there until a write works again.

use super::Api;
use super::error::ApiError;
use crate::store::StoreError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

impl Api {
    /// A write endpoint's store error: also what `/healthz` reports until a write works.
    pub(super) fn write_failed(&self, e: StoreError) -> ApiError {
        self.note_write_failure(&e);
        ApiError::Store(e)
    }

    /// Notes a failure to write at all (disk, permissions, lock) for `/healthz`; a
    /// problem with one statement is not the database's health.
    pub(super) fn note_write_failure(&self, e: &StoreError) {
        if e.is_write_failure() {
            let (cause, advice) = e.public();
            self.app.health.write_failed(format!("{cause}: {advice}"));
        }
    }
}

/// `ok` (200) when nothing is wrong; else 503 with one reason a line: a task down, an
/// overdue pass, or a database that does not take a small write now.
pub(super) async fn healthz(State(api): State<Api>) -> Response {
    let health = &api.app.health;
    match api.app.store.probe_write(api.app.clock.now()).await {
        Ok(()) => health.write_ok(),
        Err(e) => {
            tracing::error!(error = %e, "health probe: the database does not take a write");
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
