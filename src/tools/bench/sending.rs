//! Delivery to a real SMTP server: Postfix's smtp-sink, started here, which accepts
//! and drops every message. In the same run Postfix's smtp-source sends as many
//! messages of the same size to the same sink: that is the ceiling the machine and the
//! sink allow, and embudo's rate is reported as a share of it.

use super::measure::Stopwatch;
use super::setup::{self, Limits};
use super::{BenchError, Options, Row, Target, data, expect, shown, t0};
use crate::app::{App, Step};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The target: five thousand emails a second, and a quarter of the ceiling.
const RATE: f64 = 5_000.0;
const SHARE: f64 = 0.25;
/// smtp-source's sessions at once, with connections reused (`-d`), like a pool.
const SOURCE_SESSIONS: &str = "8";

pub async fn run(opts: &Options) -> Result<Vec<Row>, BenchError> {
    let dir = opts.work.join("send");
    let Some((sink, addr)) = target(opts, "send")? else {
        return Ok(Vec::new());
    };
    let yaml = setup::funnel(&dir, &format!("smtp://{addr}?tls=none"), Limits::Unbounded)?;
    let app = queue(&dir, &yaml, opts.sends).await?;

    let watch = Stopwatch::start();
    let stop = CancellationToken::new();
    let step = app.step(Step::DeliverOnly, t0(), &stop).await?;
    let cost = watch.stop();
    let s = "send to an SMTP sink";
    let d = step.delivery.ok_or_else(|| BenchError::Wrong {
        scenario: s.into(),
        message: "another sender holds the lease".into(),
    })?;
    expect(s, d.sent == opts.sends, || {
        format!("{} of {} sent ({d:?})", d.sent, opts.sends)
    })?;
    let mut rows = vec![shown(
        Row::new(s, d.sent, "emails", cost)
            .target(Target::Rate(RATE))
            .note(format!("to {addr}")),
    )];
    if let Some(sink) = &sink {
        let size = message_size(&app).await?;
        let ceiling = sink.ceiling(opts.sends, size)?;
        let mut share = Row::new(
            "send: share of smtp-source's ceiling",
            d.sent,
            "emails",
            cost,
        )
        .target(Target::Ceiling(SHARE));
        share.ceiling = Some(opts.sends as f64 / ceiling.as_secs_f64());
        share.note = format!(
            "ratio {:.2}; smtp-source -s {SOURCE_SESSIONS} -d, {size}-byte messages",
            share.rate() / share.ceiling.unwrap_or(1.0)
        );
        rows.push(shown(share));
    }
    Ok(rows)
}

/// The SMTP server a sending scenario sends to: `--smtp`, else a smtp-sink started
/// here (with it, the address). `None`, said on stderr, when there is neither.
pub(super) fn target(
    opts: &Options,
    part: &str,
) -> Result<Option<(Option<Sink>, String)>, BenchError> {
    Ok(match &opts.smtp {
        Some(addr) => Some((None, addr.clone())),
        None => match Sink::start()? {
            Some(sink) => {
                let addr = format!("127.0.0.1:{}", sink.port);
                Some((Some(sink), addr))
            }
            None => {
                eprintln!(
                    "  {part}: Postfix's smtp-sink is not installed (apt-get install postfix); skipped"
                );
                None
            }
        },
    })
}

/// Imports `n` leads and runs the first pass: each queues its welcome.
async fn queue(dir: &Path, yaml: &Path, n: usize) -> Result<App, BenchError> {
    let app = setup::app_with_leads(dir, yaml, n).await?;
    let funnel = app.funnel();
    let p = crate::engine::pass::evaluate_all(&app.store, &funnel, t0()).await?;
    expect("send: queue", p.queued == n, || {
        format!("{} of {n} emails queued", p.queued)
    })?;
    Ok(app)
}

/// The size of lead 0's welcome email as sent (its .eml), so smtp-source sends
/// messages as big as embudo's.
async fn message_size(app: &App) -> Result<usize, BenchError> {
    let p = crate::tools::preview::preview_lead(app, "edu-welcome", &data::email(0), t0()).await?;
    Ok(p.eml().len())
}

/// Postfix's smtp-sink on a free port, stopped when dropped.
pub(super) struct Sink {
    child: std::process::Child,
    port: u16,
}

impl Sink {
    /// `None` when Postfix's tools are not installed.
    fn start() -> Result<Option<Sink>, BenchError> {
        let Some(exe) = postfix_tool("smtp-sink") else {
            return Ok(None);
        };
        let port = setup::free_port()?;
        let mut cmd = std::process::Command::new(exe);
        // As root, smtp-sink insists on dropping to another user once it listens.
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .args([format!("127.0.0.1:{port}"), "256".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::io("start smtp-sink", e))?;
        let sink = Sink { child, port };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                return Err(BenchError::Setup(
                    "smtp-sink did not listen within 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(sink))
    }

    /// How long smtp-source takes to send `n` messages of `size` bytes to the sink.
    fn ceiling(&self, n: usize, size: usize) -> Result<Duration, BenchError> {
        let exe = postfix_tool("smtp-source")
            .ok_or_else(|| BenchError::Setup("smtp-source is not installed".into()))?;
        let started = Instant::now();
        let status = std::process::Command::new(exe)
            .args([
                "-s",
                SOURCE_SESSIONS,
                "-d",
                "-m",
                &n.to_string(),
                "-l",
                &size.to_string(),
            ])
            .args([
                "-f",
                "bench@bench.example",
                "-t",
                "sink@bench.example",
                &format!("127.0.0.1:{}", self.port),
            ])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| BenchError::io("run smtp-source", e))?;
        if !status.success() {
            return Err(BenchError::Setup(format!("smtp-source failed: {status}")));
        }
        Ok(started.elapsed())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Postfix program on PATH or in /usr/sbin (not on a user's PATH on Debian).
fn postfix_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
