//! The source tree keeps the shape ARCHITECTURE.md draws: layers that only look down,
//! no two files that import each other (directly or round a loop), one clock, and
//! functions short enough to read. Read from the source text, as a reviewer would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may use its own layer and those before it.
const LAYERS: &[&str] = &[
    "clock",
    "domain",
    "store",
    "rules",
    "funnel",
    "engine",
    "delivery",
    "ingest",
    "app",
    "tools",
    "interfaces",
];

/// Files allowed to read the wall clock besides `clock.rs`, and why: a lease must
/// expire in real time whatever `--now` says (the leases on a shared pass's batches
/// too); a migration's `applied_at` says when the
/// schema really changed, and nothing reads it back.
const WALL_CLOCK_EXCEPTIONS: &[&str] = &[
    "store/lease.rs",
    "delivery/lease.rs",
    "store/sqlite/migrations.rs",
    "store/postgres/migrations.rs",
    "app/shared_pass.rs",
];

const MAX_FN_LINES: usize = 80;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module file, by module path (`delivery::tracking`), without test modules.
fn modules() -> BTreeMap<String, (PathBuf, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .to_string();
            if !rel.ends_with(".rs") || rel == "main.rs" || rel == "lib.rs" {
                continue;
            }
            let mut parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
            if parts.last() == Some(&"mod") {
                parts.pop();
            }
            if parts.last() == Some(&"tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(parts.join("::"), (path, without_tests(&text)));
        }
    }
    out
}

/// The text before the file's `#[cfg(test)]` module.
fn without_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// The module a path names: its longest prefix that is a module.
fn resolve(path: &str, modules: &BTreeMap<String, (PathBuf, String)>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// `crate::a::b` paths (also inside `use crate::{a, b::c}` groups) and `super::x`.
fn referenced_paths(module: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ident = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':';
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                out.push(item);
            }
        } else {
            out.push(rest.chars().take_while(|c| ident(*c)).collect());
        }
    }
    let parent = module.rsplit_once("::").map(|(p, _)| p).unwrap_or("");
    for (i, _) in text.match_indices("super::") {
        let rest: String = text[i + 7..].chars().take_while(|c| ident(*c)).collect();
        if !parent.is_empty() {
            out.push(format!("{parent}::{rest}"));
        }
    }
    out.into_iter()
        .map(|p| p.trim_end_matches("::").to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// module → the other modules it uses.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut deps = BTreeMap::new();
    for (m, (_, text)) in &modules {
        let used: BTreeSet<String> = referenced_paths(m, text)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|d| d != m && !m.starts_with(&format!("{d}::")))
            .collect();
        deps.insert(m.clone(), used);
    }
    deps
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS.iter().position(|l| *l == top).unwrap_or_else(|| {
        panic!("module `{module}` is in no layer: add `{top}` to LAYERS and ARCHITECTURE.md")
    })
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let mut upward = Vec::new();
    for (m, ds) in dependencies() {
        for d in ds {
            if layer(&d) > layer(&m) {
                upward.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports pointing up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other_even_round_a_loop() {
    let deps = dependencies();
    // A cycle exists when a module reaches itself.
    let mut cycles = BTreeSet::new();
    for start in deps.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((m, trail)) = stack.pop() {
            for d in deps.get(&m).into_iter().flatten() {
                if d == start {
                    let mut loop_ = trail.clone();
                    let first = loop_.iter().min().unwrap().clone();
                    let at = loop_.iter().position(|x| *x == first).unwrap();
                    loop_.rotate_left(at);
                    cycles.insert(loop_.join(" -> "));
                } else if seen.insert(d.clone()) {
                    let mut t = trail.clone();
                    t.push(d.clone());
                    stack.push((d.clone(), t));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles:\n{}",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    let mut readers = Vec::new();
    for (m, (path, text)) in modules() {
        let rel = path
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .to_string();
        if m == "clock" || WALL_CLOCK_EXCEPTIONS.contains(&rel.as_str()) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if ["Utc::now()", "SystemTime::now()", "Local::now()"]
                .iter()
                .any(|c| line.contains(c))
            {
                readers.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        readers.is_empty(),
        "wall-clock reads outside src/clock.rs (take the command's Clock or a `now`):\n{}",
        readers.join("\n")
    );
}

/// `fn` items with their length, by indentation: the body ends at the first line that
/// closes at the `fn`'s own indentation.
fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "pub(crate) async fn ",
            "pub(super) async fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if is_fn && !trimmed.ends_with(';') {
            let name: String = trimmed
                .split("fn ")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let close = format!("{}}}", " ".repeat(indent));
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].starts_with(&close))
                .unwrap_or(i);
            let n = end - i + 1;
            if n > MAX_FN_LINES {
                out.push((name, i + 1, n));
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn no_function_outside_tests_is_longer_than_a_screen_or_two() {
    let mut long = Vec::new();
    for (path, text) in modules().values() {
        let rel = path
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .to_string();
        for (name, line, n) in long_functions(text) {
            long.push(format!("src/{rel}:{line}: {name} has {n} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them into named steps):\n{}",
        long.join("\n")
    );
}
