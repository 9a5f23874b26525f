//! `GET /funnel`: the funnel report (`embudo report`) as JSON.

use super::Api;
use super::error::ApiError;
use crate::tools::report::Report;
use axum::Json;
use axum::extract::State;

pub(super) async fn funnel(State(api): State<Api>) -> Result<Json<Report>, ApiError> {
    let cfg = api.app.funnel().config.clone();
    let report = crate::tools::report::report(&api.app.store, &cfg, api.app.clock.now()).await?;
    Ok(Json(report))
}
