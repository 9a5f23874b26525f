//! An `embudo run` the bench starts: this very binary, on a bench funnel, its clock
//! starting at an instant the bench chooses, its log in a file of its own, killed when
//! dropped.

use super::client::request;
use super::{BenchError, setup};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A daemon under test.
pub struct Daemon {
    child: tokio::process::Child,
    pub port: u16,
    /// Its log (`NAME.log` beside the funnel).
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `embudo run --now NOW` on the funnel `yaml`, logging at `level` to
    /// `dir/NAME.log`, with `env` set, and waits for its `/healthz`.
    pub async fn start(
        yaml: &Path,
        dir: &Path,
        name: &str,
        level: &str,
        env: &[(&str, &str)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Daemon, BenchError> {
        let port = setup::free_port()?;
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .map_err(|e| BenchError::io(format!("create {}", log.display()), e))?;
        let exe = std::env::current_exe().map_err(|e| BenchError::io("find this program", e))?;
        let child = tokio::process::Command::new(exe)
            .args([
                "run",
                "--now",
                &now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--config")
            .arg(yaml)
            .env("EMBUDO_SIGNING_KEY", setup::SIGNING_KEY)
            .env("EMBUDO_LOG", level)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::io("start the daemon", e))?;
        let mut daemon = Daemon { child, port, log };
        daemon.wait_ready().await?;
        Ok(daemon)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails unless it is still running (its log tells why it stopped).
    pub fn alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::Setup(format!(
                "the daemon exited ({status}); its log, {}:\n{}",
                self.log.display(),
                tail(&self.log_text())
            ))),
            _ => Ok(()),
        }
    }

    async fn wait_ready(&mut self) -> Result<(), BenchError> {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            self.alive()?;
            if let Ok((200, _)) = request(self.port, "GET", "/healthz", "").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::Setup(
            "the daemon did not answer /healthz within 60 s".into(),
        ))
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The last lines of a log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
