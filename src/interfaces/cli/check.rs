//! `embudo check [--smtp]`: every problem of the folder at once, in the manner of rustc.

use crate::app::AppError;
use crate::clock::Clock;
use crate::funnel::check;
use crate::funnel::config::Config;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also connect to the configured SMTP server (nothing is sent): what it offers
    /// (STARTTLS, AUTH, its name) and whether smtp.url's TLS mode and the
    /// credentials will work with it.
    #[arg(long)]
    smtp: bool,
}

/// Exit 0 when clean; 1 for problems in the folder; 2 for problems in embudo.yaml.
pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    // Every problem at once: the config's (exit 2) and the folder's (exit 1).
    let checked = match check::check_all(config, Clock::system().now()) {
        Ok(c) => c,
        Err(crate::funnel::FunnelError::Config(e)) => {
            eprint!("{}", check::config_diagnostic(&e).render());
            return Ok(2);
        }
        Err(e) => return Err(AppError::Funnel(e)),
    };
    for w in &checked.warnings {
        println!("{}", w.render_as("warning"));
    }
    for n in &checked.notes {
        println!("{}", n.render_as("note"));
    }
    for p in &checked.config {
        eprintln!("{}", p.render());
    }
    for p in &checked.folder {
        println!("{}", p.render());
    }
    let n = checked.config.len() + checked.folder.len();
    let code = if n == 0 {
        println!("{}: ok", config.display());
        0
    } else {
        println!("{n} problem(s) found");
        if checked.config.is_empty() { 1 } else { 2 }
    };
    if !args.smtp {
        return Ok(code);
    }
    Ok(code.max(smtp(&checked.settings).await))
}

/// `check --smtp`: talks to the SMTP server and prints what it offers; 1 when embudo
/// will not be able to send through it as configured.
async fn smtp(cfg: &Config) -> i32 {
    println!("\nSMTP server:");
    let p = match crate::delivery::probe::probe(cfg).await {
        Err(why) => {
            println!("  {why}");
            return 0;
        }
        Ok(p) => p,
    };
    for f in &p.facts {
        println!("  {f}");
    }
    for n in &p.notes {
        println!("  note: {n}");
    }
    for (m, hint) in &p.problems {
        println!("error: {m}");
        if let Some(h) = hint {
            println!("  = help: {h}");
        }
    }
    if p.problems.is_empty() {
        println!("embudo can send through this server as configured");
        0
    } else {
        println!("embudo cannot send through this server as configured");
        1
    }
}
