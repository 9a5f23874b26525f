//! Typed attribute and event-property values.
//!
//! CSV cells, `--prop k=v` and HTTP strings are typed once, by inference, so a rule can
//! compare `lead.attrs.orders > 3` or `days_since(lead.attrs.last_purchase)` without
//! parsing strings itself.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One attribute or property value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Str(String),
}

/// Attributes of a lead, or properties of an event, in key order.
pub type ValueMap = BTreeMap<String, Value>;

impl Value {
    /// Types a raw string: integer, float, `true`/`false`, RFC 3339 date or date-time,
    /// else the string itself.
    pub fn infer(raw: &str) -> Value {
        let s = raw.trim();
        if let Ok(i) = s.parse::<i64>() {
            return Value::Int(i);
        }
        if looks_numeric(s)
            && let Ok(f) = s.parse::<f64>()
            && f.is_finite()
        {
            return Value::Float(f);
        }
        match s {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Value::Date(d);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Value::DateTime(t.with_timezone(&Utc));
        }
        Value::Str(raw.to_string())
    }

    /// The value as an instant, for time helpers: a date is its midnight UTC.
    pub fn as_instant(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::DateTime(t) => Some(*t),
            Value::Date(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            _ => None,
        }
    }

    /// Serialises a map for one database column.
    pub fn map_to_json(map: &ValueMap) -> String {
        serde_json::to_string(map).expect("values always serialise")
    }

    /// Reads a map written by [`Value::map_to_json`].
    pub fn map_from_json(s: &str) -> Result<ValueMap, serde_json::Error> {
        if s.is_empty() {
            return Ok(ValueMap::new());
        }
        serde_json::from_str(s)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("values always serialise")
    }

    pub fn from_json(s: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str(s)
    }
}

fn looks_numeric(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && s.chars().any(|c| c.is_ascii_digit())
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::DateTime(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Value::Str(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_types_values() {
        assert_eq!(Value::infer("42"), Value::Int(42));
        assert_eq!(Value::infer("-3"), Value::Int(-3));
        assert_eq!(Value::infer("19.90"), Value::Float(19.9));
        assert_eq!(Value::infer("true"), Value::Bool(true));
        assert_eq!(Value::infer("false"), Value::Bool(false));
        assert_eq!(
            Value::infer("1988-05-14"),
            Value::Date(NaiveDate::from_ymd_opt(1988, 5, 14).unwrap())
        );
        assert!(matches!(
            Value::infer("2026-03-02T10:00:00Z"),
            Value::DateTime(_)
        ));
        assert_eq!(Value::infer("school"), Value::Str("school".into()));
        assert_eq!(Value::infer("inf"), Value::Str("inf".into()));
        assert_eq!(Value::infer("/mochilas"), Value::Str("/mochilas".into()));
    }

    #[test]
    fn maps_round_trip_through_json() {
        let mut m = ValueMap::new();
        m.insert("a".into(), Value::infer("2026-01-01"));
        m.insert("b".into(), Value::infer("7.5"));
        let back = Value::map_from_json(&Value::map_to_json(&m)).unwrap();
        assert_eq!(back, m);
    }
}
