//! Parsers for the values flags take, shared by every command.

use crate::domain::Value;
use crate::domain::time::{parse_duration, parse_instant};
use chrono::{DateTime, TimeDelta, Utc};

/// An RFC 3339 instant (`--now`, `--at`, `--from`, `--to`).
pub fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(s)
}

/// A duration such as `90s`, `1d12h`.
pub fn span(s: &str) -> Result<TimeDelta, String> {
    parse_duration(s)
}

/// `KEY=VALUE`, the value typed by inference (`--prop amount=49.90`).
pub fn prop(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.trim().to_string(), Value::infer(v)))
}

/// An RFC 3339 instant written for people: seconds, UTC (`2026-03-02T10:00:00Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
