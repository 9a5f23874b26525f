//! The Rhai engine rules run in: no `eval`, no `import`, no I/O, and hard limits on
//! operations, time, output, call depth and value sizes, so a broken rule cannot stall
//! a tick or flood the log.

use super::api::{self, LeadHandle, Timestamp};
use rhai::{Dynamic, Engine, EvalAltResult, OptimizationLevel, Scope};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Operations one rule may run for one lead: a loop that never ends stops here.
pub const MAX_OPERATIONS: u64 = 200_000;

/// Processor time one rule may take for one lead: a loop of expensive operations
/// (sorting a big array again and again) stops here long before the operation limit.
/// Counted on the thread's CPU clock, not the wall clock, so a machine busy with other
/// work (a build, a backup, the other daemons) does not cut a sound rule short.
pub const RULE_TIME_BUDGET: Duration = Duration::from_millis(50);

/// However busy the machine, a rule is stopped after this many times its budget of
/// wall-clock time, so a pass is never held up for long by one lead.
const WALL_CEILING: u32 = 40;

/// `print`/`debug` lines one lead's evaluation may write to the log in one pass…
pub const MAX_OUTPUT_LINES: usize = 20;
/// …and bytes; then one line says the rest was suppressed.
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024;

/// The clock is read every this many operations (an operation may be a whole `sort`).
const CHECK_EVERY: u64 = 16;

/// What a runaway rule's error says (also how a pass summary recognises one).
pub const RUNAWAY: &str = "(runaway loop?)";

/// The token `on_progress` stops a rule with when its time is up.
const OUT_OF_TIME: &str = "embudo: rule time budget";

/// The run in progress on this thread: its deadline and the output it wrote.
#[derive(Default)]
struct Run {
    /// When to look at the CPU clock: the budget from the start in wall-clock time,
    /// then again by what is left of it (see [`out_of_time`]).
    deadline: Option<Instant>,
    /// The thread's CPU time when the rule began, and the wall-clock ceiling.
    cpu_start: Duration,
    ceiling: Option<Instant>,
    budget: Duration,
    lead: i64,
    file: String,
    lines: usize,
    bytes: usize,
    /// Files whose further output was already announced as suppressed.
    suppressed: Vec<String>,
}

