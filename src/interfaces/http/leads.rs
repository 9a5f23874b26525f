//! `POST /leads` (add or update leads) and `GET /leads/{id}` (one lead's data, events,
//! emails and stage history).

use super::Api;
use super::auth::authorised;
use super::batch::{authorised_batch, values};
use super::error::{ApiError, json_text};
use super::idempotency::Idempotency;
use crate::domain::StageId;
use crate::funnel::config::Config;
use crate::ingest::csv::{LeadFields, lead_upsert};
use crate::store::{LeadUpsert, Replay, Store, StoreError, UpsertResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::json;

/// One lead of a `POST /leads` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadIn {
    email: String,
    name: Option<String>,
    stage: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    locale: Option<String>,
    timezone: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    attrs: serde_json::Map<String, serde_json::Value>,
}

impl LeadIn {
    /// The row to store, checked as a CSV import checks its rows; an error names the
    /// field.
    fn upsert(&self, cfg: &Config) -> Result<LeadUpsert, String> {
        let fields = LeadFields {
            email: &self.email,
            name: self.name.as_deref(),
            stage: self.stage.as_deref(),
            tags: self.tags.clone(),
            locale: self.locale.as_deref(),
            timezone: self.timezone.as_deref(),
            created_at: self.created_at.as_deref(),
            attrs: values(&self.attrs, "attrs")?,
        };
        lead_upsert(fields, cfg)
    }
}

pub(super) async fn post_leads(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let items: Vec<LeadIn> = authorised_batch(&api, &headers, &body, "leads")?;
    let key = Idempotency::of_request(&headers, "leads", &body)?;
    let funnel = api.app.funnel();
    let rows = items
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.upsert(&funnel.config)
                .map_err(|e| ApiError::item("leads", i, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let initial = funnel.config.stages.initial();
    let stored = store_leads(
        &api.app.store,
        &rows,
        initial,
        key.as_ref(),
        api.app.clock.now(),
    );
    match stored.await {
        Ok(Ok(answer)) => {
            api.app.health.write_ok();
            Ok(json_text(answer))
        }
        Ok(Err(seen)) => key.expect("only a key is replayed").replay(seen),
        Err(e) => Err(api.write_failed(e)),
    }
}

/// Stores the leads and the key's answer in one transaction, and returns the answer
/// (sent only once the commit succeeded), or what the key was answered before.
async fn store_leads(
    store: &Store,
    rows: &[LeadUpsert],
    initial: &StageId,
    key: Option<&Idempotency>,
    now: DateTime<Utc>,
) -> Result<Result<String, Replay>, StoreError> {
    let answer = |results: &[UpsertResult]| {
        let ids: Vec<i64> = results.iter().map(|r| r.id().0).collect();
        let created = results
            .iter()
            .filter(|r| matches!(r, UpsertResult::Created(_)))
            .count();
        json!({ "created": created, "updated": ids.len() - created, "ids": ids }).to_string()
    };
    store
        .upsert_leads_once(rows, initial, key.map(Idempotency::key), answer, now)
        .await
}

pub(super) async fn get_lead(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorised(&api, &headers)?;
    let store = &api.app.store;
    let now = api.app.clock.now();
    let Some(loaded) = api.app.lead(&id, now).await? else {
        return Err(ApiError::NotFound(format!("no lead `{id}`")));
    };
    let lead_id = loaded.lead.id;
    let (history, outbox) =
        tokio::try_join!(store.stage_history(lead_id), store.outbox_of(lead_id))?;
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let l = &loaded.lead;
    let attrs: serde_json::Map<String, serde_json::Value> = l
        .attrs
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.to_string())))
        .collect();
    Ok(Json(json!({
        "id": l.id.0,
        "email": l.email.as_str(),
        "name": l.name,
        "stage": l.stage.as_str(),
        "stage_entered_at": rfc(l.stage_entered_at),
        "created_at": rfc(l.created_at),
        "tags": l.tags,
        "attrs": attrs,
        "locale": l.locale,
        "timezone": l.timezone.map(|z| z.to_string()),
        "unsubscribed": l.unsubscribed_at.is_some(),
        "events": loaded.events.iter().map(|e| json!({
            "kind": e.kind,
            "at": rfc(e.at),
            "props": e.props.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "sends": outbox.iter().map(|o| json!({
            "template": o.template, "key": o.key, "state": o.state.as_str(),
            "requested_at": rfc(o.requested_at), "sent_at": o.sent_at.map(rfc),
        })).collect::<Vec<_>>(),
        "stage_history": history.iter().map(|h| json!({
            "from": h.from, "to": h.to, "at": rfc(h.at), "cause": h.cause,
        })).collect::<Vec<_>>(),
    })))
}
