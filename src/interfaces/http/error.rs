//! How a handler says no: one error type whose variants are the API's refusals, each
//! turned into its status, headers and body in one place, so handlers use `?`.

use crate::store::StoreError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

/// A refusal. JSON `{"error": "..."}` for programs; a page for the people who follow
/// links from emails.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    /// 400: the body is not JSON, or a header is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, a wrong one, or none configured.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404: no such lead, link or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// 413: more items than a request may carry.
    #[error("{0}")]
    TooLarge(String),
    /// 422: valid JSON that is not right; the message names the item and the field
    /// (`events[0].kind: ...`).
    #[error("{0}")]
    Invalid(String),
    /// 503 with `Retry-After`: the database could not store or answer. The client is
    /// told the cause and what to do, never the database's own text (that is logged).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An HTML page for a person, with this status.
    #[error("a page for a person ({0})")]
    Page(StatusCode, String),
}

impl ApiError {
    /// The `i`th item of a batch of `what`, and what is wrong with it: `leads[1].email: ...`.
    /// 400 with `why`.
    pub(super) fn bad_request(why: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(why.to_string())
    }

    pub(super) fn item(what: &str, i: usize, detail: impl std::fmt::Display) -> ApiError {
        ApiError::Invalid(format!("{what}[{i}].{detail}"))
    }
}

/// A JSON error body with this status.
fn json_error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(m) => json_error(StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => json_error(StatusCode::UNAUTHORIZED, m.into()),
            ApiError::NotFound(m) => json_error(StatusCode::NOT_FOUND, m),
            ApiError::TooLarge(m) => json_error(StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::Invalid(m) => json_error(StatusCode::UNPROCESSABLE_ENTITY, m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "HTTP API: the database failed");
                let (cause, advice) = e.public();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "5")],
                    Json(json!({ "error": format!("{cause}: {advice}"), "cause": cause })),
                )
                    .into_response()
            }
            ApiError::Page(status, html) => (status, Html(html)).into_response(),
        }
    }
}

/// A JSON answer from its text, as first sent and as replayed.
pub(super) fn json_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
