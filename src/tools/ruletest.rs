//! `embudo test`: rule tests in `rules/tests/*.yaml`. Each test gives a lead, its
//! events and sends at times relative to `now`, and the exact set of actions the rules
//! must ask for. The rules run through the same evaluation as the daemon.

use crate::domain::time::parse_instant_or_date;
use crate::domain::{Event, SendRecord, TemplateName};
use crate::funnel::Loaded;
use crate::funnel::config::Config;
use crate::funnel::leadspec::{LeadSpec, Scalar, when};
use crate::funnel::yaml;
use crate::rules::{Action, RuleSet};
use crate::store::LoadedLead;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    now: String,
    #[serde(default)]
    lead: LeadSpec,
    #[serde(default)]
    events: Vec<EventSpec>,
    #[serde(default)]
    sends: Vec<SendSpec>,
    #[serde(default)]
    rules: Option<Vec<String>>,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    kind: String,
    at: String,
    #[serde(default)]
    props: BTreeMap<String, Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSpec {
    template: String,
    #[serde(default)]
    key: Option<String>,
    at: String,
}

/// One expected action: exactly one of the keys, e.g. `- send: edu-welcome`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    send: Option<SendExpect>,
    move_to: Option<String>,
    tag: Option<String>,
    untag: Option<String>,
    /// `set: { attr: value }`; `null` expects a removal.
    set: Option<BTreeMap<String, Option<Scalar>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SendExpect {
    Template(String),
    Keyed { template: String, key: String },
}

/// One action written as an `expect:` item, so expected and actual compare as text
/// and a line of the diff can be pasted into a test.
pub(crate) fn describe(a: &Action) -> String {
    match a {
        Action::Send {
            template,
            key: None,
        } => format!("send: {template}"),
        Action::Send {
            template,
            key: Some(k),
        } => keyed(template, k),
        Action::MoveTo(s) => format!("move_to: {s}"),
        Action::Tag(t) => format!("tag: {t}"),
        Action::Untag(t) => format!("untag: {t}"),
        Action::Set(k, v) => set(k, v.as_ref()),
    }
}

fn keyed(template: &str, key: &str) -> String {
    format!("send: {{ template: {template}, key: {} }}", quoted(key))
}

fn set(k: &str, v: Option<&crate::domain::Value>) -> String {
    use crate::domain::Value;
    // A string reads as the test file would type it: "2026-03-01" is a date there.
    let v = match v.map(|v| match v {
        Value::Str(s) => Value::infer(s),
        other => other.clone(),
    }) {
        None => "null".to_string(),
        Some(Value::Str(s)) => quoted(&s),
        Some(v) => v.to_string(),
    };
    format!("set: {{ {k}: {v} }}")
}

/// A YAML scalar that reads back as this string (JSON strings are YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn expected(e: &Expect) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    match &e.send {
        Some(SendExpect::Template(t)) => out.push(format!("send: {t}")),
        Some(SendExpect::Keyed { template, key }) => out.push(keyed(template, key)),
        None => {}
    }
    out.extend(e.move_to.iter().map(|s| format!("move_to: {s}")));
    out.extend(e.tag.iter().map(|t| format!("tag: {t}")));
    out.extend(e.untag.iter().map(|t| format!("untag: {t}")));
    if let Some(m) = &e.set {
        out.extend(
            m.iter()
                .map(|(k, v)| set(k, v.as_ref().map(|v| v.value()).as_ref())),
        );
    }
    let keys = [
        e.send.is_some(),
        e.move_to.is_some(),
        e.tag.is_some(),
        e.untag.is_some(),
        e.set.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() != 1 {
        return Err("each `expect` item has exactly one of send, move_to, tag, untag, set".into());
    }
    Ok(out)
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub file: String,
    pub name: String,
    /// Empty when the test passed; else the lines explaining why not.
    pub failure: Vec<String>,
    /// What the rules printed (`print`, `debug`) while the test ran, as
    /// `rules/FILE.rhai: text` lines.
    pub output: Vec<String>,
}