thread_local! {
    static RUN: RefCell<Run> = RefCell::new(Run::default());
    /// What rules print while [`capture_output`] runs on this thread.
    static CAPTURE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f`, also collecting every `print`/`debug` line of the rules it runs as
/// `rules/FILE.rhai: text` (the log still gets them, within its caps): `embudo test`
/// shows them with their test.
pub fn capture_output<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let r = f();
    let lines = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (r, lines)
}

/// A new lead's evaluation: its output count starts again.
pub(crate) fn begin_lead(lead: i64) {
    RUN.with(|r| {
        let mut r = r.borrow_mut();
        *r = Run {
            lead,
            ..Run::default()
        };
    });
}

/// A rule (or audience) `file` starts for the current lead, with `budget` to finish.
pub(crate) fn begin_rule(file: &str, budget: Duration) {
    RUN.with(|r| {
        let mut r = r.borrow_mut();
        r.file.clear();
        r.file.push_str(file);
        r.budget = budget;
        let now = Instant::now();
        r.deadline = now.checked_add(budget);
        r.ceiling = now.checked_add(budget.saturating_mul(WALL_CEILING));
        r.cpu_start = thread_cpu();
    });
}

/// The rule finished: no deadline until the next one starts.
pub(crate) fn end_rule() {
    RUN.with(|r| r.borrow_mut().deadline = None);
}

/// The budget of the rule that runs (or ran last) on this thread.
fn budget() -> Duration {
    RUN.with(|r| r.borrow().budget)
}

/// Whether the rule has used its budget of CPU time (or reached the wall-clock
/// ceiling). The cheap wall clock is read every few operations; the CPU clock (a
/// system call) only once the wall clock says the budget could be spent: if the rule
/// was kept waiting by other work, the deadline moves on by the CPU time it has left.
fn out_of_time() -> bool {
    RUN.with(|r| {
        let mut r = r.borrow_mut();
        let Some(deadline) = r.deadline else {
            return false;
        };
        let now = Instant::now();
        if now < deadline {
            return false;
        }
        let used = thread_cpu().saturating_sub(r.cpu_start);
        if used >= r.budget || r.ceiling.is_some_and(|c| now >= c) {
            return true;
        }
        r.deadline = now.checked_add(r.budget - used);
        false
    })
}

/// The CPU time this thread has used.
#[cfg(unix)]
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into; the clock id is a constant the
    // platform defines. On failure (never seen) the time reads as zero, and the
    // wall-clock ceiling still holds.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Elsewhere, wall-clock time stands in for CPU time.
#[cfg(not(unix))]
fn thread_cpu() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// One `print`/`debug` line: written while the lead's output is under the caps, then
/// one line saying the rest of that file's output is suppressed.
fn output(text: &str, debug: bool) {
    CAPTURE.with(|c| {
        if let Some(lines) = c.borrow_mut().as_mut() {
            let file = RUN.with(|r| r.borrow().file.clone());
            lines.push(format!("{file}: {text}"));
        }
    });
    enum Say {
        Line(i64, String),
        Suppressed(i64, String),
        Nothing,
    }
    let say = RUN.with(|r| {
        let mut r = r.borrow_mut();
        if r.lines < MAX_OUTPUT_LINES && r.bytes + text.len() <= MAX_OUTPUT_BYTES {
            r.lines += 1;
            r.bytes += text.len();
            return Say::Line(r.lead, r.file.clone());
        }
        // Once the cap is reached, nothing more is written for this lead, even short.
        r.lines = MAX_OUTPUT_LINES;
        if r.suppressed.contains(&r.file) {
            return Say::Nothing;
        }
        let file = r.file.clone();
        r.suppressed.push(file.clone());
        Say::Suppressed(r.lead, file)
    });
    match say {
        Say::Line(lead, file) if debug => {
            tracing::debug!(target: "embudo::rules", "{text} (lead={lead} rule={file})")
        }
        Say::Line(lead, file) => {
            tracing::info!(target: "embudo::rules", "{text} (lead={lead} rule={file})")
        }
        Say::Suppressed(lead, file) => tracing::warn!(
            target: "embudo::rules",
            "… further output of {file} suppressed for lead {lead} in this pass (at most {MAX_OUTPUT_LINES} lines and {MAX_OUTPUT_BYTES} bytes per lead)"
        ),
        Say::Nothing => {}
    }
}

/// The message of a runaway error for the user: `None` for any other error. Errors
/// inside a rule's own functions are looked into.
pub(crate) fn runaway_message(e: &EvalAltResult) -> Option<String> {
    match e {
        EvalAltResult::ErrorTerminated(token, _)
            if token.clone().into_string().ok().as_deref() == Some(OUT_OF_TIME) =>
        {
            Some(format!(
                "rule took longer than {} ms for this lead {RUNAWAY}",
                budget().as_millis()
            ))
        }
        EvalAltResult::ErrorTooManyOperations(_) => Some(format!(
            "Too many operations: more than {MAX_OPERATIONS} for this lead {RUNAWAY}"
        )),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => runaway_message(inner),
        _ => None,
    }
}

pub fn engine() -> Engine {
    let mut e = Engine::new();
    e.set_optimization_level(OptimizationLevel::Simple);
    e.set_max_operations(MAX_OPERATIONS);
    e.set_max_call_levels(32);
    e.set_max_expr_depths(64, 32);
    e.set_max_string_size(64 * 1024);
    e.set_max_array_size(10_000);
    e.set_max_map_size(10_000);
    e.set_max_functions(100);
    e.set_max_variables(1_000);
    e.set_strict_variables(true);
    e.disable_symbol("eval");
    e.disable_symbol("import");
    e.disable_symbol("export");
    e.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    e.on_progress(|ops| {
        (ops % CHECK_EVERY == 0 && out_of_time()).then(|| Dynamic::from(OUT_OF_TIME))
    });
    e.on_print(|s| output(s, false));
    e.on_debug(|s, _, pos| output(&format!("{s} (at {pos})"), true));
    api::register(&mut e);
    e
}

/// The names a rule may use without declaring them, for strict-variable checks at
/// compile time. Not constants, so nothing is folded into the compiled rule.
pub fn compile_scope() -> Scope<'static> {
    let mut s = Scope::new();
    s.push("lead", LeadHandle);
    s.push("now", Timestamp(chrono::DateTime::UNIX_EPOCH, 1));
    s
}

/// The scope of one run.
pub fn run_scope(now: chrono::DateTime<chrono::Utc>) -> Scope<'static> {
    let mut s = Scope::new();
    s.push_constant("lead", LeadHandle);
    // `now` moves with the clock: one nanosecond per nanosecond.
    s.push_constant("now", Timestamp(now, 1));
    s
}
