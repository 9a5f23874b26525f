//! `embudo test [FILTER]`: the rule tests in rules/tests/*.yaml.

use crate::app::AppError;
use crate::clock::Clock;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run only the tests whose name contains this.
    filter: Option<String>,
}

pub fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let loaded = crate::funnel::Loaded::read(config, Clock::system().now())
        .map_err(|e| AppError::Funnel(e.into()))?;
    if let Some(e) = loaded.config_error() {
        return Err(AppError::Funnel(e.into()));
    }
    let cfg = &loaded.funnel.config;
    let tests = cfg.display_path(&cfg.rules_dir().join("tests"));
    let run = crate::tools::ruletest::run(loaded, args.filter.as_deref());
    Ok(crate::tools::ruletest::report(&run, Path::new(&tests)))
}
