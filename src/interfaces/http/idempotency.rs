//! `Idempotency-Key`: a retried request (a webhook delivered twice) answers its first
//! answer again and records nothing. The store writes the key and its answer in the
//! transaction that does the request's work, so both commit or neither does; `POST
//! /leads` and `POST /events` both go through here.

use super::error::ApiError;
use crate::store::{IdempotencyKey, Replay, Store};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// A request's key, with the endpoint and the hash of its body (the same key with
/// another body is refused, not replayed).
pub(super) struct Idempotency(IdempotencyKey);

impl Idempotency {
    /// The request's key, if it has one.
    pub(super) fn of_request(
        headers: &HeaderMap,
        endpoint: &str,
        body: &[u8],
    ) -> Result<Option<Idempotency>, ApiError> {
        let Some(v) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = v.to_str().map(str::trim).unwrap_or("");
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY
            || !key.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ApiError::BadRequest(format!(
                "Idempotency-Key: give 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters (a UUID, say), one per request"
            )));
        }
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(Idempotency(IdempotencyKey {
            endpoint: endpoint.to_string(),
            key: key.to_string(),
            hash,
        })))
    }

    /// The key as the store keeps it, with the request's work.
    pub(super) fn key(&self) -> &IdempotencyKey {
        &self.0
    }

    /// Replaces the kept answer with the final one, known only after the transaction
    /// (what the rules did after the events). Not keeping it is logged, not refused:
    /// the request itself succeeded.
    pub(super) async fn revise(&self, store: &Store, answer: &str) {
        if let Err(e) = store.idempotency_update(&self.0, 200, answer).await {
            tracing::warn!(key = %self.0.key, error = %e, "could not keep the final answer for an Idempotency-Key");
        }
    }

    /// The answer for a key seen before: the first answer again, or 422 for another body.
    pub(super) fn replay(&self, seen: Replay) -> Result<Response, ApiError> {
        match seen {
            Replay::Same { status, response } => Ok((
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (HeaderName::from_static("idempotent-replayed"), "true"),
                ],
                response,
            )
                .into_response()),
            Replay::Conflict => Err(ApiError::Invalid(format!(
                "Idempotency-Key `{}` was used within 24 h with another body; a new request needs a new key",
                self.0.key
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str, body: &[u8]) -> Result<Option<Idempotency>, ApiError> {
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", v.parse().unwrap());
        Idempotency::of_request(&h, "events", body)
    }

    #[test]
    fn a_key_is_printable_ascii_up_to_the_limit_and_hashes_its_body() {
        assert!(
            Idempotency::of_request(&HeaderMap::new(), "events", b"{}")
                .unwrap()
                .is_none()
        );
        let a = key(" abc-123 ", b"{}").unwrap().unwrap();
        assert_eq!(
            (a.0.endpoint.as_str(), a.0.key.as_str()),
            ("events", "abc-123")
        );
        let b = key("abc-123", b"[]").unwrap().unwrap();
        assert_ne!(a.0.hash, b.0.hash, "another body, another hash");
        assert!(
            key(&"k".repeat(MAX_IDEMPOTENCY_KEY), b"")
                .unwrap()
                .is_some()
        );
        for bad in [
            "",
            "   ",
            "with space",
            &"k".repeat(MAX_IDEMPOTENCY_KEY + 1),
        ] {
            assert!(
                matches!(key(bad, b""), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
