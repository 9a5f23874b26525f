//! What the daemon knows about its own health, for `/healthz`: each supervised task
//! that is down (and why), when the last evaluation pass finished against when the
//! next was due, and whether the database took its last write. Tasks report into it;
//! the HTTP API reads it. A daemon that cannot do its work says so here, loudly,
//! instead of answering "ok".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Health(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    /// Task → why it is down (it is being restarted).
    down: BTreeMap<&'static str, String>,
    /// When the last pass ended, and the longest wait allowed before the next ends.
    last_pass: Option<Instant>,
    pass_due_within: Option<Duration>,
    /// The last database write error, until a write succeeds.
    write_error: Option<String>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while it was held; the data
        // (a few flags) is still meaningful.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `task` died (a panic or an error it cannot get past) and is being restarted.
    pub fn task_down(&self, task: &'static str, why: impl Into<String>) {
        self.state().down.insert(task, why.into());
    }

    /// `task` is running again.
    pub fn task_up(&self, task: &'static str) {
        self.state().down.remove(task);
    }

    /// A pass finished now; the next must finish within `within` (two tick intervals).
    pub fn pass_done(&self, within: Option<Duration>) {
        let mut s = self.state();
        s.last_pass = Some(Instant::now());
        s.pass_due_within = within;
    }

    /// A write to the database failed (disk full, read-only, locked).
    pub fn write_failed(&self, why: impl Into<String>) {
        self.state().write_error = Some(why.into());
    }

    /// A write to the database succeeded.
    pub fn write_ok(&self) {
        self.state().write_error = None;
    }

    /// Every reason the daemon is not healthy; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        let s = self.state();
        let mut out: Vec<String> = s
            .down
            .iter()
            .map(|(t, why)| format!("task `{t}` is down (restarting): {why}"))
            .collect();
        if let (Some(last), Some(within)) = (s.last_pass, s.pass_due_within)
            && last.elapsed() > within
        {
            out.push(format!(
                "no evaluation pass for {}s (more than two tick intervals)",
                last.elapsed().as_secs()
            ));
        }
        if let Some(e) = &s.write_error {
            out.push(format!("the database cannot be written: {e}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_task_an_overdue_pass_and_a_failed_write_are_each_reported_until_they_clear() {
        let h = Health::new();
        assert!(h.problems().is_empty());
        h.task_down("ticker", "panicked: boom");
        h.write_failed("database or disk is full");
        h.pass_done(Some(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(5));
        let p = h.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("ticker") && p[0].contains("boom"));
        h.task_up("ticker");
        h.write_ok();
        h.pass_done(Some(Duration::from_secs(600)));
        assert!(h.problems().is_empty());
    }
}
