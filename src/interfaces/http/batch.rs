//! Request bodies of the write endpoints: a JSON array of items (or one object), each
//! read into its type, with values typed and limited as a CSV import's are.

use super::Api;
use super::auth::authorised;
use super::error::ApiError;
use crate::domain::{Value, ValueMap};
use axum::http::HeaderMap;
use serde::Deserialize;

/// The most items in one batch.
pub const MAX_BATCH: usize = 10_000;

/// A write endpoint's items, once the token is checked: `what` names them in errors
/// (`leads`, `events`).
pub(super) fn authorised_batch<T: for<'de> Deserialize<'de>>(
    api: &Api,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<Vec<T>, ApiError> {
    authorised(api, headers)?;
    batch(body, what)
}

/// The body's items: an array, or one object. Nothing is read into `T` until the whole
/// body is known to be JSON of a size the API takes.
fn batch<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<Vec<T>, ApiError> {
    let items: Vec<serde_json::Value> = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(one @ serde_json::Value::Object(_)) => vec![one],
        Ok(_) => {
            return Err(ApiError::Invalid(format!(
                "the body must be a JSON array of {what} (or one object)"
            )));
        }
        Err(e) => {
            return Err(ApiError::BadRequest(format!(
                "the body is not JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            )));
        }
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::TooLarge(format!(
            "{} {what} in one request; send at most {MAX_BATCH}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| ApiError::Invalid(format!("{what}[{i}]: {e}")))
        })
        .collect()
}

/// A JSON scalar as a stored value: strings are typed by inference, as in a CSV.
fn value(v: &serde_json::Value) -> Result<Value, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_f64().map(Value::Float))
            .ok_or_else(|| format!("{n} is out of range")),
        serde_json::Value::String(s) => {
            let n = s.chars().count();
            if n > crate::ingest::csv::MAX_VALUE {
                return Err(format!(
                    "{n} characters; a value holds at most {}",
                    crate::ingest::csv::MAX_VALUE
                ));
            }
            Ok(Value::infer(s))
        }
        other => Err(format!("{other} is not a string, number or boolean")),
    }
}

/// An object of scalars (a lead's `attrs`, an event's `props`) as stored values; an
/// error names `field` and the key.
pub(super) fn values(
    map: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<ValueMap, String> {
    let out = map
        .iter()
        .map(|(k, v)| {
            value(v)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("{field}.{k}: {e}"))
        })
        .collect::<Result<ValueMap, String>>()?;
    // The same limits as a CSV import's.
    crate::ingest::csv::check_values(field, &out)?;
    Ok(out)
}
