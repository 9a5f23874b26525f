//! Reading `embudo.yaml` leniently: each section deserialised on its own, and inside
//! a section each bad key reported at its own line and column and then left out (so
//! it takes its default), so one typo does not hide the rest of the file's problems.

use crate::funnel::config::ConfigError;
use crate::funnel::config::schema::{
    Campaign, Defaults, Http, Limits, RawSmtp, Reload, Reports, Schedule, Seed, Stages,
    default_database,
};
use crate::funnel::diagnostic::did_you_mean;
use crate::funnel::yaml::{self, Mapping, Step, Value, ValueError, keys};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::path::Path;

/// The top-level keys of embudo.yaml.
const TOP_KEYS: &[&str] = &[
    "funnel",
    "database",
    "schedule",
    "smtp",
    "limits",
    "defaults",
    "http",
    "campaigns",
    "seed",
    "reload",
    "reports",
];

/// The problems found while loading, each placed at its own key.
pub(super) struct Problems<'a> {
    pub src: &'a str,
    pub file: &'a Path,
    pub list: Vec<ConfigError>,
}

impl Problems<'_> {
    /// A problem with the node at `at` (its key's line and column; the nearest
    /// enclosing key's when it is not written).
    pub fn add(&mut self, at: &[Step], message: impl Into<String>, hint: Option<String>) {
        let (line, col) = yaml::position_or_parent(self.src, at);
        self.push(line, col, message.into(), hint);
    }

    pub fn push(&mut self, line: usize, col: usize, message: String, hint: Option<String>) {
        self.list.push(ConfigError::Invalid {
            path: self.file.to_path_buf(),
            line,
            col,
            message,
            hint,
        });
    }
}

/// The sections as written, each already deserialised (a bad key at its default),
/// before the checks across keys.
pub(super) struct Written {
    pub stages: Stages,
    pub database: String,
    pub schedule: Schedule,
    pub smtp: RawSmtp,
    pub limits: Limits,
    pub defaults: Defaults,
    pub http: Http,
    pub seed: Seed,
    pub reload: Reload,
    pub reports: Reports,
    /// Each campaign that deserialised, with its index in the file.
    pub campaigns: Vec<(usize, Campaign)>,
    /// See [`crate::funnel::config::Config::set_keys`].
    pub set_keys: BTreeSet<String>,
}

/// Every section of the document in `p.src`; a syntax error leaves nothing to read,
/// and every key its default.
pub(super) fn read(p: &mut Problems) -> Written {
    let doc = document(p);
    unknown_top_keys(p, &doc);
    let get = |key: &str| doc.get(key).filter(|v| !v.is_null()).cloned();
    fn section<T: DeserializeOwned + Default>(p: &mut Problems, key: &str, v: Option<Value>) -> T {
        v.and_then(|v| lenient(p, vec![Step::Key(key.into())], v))
            .unwrap_or_default()
    }
    let database = get("database")
        .and_then(|v| lenient(p, keys(&["database"]), v))
        .unwrap_or_else(default_database);
    Written {
        stages: section(p, "funnel", get("funnel")),
        database,
        schedule: section(p, "schedule", get("schedule")),
        smtp: section(p, "smtp", get("smtp")),
        limits: section(p, "limits", get("limits")),
        defaults: section(p, "defaults", get("defaults")),
        http: section(p, "http", get("http")),
        seed: section(p, "seed", get("seed")),
        reload: section(p, "reload", get("reload")),
        reports: section(p, "reports", get("reports")),
        campaigns: campaigns(p, get("campaigns")),
        set_keys: set_keys(&doc),
    }
}

/// The document's top-level mapping; empty (every default) when there is none.
fn document(p: &mut Problems) -> Mapping {
    if p.src.trim().is_empty() {
        return Mapping::new();
    }
    match yaml::parse_document(p.src) {
        Ok(Value::Mapping(m)) => m,
        Ok(Value::Null) => Mapping::new(),
        Ok(_) => {
            p.add(
                &[],
                "embudo.yaml is not a mapping of keys",
                Some(
                    "write keys such as `funnel:`, `smtp:`, `limits:` at the start of lines".into(),
                ),
            );
            Mapping::new()
        }
        Err(e) => {
            p.push(e.line, e.col, e.message, e.hint);
            Mapping::new()
        }
    }
}

fn unknown_top_keys(p: &mut Problems, doc: &Mapping) {
    for k in doc.keys() {
        let name = yaml::key_text(k);
        if !TOP_KEYS.contains(&name.as_str()) {
            let list = TOP_KEYS
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            p.add(
                &[Step::Key(name.clone())],
                format!("unknown field `{name}`, expected one of {list}"),
                Some(unknown_key_hint(&name, TOP_KEYS.iter().copied())),
            );
        }
    }
}

/// Each campaign on its own: a broken one is left out, the others are checked.
fn campaigns(p: &mut Problems, v: Option<Value>) -> Vec<(usize, Campaign)> {
    let mut out = Vec::new();
    match v {
        None => {}
        Some(Value::Sequence(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let at = vec![Step::Key("campaigns".into()), Step::Index(i)];
                if let Some(c) = lenient::<Campaign>(p, at, item) {
                    out.push((i, c));
                }
            }
        }
        Some(_) => p.add(
            &keys(&["campaigns"]),
            "campaigns is not a list",
            Some("write one `- id: …` item a campaign".into()),
        ),
    }
    out
}

