//! The user reference in docs/ is kept true here, against the real binary and the real
//! code, so it cannot drift:
//!
//! - docs/configuration.md: every key the config parser accepts (asked of the parser
//!   itself: `embudo check` on a file with an unknown key `zzz` at each level lists the
//!   keys allowed there) and every `EMBUDO_*` variable the code reads are documented,
//!   and the complete example (with the files it needs) passes `embudo check`;
//! - docs/cli.md: every command and subcommand of `embudo --help`, and every long flag
//!   of each one's `--help`, is documented in that command's section, and every
//!   documented command exists;
//! - docs/http.md: every route of `src/interfaces/http/mod.rs` is documented, and every `curl` example
//!   runs against a real `embudo run` daemon and answers what the document shows;
//! - docs/rule-tests.md: every key the rule-test parser accepts is documented, and every
//!   example test file runs through `embudo test` with the documented result.
//!
//! A fenced block whose info string has `file=PATH` is a file of the example's folder:
//! ```` ```yaml file=embudo.yaml ````.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn doc(name: &str) -> String {
    std::fs::read_to_string(repo().join("docs").join(name))
        .unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

/// A fenced block of a document.
#[derive(Debug, Clone)]
struct Block {
    /// The language: the info string's first word.
    lang: String,
    /// `key=value` words of the info string after the language.
    attrs: BTreeMap<String, String>,
    /// The line of the opening fence (1-based).
    line: usize,
    body: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, l) in md.lines().enumerate() {
        match (&mut open, l.strip_prefix("```")) {
            (None, Some(info)) => {
                let mut words = info.split_whitespace();
                let lang = words.next().unwrap_or("").to_string();
                let attrs = words
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                open = Some(Block {
                    lang,
                    attrs,
                    line: i + 1,
                    body: String::new(),
                })
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(b), _) => {
                b.body.push_str(l);
                b.body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The text of the section whose heading line is `heading` (any level), up to the next
/// heading of the same or a higher level.
fn section<'a>(md: &'a str, heading: &str) -> Option<&'a str> {
    let mut start = None;
    let mut level = 0;
    let mut offset = 0;
    let mut in_fence = false;
    for line in md.split_inclusive('\n') {
        let t = line.trim_end();
        if t.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && t.starts_with('#') {
            let l = t.chars().take_while(|c| *c == '#').count();
            let title = t[l..].trim();
            match start {
                None if title == heading => {
                    start = Some(offset);
                    level = l;
                }
                Some(s) if l <= level => return Some(&md[s..offset]),
                _ => {}
            }
        }
        offset += line.len();
    }
    start.map(|s| &md[s..])
}

/// The headings of a document (without the `#`s), outside fenced blocks.
fn headings(md: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in md.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with('#') {
            out.push(line.trim_start_matches('#').trim().to_string());
        }
    }
    out
}

