//! docs/rules.md is the reference of the rule API, and every example in it runs here
//! through the real binary, so the reference cannot drift from the code.
//!
//! How the document is read (it says the same to its readers):
//! - a ```` ```yaml,config ```` block is the `embudo.yaml` every example runs in;
//! - a ```` ```rhai ```` block (or several in a row, each starting with a
//!   `// rules/NAME.rhai` comment) is followed by a ```` ```yaml ```` block of rule tests
//!   in the format of `rules/tests/*.yaml`; `embudo test` must pass them all. An
//!   optional ```` ```text ```` block right after lists lines `embudo test` must print
//!   (rule errors: then the tests fail only because of the errors shown);
//! - ```` ```rhai,ignore ```` fragments are not run, but `embudo check` must accept them;
//! - ```` ```rhai,compile_fail ```` blocks are followed by a ```` ```text ```` block with
//!   the errors `embudo check` reports for them.
//!
//! Every function, getter and variable the rule API registers (read from
//! `src/rules/api.rs` and `src/rules/sandbox.rs`) must appear in a tested example.

mod support;

use std::collections::BTreeSet;
use support::*;

const DOC: &str = "docs/rules.md";

/// A fenced block of the document.
#[derive(Debug, Clone)]
struct Block {
    /// The info string split on commas: `rhai,ignore` → ["rhai", "ignore"].
    info: Vec<String>,
    /// The line of the opening fence (1-based).
    line: usize,
    body: String,
}

impl Block {
    fn is(&self, info: &str) -> bool {
        self.info.join(",") == info
    }
}

/// Rule files of one example: (name, source).
type Rules = Vec<(String, String)>;

/// What the document holds, in order.
#[derive(Debug)]
enum Item {
    /// Rules, their tests, and optionally lines `embudo test` must print.
    Example {
        line: usize,
        rules: Rules,
        tests: Block,
        output: Option<Block>,
    },
    /// Fragments `embudo check` must accept.
    Fragment(Block),
    /// Rules `embudo check` must reject with the errors of the text block.
    CompileFail {
        line: usize,
        rules: Rules,
        output: Block,
    },
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, l) in md.lines().enumerate() {
        match (&mut open, l.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
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

/// `// rules/20_qualify.rhai` on a block's first line names its file.
fn named_file(b: &Block) -> Option<String> {
    let first = b.body.lines().next()?.trim();
    let name = first.strip_prefix("// rules/")?.strip_suffix(".rhai")?;
    Some(name.to_string())
}

/// Consecutive blocks with `info` from `blocks[i]`: the rule files of one example.
fn rule_group(blocks: &[Block], i: &mut usize, info: &str, errors: &mut Vec<String>) -> Rules {
    let mut group = Vec::new();
    while *i < blocks.len() && blocks[*i].is(info) {
        group.push(blocks[*i].clone());
        *i += 1;
    }
    let mut rules: Rules = Vec::new();
    for b in &group {
        let name = match named_file(b) {
            Some(n) => n,
            None if group.len() == 1 => "example".to_string(),
            None => {
                errors.push(format!(
                    "{DOC}:{}: an example of several rules names each file on its first line, e.g. `// rules/20_qualify.rhai`",
                    b.line
                ));
                continue;
            }
        };
        if rules.iter().any(|(n, _)| *n == name) {
            errors.push(format!("{DOC}:{}: rules/{name}.rhai twice", b.line));
        }
        rules.push((name, b.body.clone()));
    }
    rules
}

/// The `embudo.yaml` of the examples and the items, or the document's layout errors.
fn parse(md: &str) -> Result<(String, Vec<Item>), Vec<String>> {
    let blocks = blocks(md);
    let mut config = None;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        let b = blocks[i].clone();
        match b.info.join(",").as_str() {
            "yaml,config" => {
                config = Some(b.body);
                i += 1;
            }
            "rhai" => {
                let rules = rule_group(&blocks, &mut i, "rhai", &mut errors);
                match blocks.get(i) {
                    Some(t) if t.is("yaml") => {
                        i += 1;
                        let output = match blocks.get(i) {
                            Some(o) if o.is("text") => {
                                i += 1;
                                Some(o.clone())
                            }
                            _ => None,
                        };
                        items.push(Item::Example {
                            line: b.line,
                            rules,
                            tests: t.clone(),
                            output,
                        });
                    }
                    _ => errors.push(format!(
                        "{DOC}:{}: this ```rhai block has no ```yaml block of tests after it; add one, or mark a fragment ```rhai,ignore",
                        b.line
                    )),
                }
            }
            "rhai,ignore" => {
                items.push(Item::Fragment(b));
                i += 1;
            }
            "rhai,compile_fail" => {
                let rules = rule_group(&blocks, &mut i, "rhai,compile_fail", &mut errors);
                match blocks.get(i) {
                    Some(t) if t.is("text") => {
                        i += 1;
                        items.push(Item::CompileFail {
                            line: b.line,
                            rules,
                            output: t.clone(),
                        });
                    }
                    _ => errors.push(format!(
                        "{DOC}:{}: a ```rhai,compile_fail block needs a ```text block after it with the errors `embudo check` reports",
                        b.line
                    )),
                }
            }
            "yaml" | "text" => {
                errors.push(format!(
                    "{DOC}:{}: a ```{} block that belongs to no ```rhai block",
                    b.line,
                    b.info.join(",")
                ));
                i += 1;
            }
            info if info.starts_with("rhai") => {
                errors.push(format!("{DOC}:{}: unknown block kind ```{info}", b.line));
                i += 1;
            }
            _ => i += 1,
        }
    }
    match config {
        None => errors.push(format!(
            "{DOC}: no ```yaml,config block (the embudo.yaml the examples run in)"
        )),
        Some(_) if errors.is_empty() => return Ok((config.unwrap_or_default(), items)),
        Some(_) => {}
    }
    Err(errors)
}

/// The literal first arguments of `call(` in `src`: `send("edu-welcome")` → edu-welcome.
fn literal_args<'a>(src: &'a str, call: &str) -> Vec<&'a str> {
    let pat = format!("{call}(\"");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = src[from..].find(&pat) {
        let at = from + p;
        from = at + pat.len();
        let before = src[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = src[from..].find('"') {
            out.push(&src[from..from + end]);
        }
    }
    out
}

