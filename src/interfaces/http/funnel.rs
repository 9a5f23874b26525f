//! `GET /funnel`: the funnel report (`embudo report`) as JSON, over `?from=&to=` and
//! segmented by `?by=tag:NAME|attr:NAME`, like the command.

use super::Api;
use super::error::ApiError;
use crate::tools::report::{Options, Report, parse_segment};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

#[derive(serde::Deserialize, Default)]
pub(super) struct Params {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    by: Option<String>,
}

impl Params {
    pub(super) fn options(self) -> Result<Options, ApiError> {
        Ok(Options {
            from: self.from,
            to: self.to,
            by: self
                .by
                .as_deref()
                .map(parse_segment)
                .transpose()
                .map_err(ApiError::bad_request)?,
        })
    }
}

/// The report over `params` at the daemon's clock: what `/funnel` and `/` show.
pub(super) async fn current(api: &Api, params: Params) -> Result<Report, ApiError> {
    let cfg = api.app.funnel().config.clone();
    let opts = params.options()?;
    Ok(crate::tools::report::report(&api.app.store, &cfg, &opts, api.app.clock.now()).await?)
}

pub(super) async fn funnel(
    State(api): State<Api>,
    Query(params): Query<Params>,
) -> Result<Json<Report>, ApiError> {
    Ok(Json(current(&api, params).await?))
}

/// `GET /`: the dashboard, the report as a page (`?from=&to=&by=` as for `/funnel`).
/// Without the token a browser is asked for it (HTTP Basic: any user, the token as
/// the password) unless `http.dashboard_public` is set.
pub(super) async fn dashboard(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    if super::auth::dashboard(&api, &headers).is_err() {
        let page = "<!doctype html><title>embudo</title><p>The dashboard needs the API token: \
                    enter it as the password (any user name), or set \
                    <code>http.dashboard_public: true</code> in embudo.yaml.</p>";
        return Ok((
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"embudo dashboard\", charset=\"UTF-8\"",
            )],
            Html(page),
        )
            .into_response());
    }
    let report = current(&api, params).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Html(report.render(crate::tools::report::Format::Html)),
    )
        .into_response())
}
