//! The bearer token that write endpoints and personal data need.

use super::Api;
use super::error::ApiError;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// Checks `Authorization: Bearer <token>` (the word `Bearer` in any case) against the
/// configured token, in constant time: how long a refusal takes says nothing about how
/// much of a guess was right.
pub(super) fn authorised(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &api.token else {
        return Err(ApiError::Unauthorized(
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
    // `ct_eq` on slices of different lengths is false (the length is not secret).
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ))
    }
}