/// Every template an example or fragment names, in its rules or its tests.
fn template_names(items: &[Item]) -> BTreeSet<String> {
    fn walk(v: &serde_yaml::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    if let (Some("send" | "template"), Some(s)) = (k.as_str(), v.as_str()) {
                        out.insert(s.to_string());
                    }
                    walk(v, out);
                }
            }
            serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for item in items {
        let (sources, tests): (Vec<&str>, Option<&Block>) = match item {
            Item::Example { rules, tests, .. } => {
                (rules.iter().map(|(_, s)| s.as_str()).collect(), Some(tests))
            }
            Item::Fragment(b) => (vec![b.body.as_str()], None),
            // Their typos must stay unknown templates.
            Item::CompileFail { .. } => continue,
        };
        for src in sources {
            for call in ["send", "sent", "last_sent"] {
                out.extend(literal_args(src, call).into_iter().map(str::to_string));
            }
        }
        if let Some(t) = tests
            && let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&t.body)
        {
            walk(&v, &mut out);
        }
    }
    out
}

/// A funnel folder with the examples' config, a template for every name, and `rules`.
fn folder(config: &str, templates: &BTreeSet<String>, rules: &Rules) -> Folder {
    let f = Folder::with_files(&[("embudo.yaml", config)]);
    for t in templates {
        f.write(
            &format!("templates/{t}.html"),
            &format!("---\nsubject: \"Tienda Sol: {t}\"\n---\n<p>{t}</p>\n"),
        );
    }
    for (name, src) in rules {
        f.write(&format!("rules/{name}.rhai"), src);
    }
    f
}

fn output_of(o: &std::process::Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o))
}