/// What `embudo test` found.
#[derive(Debug, Default)]
pub struct TestRun {
    pub results: Vec<TestResult>,
    /// Test files that could not be read or parsed (exit 2).
    pub malformed: Vec<String>,
    /// Rules that do not compile (they fail every test that needs them).
    pub rule_errors: Vec<String>,
    /// The filter given, when no test's name contains it (exit 1).
    pub unmatched_filter: Option<String>,
}

/// The wall-clock budget of one rule for one test case (the daemon's is
/// [`crate::rules::RULE_TIME_BUDGET`]).
pub const TEST_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs every test in `rules/tests/*.yaml` whose name contains `filter`, against the
/// rules of `loaded` that compiled (a broken template or rule fails only the tests
/// that need it).
pub fn run(loaded: Loaded, filter: Option<&str>) -> TestRun {
    let mut out = TestRun::default();
    if let Some(e) = &loaded.rules_unreadable {
        let cfg = &loaded.funnel.config;
        out.malformed
            .push(format!("{}: {e}", cfg.display_path(&cfg.rules_dir())));
        return out;
    }
    out.rule_errors = loaded.rule_errors.iter().map(|e| e.to_string()).collect();
    let broken = loaded.rule_errors;
    let cfg = &loaded.funnel.config;
    let mut rules = loaded.funnel.rules;
    // A test's verdict must not depend on how busy the machine is: here the
    // operation limit stops a runaway loop, and only a rule slower than this
    // (far beyond the daemon's budget) is stopped by the clock.
    rules.time_budget = TEST_TIME_BUDGET;
    let dir = cfg.rules_dir().join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for path in files {
        let shown = cfg.display_path(&path);
        let cases: Vec<Case> = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|s| yaml::parse(&s).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                out.malformed.push(format!("{shown}:{e}"));
                continue;
            }
        };
        for case in cases {
            if filter.is_some_and(|f| !case.name.contains(f)) {
                continue;
            }
            let (failure, output) = match run_case(cfg, &rules, &broken, &case) {
                Ok(f) => f,
                Err(e) => {
                    out.malformed
                        .push(format!("{shown}: test `{}`: {e}", case.name));
                    continue;
                }
            };
            out.results.push(TestResult {
                file: shown.clone(),
                name: case.name,
                failure,
                output,
            });
        }
    }
    if let Some(f) = filter
        && out.results.is_empty()
        && out.malformed.is_empty()
    {
        out.unmatched_filter = Some(f.to_string());
    }
    out
}

/// The failure lines (empty when the test passed) and what the rules printed.
fn run_case(
    cfg: &Config,
    rules: &RuleSet,
    broken: &[crate::rules::RuleError],
    case: &Case,
) -> Result<(Vec<String>, Vec<String>), String> {
    let now = parse_instant_or_date(&case.now).map_err(|e| format!("now: {e}"))?;
    let history = case_history(cfg, case, now)?;
    let mut failure = named_rules(rules, broken, case)?;
    let (ev, output) = crate::rules::capture_output(|| {
        rules.evaluate_only(history, now, cfg.default_timezone(), case.rules.as_deref())
    });
    let mut actual: Vec<String> = ev.actions.iter().map(|(_, a)| describe(a)).collect();
    let mut want: Vec<String> = Vec::new();
    for e in &case.expect {
        want.extend(expected(e).map_err(|m| format!("expect: {m}"))?);
    }
    actual.sort();
    want.sort();
    for e in &ev.errors {
        failure.push(format!("rule error: {e}"));
    }
    if actual != want {
        failure.extend(diff(&want, &actual));
    }
    Ok((failure, output))
}

