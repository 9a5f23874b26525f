//! The bearer token that write endpoints and personal data need.

use super::Api;
use super::error::ApiError;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// Checks `Authorization: Bearer <token>` (the word `Bearer` in any case) against the
/// configured token, in constant time: how long a refusal takes says nothing about how
/// much of a guess was right.
pub(super) fn authorised(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    bearer(api.token.as_deref(), headers)
}

/// Who may see the dashboard at `/`: everyone when `http.dashboard_public` is set;
/// else a request with the API token, as a bearer token or as the password of HTTP
/// Basic authentication (any user name), which a browser asks for by itself.
pub(super) fn dashboard(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    if api.app.funnel().config.http.dashboard_public {
        return Ok(());
    }
    check(api.token.as_deref(), &dashboard_token(headers))
}

/// The credential of the `Authorization` header under `scheme` (any case), trimmed.
fn credential<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case(scheme))
        .map(|(_, c)| c.trim())
}

/// The token a dashboard request offers: a Basic credential's password, else the
/// bearer token, else nothing.
fn dashboard_token(headers: &HeaderMap) -> String {
    use base64::Engine;
    credential(headers, "basic")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_string()))
        .unwrap_or_else(|| credential(headers, "bearer").unwrap_or("").to_string())
}

/// [`authorised`] against `expected` (`None`: no token configured, everyone refused).
fn bearer(expected: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    check(expected, credential(headers, "bearer").unwrap_or(""))
}

/// `given` against the configured token, in constant time.
fn check(expected: Option<&str>, given: &str) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::Unauthorized(
            "the API token is not configured: set the variable named by http.token_env",
        ));
    };
    // `ct_eq` on slices of different lengths is false (the length is not secret).
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn a_basic_password_stands_for_the_token() {
        use base64::Engine;
        let basic = |pair: &str| {
            with(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        };
        let dashboard = |h: &HeaderMap| check(Some("s3cret"), &dashboard_token(h));
        assert!(dashboard(&basic("anyone:s3cret")).is_ok());
        assert!(dashboard(&basic(":s3cret")).is_ok());
        assert!(dashboard(&basic("s3cret:wrong")).is_err());
        assert!(dashboard(&with("Basic %%%")).is_err());
        assert!(dashboard(&with("Bearer s3cret")).is_ok());
    }

    #[test]
    fn only_the_configured_token_passes_whatever_the_scheme_case() {
        assert!(bearer(Some("s3cret"), &with("Bearer s3cret")).is_ok());
        assert!(bearer(Some("s3cret"), &with("bEARER  s3cret ")).is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            let refused = bearer(Some("s3cret"), &with(wrong));
            assert!(
                matches!(refused, Err(ApiError::Unauthorized(m)) if m.starts_with("missing or wrong")),
                "{wrong}"
            );
        }
        assert!(bearer(Some("s3cret"), &HeaderMap::new()).is_err());
        let unset = bearer(None, &with("Bearer anything"));
        assert!(matches!(unset, Err(ApiError::Unauthorized(m)) if m.contains("not configured")));
    }
}
