//! `embudo test [FILTER]`: the rule tests in rules/tests/*.yaml.

use super::open;
use crate::app::AppError;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run only the tests whose name contains this.
    filter: Option<String>,
}

pub fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let cfg = open::config(config)?;
    let run = crate::tools::ruletest::run(&cfg, args.filter.as_deref());
    Ok(crate::tools::ruletest::report(
        &run,
        Path::new(&cfg.display_path(&cfg.rules_dir().join("tests"))),
    ))
}