/// The lead of a test with its events and sends, at times relative to `now`.
fn case_history(cfg: &Config, case: &Case, now: DateTime<Utc>) -> Result<LoadedLead, String> {
    let lead = case
        .lead
        .to_lead(cfg, now)
        .map_err(|e| format!("lead.{e}"))?;
    let events = case
        .events
        .iter()
        .map(|e| {
            Ok(Event {
                kind: e.kind.clone(),
                at: when(&e.at, now).map_err(|m| format!("events: {m}"))?,
                props: e
                    .props
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value()))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let sends = case
        .sends
        .iter()
        .map(|s| {
            Ok(SendRecord {
                template: TemplateName::parse(&s.template)?,
                key: s.key.clone().unwrap_or_default(),
                requested_at: when(&s.at, now).map_err(|m| format!("sends: {m}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LoadedLead {
        lead,
        events,
        older: Default::default(),
        sends,
    })
}

/// The rules a test names (`rules:`): one that does not compile fails the test (the
/// failure lines); one that is not there at all makes the test malformed (`Err`).
fn named_rules(
    rules: &RuleSet,
    broken: &[crate::rules::RuleError],
    case: &Case,
) -> Result<Vec<String>, String> {
    let mut failure = Vec::new();
    for n in case.rules.iter().flatten() {
        if let Some(e) = broken.iter().find(|e| &e.rule == n) {
            failure.push(format!(
                "rule `{n}` does not compile: {}:{}:{}: {}",
                e.file, e.line, e.col, e.message
            ));
            continue;
        }
        if !rules.rules.iter().any(|r| &r.name == n) {
            return Err(format!(
                "rules: no rule `{n}`; the rules are {}",
                rules.rule_names().join(", ")
            ));
        }
    }
    Ok(failure)
}

/// Expected (`-`) and actual (`+`) actions, both sorted, as failure lines; the ones
/// in both are shown indented.
fn diff(want: &[String], actual: &[String]) -> Vec<String> {
    let mut out = vec!["expected (-) and actual (+) actions differ:".to_string()];
    let mut a = actual.to_vec();
    for w in want {
        match a.iter().position(|x| x == w) {
            Some(i) => {
                a.remove(i);
                out.push(format!("    {w}"));
            }
            None => out.push(format!("  - {w}")),
        }
    }
    out.extend(a.iter().map(|x| format!("  + {x}")));
    out
}

/// Printed lines shown under a test that passed (all are shown under a failure).
const SHOWN_WHEN_PASSED: usize = 5;

/// Prints a run in the manner of `cargo test`; returns the exit code.
pub fn report(run: &TestRun, dir: &Path) -> i32 {
    for e in &run.rule_errors {
        println!("error: {e}");
    }
    println!(
        "\nrunning {} test{} from {}",
        run.results.len(),
        if run.results.len() == 1 { "" } else { "s" },
        dir.display()
    );
    for r in &run.results {
        println!(
            "test {}: {} ... {}",
            r.file,
            r.name,
            if r.failure.is_empty() { "ok" } else { "FAILED" }
        );
        // What the rules printed, under its test: all of it for a failure, a few
        // lines for a pass.
        let shown = if r.failure.is_empty() {
            SHOWN_WHEN_PASSED
        } else {
            usize::MAX
        };
        for l in r.output.iter().take(shown) {
            println!("    {l}");
        }
        if r.output.len() > shown {
            println!("    … {} more printed line(s)", r.output.len() - shown);
        }
    }
    let failed: Vec<&TestResult> = run
        .results
        .iter()
        .filter(|r| !r.failure.is_empty())
        .collect();
    if !failed.is_empty() {
        println!("\nfailures:");
        for r in &failed {
            println!("\n---- {}: {} ----", r.file, r.name);
            for l in &r.failure {
                println!("{l}");
            }
        }
    }
    for m in &run.malformed {
        println!("error: {m}");
    }
    if let Some(f) = &run.unmatched_filter {
        println!("error: no test matched `{f}`: no test's name contains it");
    }
    let passed = run.results.len() - failed.len();
    let verdict = if failed.is_empty()
        && run.malformed.is_empty()
        && run.rule_errors.is_empty()
        && run.unmatched_filter.is_none()
    {
        "ok"
    } else {
        "FAILED"
    };
    println!(
        "\ntest result: {verdict}. {passed} passed, {} failed",
        failed.len()
    );
    if !run.malformed.is_empty() {
        2
    } else if !failed.is_empty() || !run.rule_errors.is_empty() || run.unmatched_filter.is_some() {
        1
    } else {
        0
    }
}
