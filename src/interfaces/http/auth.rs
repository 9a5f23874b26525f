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
    bearer(api.token.as_deref(), &as_bearer(headers))
}

/// `headers` with a Basic credential's password in the place of a bearer token.
fn as_bearer(headers: &HeaderMap) -> HeaderMap {
    use base64::Engine;
    let password = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_string()));
    match password {
        None => headers.clone(),
        Some(p) => {
            let mut h = HeaderMap::new();
            if let Ok(v) = format!("Bearer {p}").parse() {
                h.insert(header::AUTHORIZATION, v);
            }
            h
        }
    }
}

/// [`authorised`] against `expected` (`None`: no token configured, everyone refused).
fn bearer(expected: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
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
        assert!(bearer(Some("s3cret"), &as_bearer(&basic("anyone:s3cret"))).is_ok());
        assert!(bearer(Some("s3cret"), &as_bearer(&basic(":s3cret"))).is_ok());
        assert!(bearer(Some("s3cret"), &as_bearer(&basic("s3cret:wrong"))).is_err());
        assert!(bearer(Some("s3cret"), &as_bearer(&with("Basic %%%"))).is_err());
        assert!(bearer(Some("s3cret"), &as_bearer(&with("Bearer s3cret"))).is_ok());
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