/// The lines of a ```text block that must appear in the output.
/// `embudo check` shows each problem in the manner of rustc (message, ` --> place`,
/// the line with a caret, `= help:`); the reference writes each as one line,
/// `error: place: message; help`, which is what this folds the output into.
fn one_line_errors(out: &str) -> String {
    let mut folded = String::new();
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(message) = l.strip_prefix("error: ") else {
            continue;
        };
        let mut place = String::new();
        let mut help = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("error: ") || next.trim().is_empty() && place.is_empty() {
                break;
            }
            let next = lines.next().unwrap().trim();
            if let Some(p) = next.strip_prefix("--> ") {
                place = p.to_string();
            } else if let Some(h) = next.strip_prefix("= help: ") {
                help = format!("; {h}");
            } else if next.is_empty() {
                break;
            }
        }
        folded.push_str(&format!("error: {place}: {message}{help}\n"));
    }
    folded
}

fn wanted_lines(b: &Block) -> Vec<&str> {
    b.body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Runs one example's tests; the problems found, if any.
fn run_example(
    config: &str,
    templates: &BTreeSet<String>,
    line: usize,
    rules: &Rules,
    tests: &Block,
    output: Option<&Block>,
) -> Option<String> {
    let cases: Vec<serde_yaml::Value> = match serde_yaml::from_str(&tests.body) {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "{DOC}:{}: the ```yaml block is not a list of rule tests: {e}",
                tests.line
            ));
        }
    };
    if cases.is_empty() {
        return Some(format!(
            "{DOC}:{}: the ```yaml block has no test",
            tests.line
        ));
    }
    let f = folder(config, templates, rules);
    f.write("rules/tests/example.yaml", &tests.body);
    let o = f.embudo().arg("test").output().unwrap();
    let out = stdout(&o);
    let all = format!("{out}{}", stderr(&o));
    let mut problems = Vec::new();
    match output {
        None => {
            if o.status.code() != Some(0) {
                problems.push(format!("`embudo test` exited {:?}", o.status.code()));
            }
            let summary = format!("test result: ok. {} passed, 0 failed", cases.len());
            if !out.contains(&summary) {
                problems.push(format!("no `{summary}`"));
            }
        }
        Some(want) => {
            let lines = wanted_lines(want);
            let failing = lines
                .iter()
                .any(|l| l.starts_with("rule error:") || l.starts_with("error:"));
            let code = if failing { 1 } else { 0 };
            if o.status.code() != Some(code) {
                problems.push(format!(
                    "`embudo test` exited {:?}, not {code}",
                    o.status.code()
                ));
            }
            if out.contains("expected (-) and actual (+) actions differ") {
                problems.push("the actions differ from the expectations".into());
            }
            for l in &lines {
                if !all.contains(l) {
                    problems.push(format!(
                        "`{l}` was not printed (```text block at line {})",
                        want.line
                    ));
                }
            }
            for l in out
                .lines()
                .filter(|l| l.starts_with("rule error:") || l.starts_with("error:"))
            {
                if !lines.iter().any(|w| l.contains(w)) {
                    problems.push(format!("an error the ```text block does not show: `{l}`"));
                }
            }
        }
    }
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "{DOC}:{line}: example failed: {}\n{}",
        problems.join("; "),
        output_of(&o)
    ))
}

fn load() -> (String, Vec<Item>, BTreeSet<String>) {
    let md = std::fs::read_to_string(repo().join(DOC)).expect("docs/rules.md");
    let (config, items) = match parse(&md) {
        Ok(x) => x,
        Err(errors) => panic!("{}", errors.join("\n")),
    };
    let templates = template_names(&items);
    (config, items, templates)
}

