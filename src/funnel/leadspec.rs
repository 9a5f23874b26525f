//! A lead written by hand in YAML: the sample lead of `templates/_sample.yaml` and the
//! lead of a rule test. One shape, one parser, so both accept the same keys.

use crate::domain::time::{parse_duration, parse_instant_or_date};
use crate::domain::{EmailAddress, Lead, LeadId, Value};
use crate::funnel::config::{Config, parse_tz};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A YAML scalar typed as a CSV cell would be (a string goes through inference).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub fn value(&self) -> Value {
        match self {
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::Int(*i),
            Scalar::Float(f) => Value::Float(*f),
            Scalar::Str(s) => Value::infer(s),
        }
    }
}

/// The fields of a lead, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadSpec {
    pub id: Option<i64>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub stage: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attrs: BTreeMap<String, Scalar>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub created_at: Option<String>,
    pub stage_entered_at: Option<String>,
}

/// A time: `-3d` (before `now`), `+2h` (after), or RFC 3339 / a date.
pub fn when(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Some(d) = t.strip_prefix('-') {
        return parse_duration(d).map(|d| now - d);
    }
    if let Some(d) = t.strip_prefix('+') {
        return parse_duration(d).map(|d| now + d);
    }
    parse_instant_or_date(t).map_err(|_| {
        format!("`{s}` is neither a relative time (-3d, -2h, +1d) nor an RFC 3339 time")
    })
}

impl LeadSpec {
    /// The lead, with defaults: id 1, `lead@example.com`, the initial stage, created
    /// at `now`, in its stage since it was created.
    pub fn to_lead(&self, cfg: &Config, now: DateTime<Utc>) -> Result<Lead, String> {
        let at = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| when(t, now))
                .transpose()
                .map_err(|e| format!("{field}: {e}"))
        };
        let created_at = at("created_at", &self.created_at)?.unwrap_or(now);
        Ok(Lead {
            id: LeadId(self.id.unwrap_or(1)),
            email: EmailAddress::parse(self.email.as_deref().unwrap_or("lead@example.com"))
                .map_err(|e| format!("email: {e}"))?,
            name: self.name.clone(),
            stage: match &self.stage {
                Some(s) => cfg.stages.stage(s).map_err(|e| format!("stage: {e}"))?,
                None => cfg.stages.initial().clone(),
            },
            tags: self.tags.iter().cloned().collect(),
            attrs: self
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.value()))
                .collect(),
            locale: self.locale.clone(),
            timezone: self
                .timezone
                .as_deref()
                .map(parse_tz)
                .transpose()
                .map_err(|e| format!("timezone: {e}"))?,
            created_at,
            stage_entered_at: at("stage_entered_at", &self.stage_entered_at)?.unwrap_or(created_at),
            unsubscribed_at: None,
        })
    }
}
