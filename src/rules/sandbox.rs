//! The Rhai engine rules run in: no `eval`, no `import`, no I/O, and hard limits on
//! operations, call depth and value sizes, so a broken rule cannot stall a tick.

use super::api::{self, LeadHandle, Timestamp};
use rhai::{Engine, OptimizationLevel, Scope};

/// Operations one rule may run for one lead: a loop that never ends stops here.
pub const MAX_OPERATIONS: u64 = 200_000;

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
    e.on_print(|s| tracing::info!(target: "embudo::rules", "{s}"));
    e.on_debug(|s, src, pos| tracing::debug!(target: "embudo::rules", source = src.unwrap_or(""), %pos, "{s}"));
    api::register(&mut e);
    e
}

/// The names a rule may use without declaring them, for strict-variable checks at
/// compile time. Not constants, so nothing is folded into the compiled rule.
pub fn compile_scope() -> Scope<'static> {
    let mut s = Scope::new();
    s.push("lead", LeadHandle);
    s.push("now", Timestamp(chrono::DateTime::UNIX_EPOCH));
    s
}

/// The scope of one run.
pub fn run_scope(now: chrono::DateTime<chrono::Utc>) -> Scope<'static> {
    let mut s = Scope::new();
    s.push_constant("lead", LeadHandle);
    s.push_constant("now", Timestamp(now));
    s
}
