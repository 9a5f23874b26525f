//! The unsubscribe link in every marketing email: `GET /unsubscribe/{token}` shows a
//! page with one button, `POST` (the button, or a mail client's one-click request of
//! RFC 8058) unsubscribes. A person reads these answers: they are HTML pages.

use super::Api;
use super::error::ApiError;
use crate::domain::{EmailAddress, LeadId};
use crate::store::Suppression;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;

/// A small page for a person.
fn html(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{title}</h1>{body}</body></html>"
    ))
}

/// Said to a lead since forgotten, or to a link whose id now belongs to someone else:
/// nothing to do, and nobody named.
fn already_unsubscribed() -> Html<String> {
    html(
        "You are unsubscribed",
        "This address receives no more emails from us.",
    )
}

/// The address a genuine token names, if it still belongs to the lead it was made for.
async fn token_lead(api: &Api, token: &str) -> Result<Option<EmailAddress>, ApiError> {
    let signer = api.app.deliverer.signer();
    let Some((id, digest)) = signer.verify_unsubscribe(token) else {
        let Html(page) = html(
            "This link is not valid",
            "<p>It may have been cut short by your mail client: open the whole link from the email, or reply to the email and ask us to remove you.</p>",
        );
        return Err(ApiError::Page(StatusCode::NOT_FOUND, page));
    };
    let lead = api.app.signed_lead(LeadId(id), &digest).await?;
    Ok(lead.map(|l| l.email))
}

/// GET: a page with one button. Mail scanners follow links; only the button (or a
/// one-click POST from the mail client) unsubscribes.
pub(super) async fn page(
    State(api): State<Api>,
    Path(token): Path<String>,
) -> Result<Html<String>, ApiError> {
    Ok(match token_lead(&api, &token).await? {
        None => already_unsubscribed(),
        Some(_) => html(
            "Unsubscribe",
            "<p>Stop all marketing emails to this address?</p><form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
        ),
    })
}

/// POST: the one-click unsubscribe of RFC 8058 (`List-Unsubscribe=One-Click`), or the
/// page's button.
pub(super) async fn unsubscribe(
    State(api): State<Api>,
    Path(token): Path<String>,
) -> Result<Html<String>, ApiError> {
    let Some(email) = token_lead(&api, &token).await? else {
        return Ok(already_unsubscribed());
    };
    let now = api.app.clock.now();
    api.app
        .store
        .suppress(&email, Suppression::Unsubscribed, "unsubscribe link", now)
        .await?;
    tracing::info!(email = %email, "unsubscribed by link");
    Ok(html(
        "You are unsubscribed",
        "<p>This address receives no more marketing emails from us. Receipts for your orders still arrive.</p>",
    ))
}
