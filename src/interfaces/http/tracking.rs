//! The open pixel (`GET /t/o/{token}`) and tracked links (`GET /t/c/{token}`) inside
//! marketing emails: each records an `open` or a `click` event for the lead its signed
//! token names, and runs the lead's rules at once, as for any event
//! (`has_event("click")`, `last_event_props("click").url`).

use super::Api;
use super::error::ApiError;
use super::events::after_rules;
use crate::delivery::tracking::Who;
use crate::domain::{Event, Value, ValueMap};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A transparent 1×1 GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// How long a repeat of the same open or click (the same token) counts as the same.
pub const TRACKING_WINDOW: chrono::Duration = chrono::Duration::minutes(1);

/// Records the event, at the daemon's clock, and runs the lead's rules (see
/// [`App::record_tracked`](crate::app::App::record_tracked): a repeat within
/// [`TRACKING_WINDOW`], or a lead since forgotten, records nothing). A failure is
/// logged, never shown: the reader gets the pixel or the link's target regardless.
async fn record(api: &Api, who: &Who, kind: &str, props: ValueMap) {
    let now = api.app.clock.now();
    let event = Event {
        kind: kind.to_string(),
        at: now,
        props,
    };
    match api
        .app
        .record_tracked(who, event, TRACKING_WINDOW, now)
        .await
    {
        Ok(Some(done)) => after_rules(api, &done),
        Ok(None) => {}
        Err(e) => tracing::error!(kind, error = %e, "recording a tracked event failed"),
    }
}

fn signer(api: &Api) -> &crate::delivery::signing::Signer {
    api.app.deliverer.signer()
}

/// The pixel, whatever the token: a mail client is never shown a broken image.
pub(super) async fn opened(State(api): State<Api>, Path(token): Path<String>) -> Response {
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
pub(super) async fn clicked(
    State(api): State<Api>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let Some((who, template, url)) = crate::delivery::tracking::click(signer(&api), &token) else {
        return Err(ApiError::NotFound(
            "this link is not valid (it may have been cut short by the mail client)".into(),
        ));
    };
    let props = ValueMap::from([
        ("template".to_string(), Value::Str(template)),
        ("url".to_string(), Value::Str(url.clone())),
    ]);
    record(&api, &who, "click", props).await;
    Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response())
}