/// The names between backticks after "expected" in a serde error message:
/// "unknown field `zzz`, expected one of `a`, `b`" → [a, b].
fn expected_names(message: &str) -> Vec<String> {
    let Some((_, rest)) = message.split_once("expected") else {
        return Vec::new();
    };
    let rest = rest.lines().next().unwrap_or("");
    rest.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------
// docs/configuration.md
// ---------------------------------------------------------------------------------

/// Each mapping level of embudo.yaml: a file with an unknown key `zzz` there, and how
/// the doc names that level's keys (`limits.per_lead.max`; campaign keys by themselves,
/// in the `campaigns` section: `grace`, `schedule.cron`).
const CONFIG_LEVELS: &[(&str, &str, &str)] = &[
    ("zzz: 1\n", "", ""),
    ("funnel:\n  zzz: 1\n", "funnel.", ""),
    ("schedule:\n  zzz: 1\n", "schedule.", ""),
    ("smtp:\n  zzz: 1\n", "smtp.", ""),
    ("limits:\n  zzz: 1\n", "limits.", ""),
    (
        "limits:\n  per_lead: { max: 1, within: 1d, zzz: 1 }\n",
        "limits.per_lead.",
        "",
    ),
    (
        "limits:\n  quiet_hours: { from: \"21:00\", to: \"08:00\", zzz: 1 }\n",
        "limits.quiet_hours.",
        "",
    ),
    ("defaults:\n  zzz: 1\n", "defaults.", ""),
    ("http:\n  zzz: 1\n", "http.", ""),
    ("seed:\n  zzz: 1\n", "seed.", ""),
    ("reload:\n  zzz: 1\n", "reload.", ""),
    ("reports:\n  zzz: 1\n", "reports.", ""),
    (
        "reports:\n  conversions:\n    - { name: a, from: x, to: y, zzz: 1 }\n",
        "",
        "reports",
    ),
    ("campaigns:\n  - id: a\n    zzz: 1\n", "", "campaigns"),
    (
        "campaigns:\n  - id: a\n    schedule: { cron: \"0 0 9 * * *\", zzz: 1 }\n",
        "schedule.",
        "campaigns",
    ),
];

/// What `embudo check` says about this config (exit code, stdout + stderr).
fn check_config(yaml: &str) -> (Option<i32>, String) {
    let f = Folder::with_files(&[("embudo.yaml", yaml)]);
    let out = f.embudo().arg("check").output().unwrap();
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// The keys the config parser accepts at one level, as it lists them itself.
fn accepted_keys(yaml: &str) -> Vec<String> {
    let (code, out) = check_config(yaml);
    assert_eq!(code, Some(2), "an unknown key must be refused:\n{out}");
    let keys = expected_names(&out);
    assert!(
        !keys.is_empty(),
        "no \"expected ...\" list in the answer to\n{yaml}\n{out}"
    );
    keys
}

#[test]
fn configuration_documents_every_key_the_parser_accepts() {
    let md = doc("configuration.md");
    let mut missing = Vec::new();
    let mut seen_top = Vec::new();
    for (yaml, prefix, in_section) in CONFIG_LEVELS {
        let keys = accepted_keys(yaml);
        if yaml.starts_with("zzz") {
            seen_top = keys.clone();
        }
        let text = if in_section.is_empty() {
            md.as_str()
        } else {
            section(&md, &format!("`{in_section}`")).unwrap_or_else(|| {
                panic!("docs/configuration.md has no section `## `{in_section}``")
            })
        };
        for k in keys {
            let name = format!("`{prefix}{k}`");
            if !text.contains(&name) {
                missing.push(format!(
                    "{name}{}",
                    if in_section.is_empty() {
                        String::new()
                    } else {
                        format!(" (in the `{in_section}` section)")
                    }
                ));
            }
        }
    }
    // Every top-level key has its own section, and every level of the file was probed.
    for k in &seen_top {
        if section(&md, &format!("`{k}`")).is_none() {
            missing.push(format!("a section `## `{k}``"));
        }
        // `database` is a plain value; every other top-level key is a mapping or a list.
        let probed = CONFIG_LEVELS
            .iter()
            .any(|(_, p, s)| *p == format!("{k}.") || s == k);
        if !probed && k != "database" {
            missing.push(format!(
                "(test) top-level key `{k}` is new: add its level to CONFIG_LEVELS if it is a mapping"
            ));
        }
    }
    // Enumerated values, as the parser lists them.
    let (_, out) = check_config("campaigns:\n  - id: a\n    missed: zzz\n");
    let variants = expected_names(&out);
    assert!(!variants.is_empty(), "{out}");
    for v in variants {
        if !md.contains(&format!("`{v}`")) {
            missing.push(format!("missed: `{v}`"));
        }
    }
    let (_, out) = check_config("smtp:\n  url: \"smtp://mail.example?tls=zzz\"\n");
    let tls = out
        .split_once("must be ")
        .map(|(_, r)| r.lines().next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no tls values listed:\n{out}"));
    for v in tls
        .split([',', ' '])
        .filter(|w| !w.is_empty() && *w != "or")
    {
        if !md.contains(&format!("?tls={v}")) {
            missing.push(format!("`?tls={v}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn configuration_documents_every_environment_variable_the_code_reads() {
    let md = doc("configuration.md");
    let mut vars = BTreeSet::new();
    for e in walk(&repo().join("src")) {
        let src = std::fs::read_to_string(&e).unwrap();
        for (i, _) in src.match_indices("\"EMBUDO_") {
            let name: String = src[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            vars.insert(name);
        }
        // clap's `env = "..."` and std::env::var("...") with other names.
        for (i, _) in src.match_indices("env::var(\"") {
            let name: String = src[i + 10..].chars().take_while(|c| *c != '"').collect();
            vars.insert(name);
        }
    }
    assert!(vars.contains("EMBUDO_CONFIG"), "{vars:?}");
    let missing: Vec<&String> = vars
        .iter()
        .filter(|v| !md.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document the variables {missing:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Writes every `file=PATH` block of `md` into `f`.
fn write_files(f: &Folder, md: &str) -> Vec<String> {
    let mut written = Vec::new();
    for b in blocks(md) {
        if let Some(path) = b.attrs.get("file") {
            f.write(path, &b.body);
            written.push(path.clone());
        }
    }
    written
}

#[test]
fn the_complete_configuration_example_passes_check() {
    let md = doc("configuration.md");
    let example = section(&md, "A complete example").expect("a section `## A complete example`");
    let f = Folder::demo();
    let written = write_files(&f, example);
    assert!(written.contains(&"embudo.yaml".to_string()), "{written:?}");
    let out = f
        .embudo()
        .arg("check")
        .env("EMBUDO_SMTP_PASSWORD", "secret")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the complete example of docs/configuration.md fails `embudo check`:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    // It is complete: every key of every level is written in it.
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml")).unwrap();
    let mut absent = Vec::new();
    for (probe, _, _) in CONFIG_LEVELS {
        for k in accepted_keys(probe) {
            // `seed` is demo data: shown commented out.
            if !yaml.contains(&format!("{k}:")) {
                absent.push(k);
            }
        }
    }
    assert!(
        absent.is_empty(),
        "the complete example of docs/configuration.md leaves out {absent:?}"
    );
}

// ---------------------------------------------------------------------------------
// docs/cli.md
// ---------------------------------------------------------------------------------

/// `embudo ARGS --help`.
fn help(args: &[&str]) -> String {
    let f = Folder::with_files(&[]);
    let out = f.embudo().args(args).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "embudo {args:?} --help");
    stdout(&out)
}

/// The lines of a `--help` section (`Commands:`, `Options:`), up to the next blank line.
fn help_section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// Every command path (`["campaign", "list"]`) that `embudo --help` lists, recursively.
fn commands(prefix: &[String]) -> Vec<Vec<String>> {
    let args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for line in help_section(&help(&args), "Commands:") {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        // Only a command's own line starts with two spaces and its name.
        if name == "help" || !line.starts_with("  ") || line.starts_with("   ") {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(name.to_string());
        out.push(path.clone());
        out.extend(commands(&path));
    }
    out
}

/// The long flags of `embudo PATH --help`.
fn long_flags(path: &[String]) -> Vec<String> {
    let args: Vec<&str> = path.iter().map(String::as_str).collect();
    help_section(&help(&args), "Options:")
        .iter()
        .filter_map(|l| {
            let t = l.trim_start();
            let t = if t.starts_with("-") && !t.starts_with("--") {
                t.split_once(", ").map(|(_, r)| r).unwrap_or("")
            } else {
                t
            };
            t.starts_with("--").then(|| {
                t.split(|c: char| c.is_whitespace() || c == '=')
                    .next()
                    .unwrap()
                    .to_string()
            })
        })
        .collect()
}

#[test]
fn cli_documents_every_command_and_flag() {
    let md = doc("cli.md");
    let global = long_flags(&[]);
    assert!(global.contains(&"--config".to_string()), "{global:?}");
    let conventions = section(&md, "Conventions").expect("a `## Conventions` section");
    let mut missing = Vec::new();
    for f in &global {
        if !["--help", "--version"].contains(&f.as_str()) && !conventions.contains(f.as_str()) {
            missing.push(format!("global flag {f} (in Conventions)"));
        }
    }
    let all = commands(&[]);
    assert!(all.len() > 15, "{all:?}");
    for path in &all {
        let heading = format!("`embudo {}`", path.join(" "));
        let Some(text) = section(&md, &heading) else {
            missing.push(format!("a section `{heading}`"));
            continue;
        };
        for f in long_flags(path) {
            if ["--help", "--version"].contains(&f.as_str()) || global.contains(&f) {
                continue;
            }
            // The flag by itself: `--lead` must not be found inside `--leads`.
            let found = text.match_indices(f.as_str()).any(|(i, _)| {
                !text[i + f.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !found {
                missing.push(format!("{f} in {heading}"));
            }
        }
    }
    // Every documented command exists.
    let known: BTreeSet<String> = all.iter().map(|p| p.join(" ")).collect();
    for h in headings(&md) {
        if let Some(cmd) = h.strip_prefix("`embudo ").and_then(|r| r.strip_suffix('`'))
            && !known.contains(cmd)
        {
            missing.push(format!("(documented but no such command) `embudo {cmd}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md and `embudo --help` disagree:\n  {}",
        missing.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------
// docs/http.md
// ---------------------------------------------------------------------------------

/// `(METHOD, path)` of every route in src/interfaces/http/mod.rs's router.
fn routes() -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(repo().join("src/interfaces/http/mod.rs")).unwrap();
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices(".route(") {
        // The call's text, up to its closing parenthesis.
        let mut depth = 0;
        let mut end = i + ".route".len();
        for (j, c) in src[end..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end += j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let call = &src[i..end];
        let path = call.split('"').nth(1).expect("a route path").to_string();
        for m in ["get", "post", "put", "patch", "delete"] {
            let used = call.match_indices(&format!("{m}(")).any(|(k, _)| {
                !call[..k]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if used {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn http_documents_every_route() {
    let md = doc("http.md");
    let routes = routes();
    assert!(routes.len() >= 10, "{routes:?}");
    let documented: BTreeSet<(String, String)> = headings(&md)
        .iter()
        .filter_map(|h| {
            let h = h.strip_prefix('`')?.strip_suffix('`')?;
            let (m, p) = h.split_once(' ')?;
            Some((m.to_string(), p.to_string()))
        })
        .collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/http.md: routes without a section {undocumented:?}; sections without a route {unknown:?}"
    );
}

/// A daemon that is killed and waited for when dropped, even when a test panics.
struct Running {
    child: Child,
    log: std::path::PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request parsed from a documented `curl` command.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Splits a shell command line into words: single quotes are literal, double quotes and
/// bare words expand `$NAME` from `vars`.
fn shell_words(cmd: &str, vars: &BTreeMap<&str, String>) -> Vec<String> {
    let expand = |s: &str| {
        let mut out = s.to_string();
        // Longest names first, so $A does not eat $AB.
        let mut names: Vec<&&str> = vars.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for n in names {
            out = out.replace(&format!("${n}"), &vars[*n]);
        }
        assert!(!out.contains('$'), "an unknown variable in `{s}`");
        out
    };
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    s.push(c);
                }
                cur.get_or_insert_with(String::new).push_str(&s);
            }
            '"' => {
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    s.push(c);
                }
                cur.get_or_insert_with(String::new).push_str(&expand(&s));
            }
            c if c.is_whitespace() => words.extend(cur.take()),
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || n == '\'' || n == '"' {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                cur.get_or_insert_with(String::new).push_str(&expand(&s));
            }
        }
    }
    words.extend(cur);
    words
}

/// The request of a documented `curl` command (the subset of curl the document uses).
fn curl(cmd: &str, vars: &BTreeMap<&str, String>, base: &str) -> Request {
    let joined = cmd.replace("\\\n", " ");
    let words = shell_words(&joined, vars);
    assert_eq!(words.first().map(String::as_str), Some("curl"), "{cmd}");
    let mut r = Request {
        method: String::new(),
        path: String::new(),
        headers: Vec::new(),
        body: String::new(),
    };
    let mut it = words.into_iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" | "-i" | "-sS" => {}
            "-X" => r.method = it.next().unwrap(),
            "-H" => {
                let h = it.next().unwrap();
                let (k, v) = h.split_once(':').unwrap();
                r.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "-d" | "--data" => r.body = it.next().unwrap(),
            url if url.starts_with("http://") => {
                r.path = url
                    .strip_prefix(base)
                    .unwrap_or_else(|| panic!("the examples use {base}: {url}"))
                    .to_string()
            }
            other => panic!("docs/http.md: the test does not know curl's `{other}` in\n{cmd}"),
        }
    }
    if r.method.is_empty() {
        r.method = if r.body.is_empty() { "GET" } else { "POST" }.into();
    }
    r
}

/// Sends `r` to 127.0.0.1:`port`; returns (status, headers in lower case, body).
fn send(port: u16, r: &Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        r.method,
        r.path,
        r.body.len()
    );
    for (k, v) in &r.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(r.body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

fn is_timestamp(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_duration(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().unwrap().is_ascii_digit()
        && s.chars().all(|c| c.is_ascii_digit() || "smhdw".contains(c))
}

/// Whether `actual` matches the documented `want`: objects may hold more keys than
/// shown, arrays have the same length, timestamps and durations (which depend on when
/// the request ran) only their kind.
fn json_matches(want: &serde_json::Value, actual: &serde_json::Value, at: &str) -> Vec<String> {
    use serde_json::Value as V;
    match (want, actual) {
        (V::Object(w), V::Object(a)) => w
            .iter()
            .flat_map(|(k, wv)| match a.get(k) {
                Some(av) => json_matches(wv, av, &format!("{at}.{k}")),
                None => vec![format!("{at}.{k}: missing")],
            })
            .collect(),
        (V::Array(w), V::Array(a)) if w.len() == a.len() => w
            .iter()
            .zip(a)
            .enumerate()
            .flat_map(|(i, (wv, av))| json_matches(wv, av, &format!("{at}[{i}]")))
            .collect(),
        (V::String(w), V::String(a))
            if (is_timestamp(w) && is_timestamp(a)) || (is_duration(w) && is_duration(a)) =>
        {
            Vec::new()
        }
        (w, a) if w == a => Vec::new(),
        (w, a) => vec![format!("{at}: documented {w}, got {a}")],
    }
}

/// The first `/t/o/`, `/t/c/` and `/unsubscribe/` tokens of the email to `to` written by
/// the file transport into `dir`.
fn tokens_in_mail(dir: &Path, to: &str, template: &str) -> Option<BTreeMap<&'static str, String>> {
    for e in std::fs::read_dir(dir).ok()? {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        let m = mailparse::parse_mail(&raw).unwrap();
        let header = |n: &str| {
            m.headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case(n))
                .map(|h| h.get_value())
                .unwrap_or_default()
        };
        if !header("To").contains(to) || header("X-Embudo-Template") != template {
            continue;
        }
        let html = m
            .parts()
            .find(|p| p.ctype.mimetype == "text/html")
            .unwrap()
            .get_body()
            .unwrap();
        let after = |text: &str, marker: &str| {
            text.split(marker)
                .nth(1)
                .unwrap_or_else(|| panic!("no {marker} in\n{text}"))
                .split(|c: char| c == '"' || c == '>' || c == '\'' || c.is_whitespace())
                .next()
                .unwrap()
                .to_string()
        };
        return Some(BTreeMap::from([
            ("OPEN_TOKEN", after(&html, "/t/o/")),
            ("CLICK_TOKEN", after(&html, "/t/c/")),
            (
                "UNSUBSCRIBE_TOKEN",
                after(&header("List-Unsubscribe"), "/unsubscribe/"),
            ),
        ]));
    }
    None
}

/// Waits until the daemon's outbox has nothing queued or being sent.
fn settle(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, body) = send(
            port,
            &Request {
                method: "GET".into(),
                path: "/metrics".into(),
                headers: Vec::new(),
                body: String::new(),
            },
        );
        let m = String::from_utf8_lossy(&body).to_string();
        if !m.contains("state=\"queued\"") && !m.contains("state=\"sending\"") {
            return;
        }
        assert!(Instant::now() < deadline, "the outbox does not empty:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_http_example_answers_as_documented() {
    let md = doc("http.md");
    let f = Folder::demo();
    let port = free_port();
    // The demo funnel, its API on a free port, no sample data, no tick during the test.
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("seed:"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"127.0.0.1:8080\"", &format!("\"127.0.0.1:{port}\""))
        .replace("0 */5 * * * *", "0 0 0 1 1 *");
    assert!(yaml.contains(&format!("127.0.0.1:{port}")), "{yaml}");
    f.write("embudo.yaml", &yaml);
    let log = f.path().join("daemon.log");
    let daemon = Running {
        child: f
            .embudo()
            .args(["run", "--now", "2026-03-02T10:00:00Z"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    };
    wait_port(port, Duration::from_secs(30));

    let mut vars: BTreeMap<&str, String> =
        BTreeMap::from([("EMBUDO_API_TOKEN", API_TOKEN.to_string())]);
    let all = blocks(&md);
    let mut ran = 0;
    let mut failures = Vec::new();
    for (i, b) in all.iter().enumerate() {
        if b.lang != "sh" || !b.body.trim_start().starts_with("curl") {
            continue;
        }
        let answer = all
            .get(i + 1)
            .filter(|a| a.lang == "http")
            .unwrap_or_else(|| {
                panic!(
                    "docs/http.md:{}: a curl example needs a ```http block with its answer after it",
                    b.line
                )
            });
        let signed = ["$OPEN_TOKEN", "$CLICK_TOKEN", "$UNSUBSCRIBE_TOKEN"];
        if signed.iter().any(|t| b.body.contains(t)) && !vars.contains_key("OPEN_TOKEN") {
            settle(port);
            let Some(tokens) = tokens_in_mail(
                &f.path().join("outbox-mail"),
                "lucia.martin@example.es",
                "eval-comparison",
            ) else {
                panic!(
                    "no `eval-comparison` email to Lucía for the signed-link examples\n{}\n\ndaemon log:\n{}",
                    failures.join("\n"),
                    daemon.log()
                );
            };
            vars.extend(tokens);
        }
        let req = curl(&b.body, &vars, "http://127.0.0.1:8080");
        let (status, headers, body) = send(port, &req);
        ran += 1;
        let place = format!("docs/http.md:{} ({} {})", b.line, req.method, req.path);
        let mut want = answer.body.lines();
        let status_line = want.next().unwrap_or("");
        let want_status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{place}: the answer starts with `HTTP/1.1 CODE REASON`"));
        let body_text = String::from_utf8_lossy(&body).to_string();
        if status != want_status {
            failures.push(format!(
                "{place}: status {status}, documented {want_status}; body: {body_text}"
            ));
            continue;
        }
        // Documented headers, then a blank line, then the documented body.
        let mut in_body = false;
        let mut want_body = String::new();
        for l in want {
            if in_body {
                want_body.push_str(l);
                want_body.push('\n');
            } else if l.trim().is_empty() {
                in_body = true;
            } else {
                let (k, v) = l.split_once(':').unwrap();
                let got = headers
                    .iter()
                    .find(|(hk, _)| *hk == k.trim().to_lowercase())
                    .map(|(_, hv)| hv.as_str());
                if got != Some(v.trim()) {
                    failures.push(format!("{place}: header {l}, got {got:?}"));
                }
            }
        }
        if want_body.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(&want_body) {
            Ok(w) => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(a) => failures.extend(
                    json_matches(&w, &a, "body")
                        .into_iter()
                        .map(|m| format!("{place}: {m}\n  got {a}")),
                ),
                Err(_) => failures.push(format!("{place}: not JSON: {body_text}")),
            },
            Err(_) => {
                for l in want_body.lines().filter(|l| !l.trim().is_empty()) {
                    if !body_text.contains(l.trim()) {
                        failures.push(format!("{place}: no `{l}` in the body:\n{body_text}"));
                    }
                }
            }
        }
        settle(port);
    }
    assert!(ran >= 10, "only {ran} examples ran");
    assert!(
        failures.is_empty(),
        "{}\n\ndaemon log:\n{}",
        failures.join("\n"),
        daemon.log()
    );
}

// ---------------------------------------------------------------------------------
// docs/rule-tests.md
// ---------------------------------------------------------------------------------

/// Each mapping level of a rule test, with an unknown key `zzz` there.
const RULE_TEST_LEVELS: &[&str] = &[
    "- name: x\n  now: 2026-03-02T10:00:00Z\n  zzz: 1\n",
    "- name: x\n  now: 2026-03-02T10:00:00Z\n  lead: { zzz: 1 }\n",
    "- name: x\n  now: 2026-03-02T10:00:00Z\n  events: [ { kind: a, at: -1d, zzz: 1 } ]\n",
    "- name: x\n  now: 2026-03-02T10:00:00Z\n  sends: [ { template: a, at: -1d, zzz: 1 } ]\n",
    "- name: x\n  now: 2026-03-02T10:00:00Z\n  expect: [ { zzz: 1 } ]\n",
];

/// `embudo test` in a demo folder with `files` and `rules/tests/example.yaml`.
fn run_rule_tests(files: &[(String, String)], tests: &str) -> (Option<i32>, String) {
    let f = Folder::demo();
    for (p, c) in files {
        f.write(p, c);
    }
    f.write("rules/tests/example.yaml", tests);
    for e in std::fs::read_dir(f.path().join("rules/tests")).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("example.yaml") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let out = f.embudo().arg("test").output().unwrap();
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn rule_tests_document_every_key_the_parser_accepts() {
    let md = doc("rule-tests.md");
    let mut missing = Vec::new();
    for probe in RULE_TEST_LEVELS {
        let (code, out) = run_rule_tests(&[], probe);
        assert_eq!(code, Some(2), "{probe}\n{out}");
        let keys = expected_names(&out);
        assert!(!keys.is_empty(), "no key list for\n{probe}\n{out}");
        for k in keys {
            if !md.contains(&format!("`{k}`")) && !md.contains(&format!("- {k}:")) {
                missing.push(k);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/rule-tests.md does not document {missing:?}"
    );
}

#[test]
fn every_rule_test_example_runs_as_documented() {
    let md = doc("rule-tests.md");
    let all = blocks(&md);
    let mut ran = 0;
    let mut failures = Vec::new();
    for (i, b) in all.iter().enumerate() {
        if !(b.lang == "yaml" && b.body.contains("now:")) {
            continue;
        }
        // The files an example needs are shown before it.
        let files: Vec<(String, String)> = all[..i]
            .iter()
            .filter_map(|b| Some((b.attrs.get("file")?.clone(), b.body.clone())))
            .collect();
        let want: i32 = b.attrs.get("exit").map_or(0, |e| e.parse().unwrap());
        let (code, out) = run_rule_tests(&files, &b.body);
        ran += 1;
        let place = format!("docs/rule-tests.md:{}", b.line);
        if code != Some(want) {
            failures.push(format!(
                "{place}: `embudo test` exited {code:?}, documented {want}:\n{out}"
            ));
            continue;
        }
        if let Some(t) = all.get(i + 1).filter(|t| t.lang == "text") {
            for l in t.body.lines().filter(|l| !l.trim().is_empty()) {
                if !out
                    .lines()
                    .any(|o| o.trim_end() == l.trim_end() || o.starts_with(l))
                {
                    failures.push(format!("{place}: no line `{l}` in the output:\n{out}"));
                }
            }
        }
    }
    assert!(ran >= 5, "only {ran} examples ran");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