#[test]
fn every_example_in_the_rule_reference_passes_its_tests() {
    let (config, items, templates) = load();
    let mut failures = Vec::new();
    let mut examples = 0;
    let mut fragments: Rules = Vec::new();
    for item in &items {
        match item {
            Item::Example {
                line,
                rules,
                tests,
                output,
            } => {
                examples += 1;
                failures.extend(run_example(
                    &config,
                    &templates,
                    *line,
                    rules,
                    tests,
                    output.as_ref(),
                ));
            }
            // The file name carries the line, so `check` points into the document.
            Item::Fragment(b) => {
                fragments.push((format!("fragment_at_line_{}", b.line), b.body.clone()))
            }
            Item::CompileFail {
                line,
                rules,
                output,
            } => {
                let f = folder(&config, &templates, rules);
                let o = f.embudo().arg("check").output().unwrap();
                let out = one_line_errors(&stdout(&o));
                let mut problems = Vec::new();
                if o.status.code() != Some(1) {
                    problems.push(format!(
                        "`embudo check` exited {:?}, not 1",
                        o.status.code()
                    ));
                }
                let lines = wanted_lines(output);
                for l in &lines {
                    if !out.contains(l) {
                        problems.push(format!("`{l}` was not printed"));
                    }
                }
                for l in out.lines().filter(|l| l.starts_with("error:")) {
                    if !lines.iter().any(|w| l.contains(w)) {
                        problems.push(format!("an error the ```text block does not show: `{l}`"));
                    }
                }
                if !problems.is_empty() {
                    failures.push(format!(
                        "{DOC}:{line}: compile_fail example: {}\n{}",
                        problems.join("; "),
                        output_of(&o)
                    ));
                }
            }
        }
    }
    if !fragments.is_empty() {
        let f = folder(&config, &templates, &fragments);
        let o = f.embudo().arg("check").output().unwrap();
        if o.status.code() != Some(0) {
            failures.push(format!(
                "a ```rhai,ignore fragment does not compile (rules/fragment_at_line_N.rhai is the block at line N of {DOC}):\n{}",
                output_of(&o)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) in {DOC} ({examples} examples):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        examples >= 30,
        "only {examples} examples: was the document cut?"
    );
}

#[test]
fn a_wrong_expectation_in_the_reference_would_fail() {
    let (config, items, templates) = load();
    let Some(Item::Example {
        line,
        rules,
        tests,
        output: None,
    }) = items
        .iter()
        .find(|i| matches!(i, Item::Example { output: None, .. }))
    else {
        panic!("no plain example in {DOC}");
    };
    let mut cases: Vec<serde_yaml::Mapping> = serde_yaml::from_str(&tests.body).unwrap();
    let expect = cases[0]
        .entry("expect".into())
        .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
    let mut wrong = serde_yaml::Mapping::new();
    wrong.insert("tag".into(), "deliberately-wrong".into());
    expect
        .as_sequence_mut()
        .unwrap()
        .push(serde_yaml::Value::Mapping(wrong));
    let broken = Block {
        body: serde_yaml::to_string(&cases).unwrap(),
        ..tests.clone()
    };
    let problem = run_example(&config, &templates, *line, rules, &broken, None)
        .expect("a wrong expectation must fail the example");
    assert!(problem.contains("  - tag: deliberately-wrong"), "{problem}");
}

/// A call's arguments: `send("x", key)` at `(` → 2.
fn arity(after_paren: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut args = 0usize;
    let mut any = false;
    let mut in_str = false;
    let mut chars = after_paren.chars();
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return Some(if any { args + 1 } else { 0 }),
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => args += 1,
            c if c.is_whitespace() => continue,
            _ => {}
        }
        any = true;
    }
    None
}

/// Every (name, number of arguments) called in `src`; a method call `x.f(a)` counts
/// its receiver, as Rhai does.
fn calls(src: &str) -> BTreeSet<(String, usize)> {
    let mut out = BTreeSet::new();
    let b = src.as_bytes();
    for (i, _) in src.match_indices('(') {
        let start = src[..i]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        let name = &src[start..i];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let method = start > 0 && b[start - 1] == b'.';
        if let Some(n) = arity(&src[i + 1..]) {
            out.insert((name.to_string(), n + usize::from(method)));
        }
    }
    out
}

/// What `src/rules/api.rs` registers: functions (name, arity), property getters, and
/// operators, read from the registration calls.
fn registered_api() -> (
    BTreeSet<(String, usize)>,
    BTreeSet<String>,
    BTreeSet<String>,
) {
    let src: String = std::fs::read_to_string(repo().join("src/rules/api.rs"))
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (mut fns, mut getters, mut ops) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for pat in ["register_fn(\"", "register_get(\"", "volatile!(engine,\""] {
        for (p, _) in src.match_indices(pat) {
            let rest = &src[p + pat.len()..];
            let name = rest.split('"').next().unwrap();
            if pat.starts_with("register_get") {
                getters.insert(name.to_string());
            } else if let Some(g) = name.strip_prefix("get$") {
                getters.insert(g.to_string());
            } else if !name.starts_with(|c: char| c.is_alphabetic()) {
                ops.insert(name.to_string());
            } else {
                let params = rest[name.len()..]
                    .strip_prefix("\",|")
                    .and_then(|r| r.split('|').next())
                    .unwrap_or_else(|| panic!("cannot read the parameters of `{name}` in api.rs"));
                let mut depth = 0i32;
                let mut n = usize::from(!params.is_empty());
                for c in params.chars() {
                    match c {
                        '<' | '(' => depth += 1,
                        '>' | ')' => depth -= 1,
                        ',' if depth == 0 => n += 1,
                        _ => {}
                    }
                }
                fns.insert((name.to_string(), n));
            }
        }
    }
    assert!(
        fns.len() > 20 && getters.len() > 15,
        "reading api.rs found too little: {fns:?} {getters:?}"
    );
    (fns, getters, ops)
}