/// The keys a document sets, as dotted paths down to the leaves of the known
/// sections (`limits.per_lead`, `smtp.from`), and one entry per campaign by id.
fn set_keys(doc: &Mapping) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, v) in doc {
        let top = yaml::key_text(k);
        if v.is_null() {
            continue;
        }
        match (top.as_str(), v) {
            ("campaigns", Value::Sequence(items)) => {
                for item in items {
                    if let Some(id) = item.get("id").and_then(|i| i.as_str()) {
                        out.insert(format!("campaigns[{id}]"));
                    }
                }
            }
            (_, Value::Mapping(m)) => {
                for (k2, v2) in m {
                    if !v2.is_null() {
                        out.insert(format!("{top}.{}", yaml::key_text(k2)));
                    }
                }
            }
            _ => {
                out.insert(top);
            }
        }
    }
    out
}

/// Deserialises `v` (found at `base`), reporting each bad key at its own place and
/// leaving it out (so it takes its default), until the rest deserialises; None when
/// the node itself is unusable.
pub(super) fn lenient<T: DeserializeOwned>(
    p: &mut Problems,
    base: Vec<Step>,
    mut v: Value,
) -> Option<T> {
    // Keys already reported and taken out: a required one then goes missing, which
    // is the same problem again.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    for _ in 0..64 {
        let bad = match yaml::from_value::<T>(v.clone()) {
            Ok(t) => return Some(t),
            Err(e) => Bad::explain(e),
        };
        let mut full = base.clone();
        full.extend(bad.steps.iter().cloned());
        if !bad.reported_before(&removed) {
            let (line, col) = yaml::position_or_parent(p.src, &full);
            let (message, hint) = bad.shown_at(&full);
            p.push(line, col, message, hint);
        }
        let cut = bad.steps.iter().rposition(|s| matches!(s, Step::Key(_)))?;
        if !yaml::remove(&mut v, &bad.steps[..=cut]) {
            return None;
        }
        removed.push(bad.steps[..=cut].to_vec());
    }
    None
}

/// One deserialisation error, made readable: where (inside the node), what, and what
/// to write instead.
struct Bad {
    steps: Vec<Step>,
    message: String,
    hint: Option<String>,
    /// The first name the message writes in backticks (the field, the variant).
    named: Option<String>,
}

impl Bad {
    fn explain(e: ValueError) -> Bad {
        let ValueError {
            path: mut steps,
            message,
        } = e;
        let named: Vec<&str> = backticked(&message);
        let hint = hint_for(&message, &named, &mut steps);
        Bad {
            named: named.first().map(|n| n.to_string()),
            steps,
            hint,
            message,
        }
    }

    /// A missing field that is missing because an earlier round took it out: that
    /// problem was reported already.
    fn reported_before(&self, removed: &[Vec<Step>]) -> bool {
        self.message.contains("missing field `")
            && self.named.as_ref().is_some_and(|n| {
                let mut missing = self.steps.clone();
                missing.push(Step::Key(n.clone()));
                removed.contains(&missing)
            })
    }

    /// The message and hint as shown for the node at `full`.
    fn shown_at(&self, full: &[Step]) -> (String, Option<String>) {
        let mut hint = self.hint.clone();
        let mut message = match self.message.split_once(" at line ") {
            Some((m, _)) => m.to_string(),
            None => self.message.clone(),
        };
        // "`10 days` is not a duration; write e.g. 7d": the second half is the help.
        if hint.is_none()
            && let Some((m, h)) = message.split_once("; ")
        {
            hint = Some(h.to_string());
            message = m.to_string();
        }
        if !message.starts_with("unknown field") {
            message = format!("{}: {message}", yaml::dotted(full));
        }
        (message, hint)
    }
}

/// What to write instead, from serde's message; an unknown field is added to `steps`
/// (serde names it in the message, not in the path).
fn hint_for(message: &str, named: &[&str], steps: &mut Vec<Step>) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default().to_string();
        if steps.last() != Some(&Step::Key(name.clone())) {
            steps.push(Step::Key(name.clone()));
        }
        Some(unknown_key_hint(&name, named.iter().skip(1).copied()))
    } else if message.starts_with("unknown variant `") {
        named
            .first()
            .and_then(|n| did_you_mean(n, named.iter().skip(1).copied()))
            .or_else(|| Some(format!("write one of: {}", named[1..].join(", "))))
    } else if message.starts_with("missing field `") {
        named.first().map(|n| format!("add `{n}:` here"))
    } else {
        message
            .strip_prefix("invalid type: ")
            .and_then(|m| m.split_once(", expected "))
            .map(|(_, want)| invalid_type_hint(want))
    }
}

/// The help for a value of the wrong type, by what serde expected.
fn invalid_type_hint(want: &str) -> String {
    match want {
        "f64" | "f32" => "write a number, e.g. 20 or 0.5".into(),
        w if w.starts_with('u') || w.starts_with('i') => "write a whole number, e.g. 3".into(),
        "a sequence" => "write a list, e.g. [a, b]".into(),
        "a string" => "write text (in quotes if it has `:` or `#`)".into(),
        "a boolean" => "write true or false".into(),
        w => format!("write {w} here"),
    }
}

/// The words written `like this` in a message.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The help line of an unknown key: the nearest known one, else where keys are listed.
fn unknown_key_hint<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, known) {
        Some(d) => d,
        None => "check the spelling; the keys are listed in the README's config reference".into(),
    }
}
