//! A bench funnel: the demo `embudo init` writes (its stages, rules and templates), with
//! the few settings a scenario changes, so every scenario measures the funnel a new
//! user starts from.

use super::BenchError;
use std::path::{Path, PathBuf};

/// The sending policy a scenario runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limits {
    /// The demo's: 2,000 emails a day, quiet hours, 3 a week a lead. Only the rate is
    /// lifted (it paces against the wall clock, which is not what is measured).
    Demo,
    /// No capacity, no quiet hours: every queued email goes (the sending scenario).
    Unbounded,
}

/// Writes the demo into `dir` (emptied first: a scenario starts from no data) and
/// adapts its embudo.yaml; returns its path.
pub fn funnel(dir: &Path, smtp_url: &str, limits: Limits) -> Result<PathBuf, BenchError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| BenchError::io(format!("empty {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| BenchError::io(format!("create {}", dir.display()), e))?;
    crate::funnel::scaffold::init(dir, true).map_err(BenchError::Setup)?;
    let path = dir.join("embudo.yaml");
    let mut edits = vec![
        ("url: file://./outbox-mail", format!("url: \"{smtp_url}\"")),
        (
            "rate_per_second: 20 ",
            "rate_per_second: 10000 ".to_string(),
        ),
        // Every lead is evaluated by the scenario itself, never by a daemon's timer.
        (
            "tick: \"0 */5 * * * *\"",
            "tick: \"0 0 3 1 1 *\"".to_string(),
        ),
        (
            "seed: { leads: leads.csv, events: events.csv }",
            String::new(),
        ),
    ];
    if limits == Limits::Unbounded {
        edits.push(("daily_capacity: 2000 ", "daily_capacity: 100000000 ".into()));
        edits.push((
            "quiet_hours: { from: \"21:00\", to: \"08:00\" }",
            String::new(),
        ));
    }
    edit(&path, &edits)?;
    Ok(path)
}

/// Replaces each `from` of `edits` in the funnel's embudo.yaml once; a `from` no
/// longer there is a bench to update, not a silent change of what is measured.
pub fn edit(path: &Path, edits: &[(&str, String)]) -> Result<(), BenchError> {
    let mut text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::io(format!("read {}", path.display()), e))?;
    for (from, to) in edits {
        if !text.contains(from) {
            return Err(BenchError::Setup(format!(
                "the demo's embudo.yaml no longer has `{from}`: update src/tools/bench/setup.rs"
            )));
        }
        text = text.replacen(from, to, 1);
    }
    std::fs::write(path, text).map_err(|e| BenchError::io(format!("write {}", path.display()), e))
}

/// The bench's app on a funnel, its clock held at `t0`, with a fixed link-signing key
/// (no key is generated and stored, and nothing warns about it).
pub async fn app(yaml: &Path) -> Result<crate::app::App, BenchError> {
    Ok(crate::app::App::builder(yaml)
        .clock(crate::clock::Clock::Held(super::t0()))
        .signer(crate::delivery::signing::Signer::new(
            SIGNING_KEY.as_bytes(),
        ))
        .build()
        .await?)
}

/// `n` generated leads written to the funnel's folder and imported at `t0`, untimed:
/// the starting point of the scenarios that measure something else.
pub async fn app_with_leads(
    dir: &Path,
    yaml: &Path,
    n: usize,
) -> Result<crate::app::App, BenchError> {
    let csv = dir.join("leads.csv");
    super::data::write_leads(&csv, n, super::t0(), super::SEED)
        .map_err(|e| BenchError::io("write leads.csv", e))?;
    let app = app(yaml).await?;
    let cfg = &app.funnel().config;
    crate::ingest::csv::import_file(&app.store, cfg, &csv, false, super::t0()).await?;
    Ok(app)
}

/// A port free on the loopback now, for a server the bench starts.
pub fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BenchError::io("find a free port", e))
}

/// The link-signing key of every bench funnel (and of the daemon the HTTP part starts).
pub const SIGNING_KEY: &str = "bench-signing-key-0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapted_demo_loads() {
        let dir = tempfile::tempdir().unwrap();
        for limits in [Limits::Demo, Limits::Unbounded] {
            let path = funnel(dir.path(), "smtp://127.0.0.1:2525?tls=none", limits).unwrap();
            let at = "2026-03-02T10:00:00Z".parse().unwrap();
            let f = crate::funnel::Funnel::load(&path, at).unwrap();
            assert_eq!(f.config.limits.rate_per_second, 10_000.0);
            assert_eq!(
                f.config.limits.quiet_hours.is_some(),
                limits == Limits::Demo
            );
            assert!(f.config.seed.leads.is_none() && f.config.seed.events.is_none());
        }
    }
}