#[test]
fn the_reference_shows_every_part_of_the_rule_api_in_a_tested_example() {
    let (_, items, _) = load();
    let tested: String = items
        .iter()
        .filter_map(|i| match i {
            Item::Example { rules, .. } => Some(joined(rules)),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Comments don't count: the API must be used, not mentioned.
    let code: String = tested
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let used = calls(&code);
    let (fns, getters, ops) = registered_api();
    let mut missing = Vec::new();
    for (name, n) in &fns {
        // `debug(x)` is how a rule calls `to_debug`.
        let shown = match name.as_str() {
            "to_debug" => used.iter().any(|(f, _)| f == "debug"),
            _ => used.contains(&(name.clone(), *n)),
        };
        if !shown {
            missing.push(format!("{name} with {n} argument(s)"));
        }
    }
    for g in &getters {
        let shown = code.match_indices(&format!(".{g}")).any(|(p, m)| {
            !code[p + m.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '(')
        });
        if !shown {
            missing.push(format!("the property .{g}"));
        }
    }
    // The sandbox: the variables every rule sees, print and debug.
    let sandbox = std::fs::read_to_string(repo().join("src/rules/sandbox.rs")).unwrap();
    let mut vars = BTreeSet::new();
    for pat in ["push(\"", "push_constant(\""] {
        for (p, _) in sandbox.match_indices(pat) {
            let name = sandbox[p + pat.len()..].split('"').next().unwrap();
            vars.insert(name.to_string());
        }
    }
    assert!(vars.contains("lead") && vars.contains("now"), "{vars:?}");
    for v in &vars {
        if !code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == v)
        {
            missing.push(format!("the variable `{v}`"));
        }
    }
    for (hook, call) in [("on_print", "print"), ("on_debug", "debug")] {
        if sandbox.contains(hook) && !used.iter().any(|(f, _)| f == call) {
            missing.push(format!("{call}(…)"));
        }
    }
    // Overloads told apart by type, not by count.
    for (what, snippet) in [
        ("a fractional duration", "hours(1.5)"),
        (
            "send(template, integer key)",
            "send(\"back-to-school\", year)",
        ),
        ("days_since(()) ", "days_since(last_sent("),
    ] {
        if !code.contains(snippet) {
            missing.push(format!("{what} (`{snippet}`)"));
        }
    }
    assert!(
        missing.is_empty(),
        "{DOC} has no tested example of:\n  {}",
        missing.join("\n  ")
    );
    // Operators are shown in the arithmetic section; a new one needs documenting there.
    let known: BTreeSet<String> = ["+", "-", "*", "==", "!=", "<", "<=", ">", ">="]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        ops, known,
        "the operators registered in api.rs changed: document them in {DOC} (\"Time\"), then update this list"
    );
    // The symbols the sandbox disables each have a compile_fail example.
    let rejected: String = items
        .iter()
        .filter_map(|i| match i {
            Item::CompileFail { rules, .. } => Some(joined(rules)),
            _ => None,
        })
        .collect();
    for (p, _) in sandbox.match_indices("disable_symbol(\"") {
        let sym = sandbox[p + 16..].split('"').next().unwrap();
        assert!(
            rejected.contains(sym),
            "{DOC}: no ```rhai,compile_fail example shows that `{sym}` is disabled"
        );
    }
}

/// The sources of an item's rules, one after another.
fn joined(rules: &[(String, String)]) -> String {
    rules
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
