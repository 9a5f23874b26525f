//! Rules: every `rules/*.rhai` compiled once into a [`RuleSet`], run per lead in a
//! sandboxed Rhai engine.
//!
//! Evaluation is a pure function of a lead, its history and a clock: it returns the
//! lead's changes and never touches the database, so the daemon, `tick`, rule tests and
//! simulation all run the same code.

pub mod api;
mod audience;
mod eval;
pub mod horizon;
mod sandbox;

pub use api::{Action, Catalog};
pub use audience::Audience;
pub use eval::Evaluation;
pub use sandbox::{
    MAX_OPERATIONS, MAX_OUTPUT_BYTES, MAX_OUTPUT_LINES, RULE_TIME_BUDGET, capture_output,
};

use rhai::{AST, Engine};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A problem in a rule, with the position to fix.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    /// The file, as the user would type it (`rules/10_interest.rhai`).
    pub file: String,
    pub rule: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for RuleError {}

impl RuleError {
    /// A rule stopped by the time budget or the operation limit: where it stopped
    /// differs from lead to lead, so a pass counts it once per file, not per position.
    pub fn is_runaway(&self) -> bool {
        self.message.ends_with(sandbox::RUNAWAY)
    }

    /// The key a pass summary counts this error under: one entry per distinct error
    /// (a runaway rule: one per file and message, wherever it was stopped).
    pub fn summary_key(&self) -> String {
        if self.is_runaway() {
            format!("{}: {}", self.file, self.message)
        } else {
            self.to_string()
        }
    }
}

/// The error a rule run ended with, at its position; a runaway rule says so plainly.
fn run_error(file: &str, rule: &str, mut e: Box<rhai::EvalAltResult>) -> RuleError {
    let runaway = sandbox::runaway_message(&e);
    let pos = e.take_position();
    RuleError {
        file: file.to_string(),
        rule: rule.to_string(),
        line: pos.line().unwrap_or(0),
        col: pos.position().unwrap_or(0),
        message: runaway.unwrap_or_else(|| e.to_string()),
    }
}

/// What a caught panic said.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// One compiled rule.
pub struct Rule {
    pub name: String,
    pub file: String,
    ast: AST,
}

/// The compiled rules of a funnel folder, in file-name order, and the engine that runs
/// them. Shared read-only between threads.
pub struct RuleSet {
    engine: Engine,
    pub rules: Vec<Rule>,
    pub catalog: Arc<Catalog>,
    /// Wall-clock time each rule (and audience) may take for one lead
    /// ([`RULE_TIME_BUDGET`] unless a caller sets another).
    pub time_budget: std::time::Duration,
    /// Whether evaluations report their [`Evaluation`]'s `horizon` (a simulation
    /// asks; the daemon's passes do not, and pay nothing for it).
    pub track_horizon: bool,
}

impl RuleSet {
    /// Compiles every `*.rhai` directly under `dir`. A rule that does not compile is
    /// left out and reported; the others still run.
    pub fn load(
        dir: &Path,
        display_root: &Path,
        catalog: Catalog,
    ) -> std::io::Result<(RuleSet, Vec<RuleError>)> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rhai"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        files.sort();
        let mut sources = Vec::with_capacity(files.len());
        for f in files {
            let src = std::fs::read_to_string(&f)?;
            let shown = f
                .strip_prefix(display_root)
                .unwrap_or(&f)
                .display()
                .to_string();
            sources.push((shown, src));
        }
        Ok(RuleSet::compile(sources, catalog))
    }

    /// Compiles rules given as (file, source), in the order given.
    pub fn compile(sources: Vec<(String, String)>, catalog: Catalog) -> (RuleSet, Vec<RuleError>) {
        let engine = sandbox::engine();
        let scope = sandbox::compile_scope();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (file, src) in sources {
            let name = Path::new(&file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.clone());
            match engine.compile_with_scope(&scope, &src) {
                Ok(ast) => rules.push(Rule { name, file, ast }),
                Err(e) => {
                    let (line, col) = (e.1.line().unwrap_or(1), e.1.position().unwrap_or(1));
                    errors.push(RuleError {
                        file,
                        rule: name,
                        line,
                        col,
                        message: e.0.to_string(),
                    });
                }
            }
        }
        (
            RuleSet {
                engine,
                rules,
                catalog: Arc::new(catalog),
                time_budget: RULE_TIME_BUDGET,
                track_horizon: false,
            },
            errors,
        )
    }

    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests;

/// Stage and template names written as string literals in a rule
/// (`move_to("evaluation")`, `send("edu-welcome")`, `sent("x", …)`, `last_sent("x")`),
/// with their 1-based line and column, so `check` can name a typo before any lead
/// meets it. Line comments are skipped.
pub fn literal_names(src: &str) -> Vec<(&'static str, String, usize, usize)> {
    const CALLS: [(&str, &str); 4] = [
        ("move_to", "stage"),
        ("send", "template"),
        ("sent", "template"),
        ("last_sent", "template"),
    ];
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let code = match line.find("//") {
            Some(c) if !line[..c].contains('"') => &line[..c],
            _ => line,
        };
        for (call, kind) in CALLS {
            let pat = format!("{call}(");
            let mut from = 0;
            while let Some(p) = code[from..].find(&pat) {
                let at = from + p;
                from = at + pat.len();
                let boundary = at == 0
                    || !code.as_bytes()[at - 1].is_ascii_alphanumeric()
                        && code.as_bytes()[at - 1] != b'_';
                let rest = code[from..].trim_start();
                if !boundary || !rest.starts_with('"') {
                    continue;
                }
                let Some(end) = rest[1..].find('"') else {
                    continue;
                };
                let col = code.len() - rest.len() + 1;
                out.push((kind, rest[1..1 + end].to_string(), i + 1, col));
            }
        }
        // `lead.stage == "evaluation"` and `!=`: a misspelt stage never matches.
        let mut from = 0;
        while let Some(p) = code[from..].find("lead.stage") {
            let at = from + p;
            from = at + "lead.stage".len();
            let rest = code[from..].trim_start();
            let Some(rest) = rest.strip_prefix("==").or_else(|| rest.strip_prefix("!=")) else {
                continue;
            };
            let rest = rest.trim_start();
            if !rest.starts_with('"') {
                continue;
            }
            let Some(end) = rest[1..].find('"') else {
                continue;
            };
            let col = code.len() - rest.len() + 1;
            out.push(("stage", rest[1..1 + end].to_string(), i + 1, col));
        }
    }
    out
}

/// Calls to actions (`send`, `move_to`, `tag`, `untag`, `set`) with their 1-based line
/// and column: an audience may only read, and `check` says so before it fires.
pub fn action_calls(src: &str) -> Vec<(&'static str, usize, usize)> {
    const ACTIONS: [&str; 5] = ["send", "move_to", "tag", "untag", "set"];
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let code = match line.find("//") {
            Some(c) if !line[..c].contains('"') => &line[..c],
            _ => line,
        };
        for name in ACTIONS {
            let mut from = 0;
            while let Some(p) = code[from..].find(name) {
                let at = from + p;
                from = at + name.len();
                let before = at.checked_sub(1).map(|b| code.as_bytes()[b]);
                let boundary =
                    before.is_none_or(|b| !b.is_ascii_alphanumeric() && b != b'_' && b != b'.');
                if boundary && code[from..].trim_start().starts_with('(') {
                    out.push((name, i + 1, at + 1));
                }
            }
        }
    }
    out
}
