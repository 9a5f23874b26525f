//! What one scenario cost: wall time, CPU (as a share of one core, so 200 % is both
//! cores busy) and peak resident memory, read from Linux's /proc. Elsewhere the CPU and
//! memory columns are left empty rather than guessed.

use std::time::{Duration, Instant};

/// Clock ticks a second in /proc/PID/stat (USER_HZ: 100 on every Linux architecture
/// Rust targets).
const TICKS_PER_SEC: f64 = 100.0;

/// What a scenario cost.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub wall: Duration,
    /// CPU time over wall time, in percent of one core.
    pub cpu_pct: Option<f64>,
    /// Peak resident set during the scenario, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// Started before a scenario, read after it.
pub struct Stopwatch {
    /// The /proc folders of the processes measured.
    procs: Vec<String>,
    started: Instant,
    cpu_at_start: Option<f64>,
}

impl Stopwatch {
    /// Measures this process: its peak is reset, so the peak read is this scenario's.
    pub fn start() -> Stopwatch {
        Stopwatch::of(None)
    }

    /// Measures another process (a daemon the bench started). Its peak cannot be reset:
    /// it is the peak of its life so far.
    pub fn of(pid: Option<u32>) -> Stopwatch {
        Stopwatch::of_all(vec![proc_dir(pid)])
    }

    /// Measures several daemons together: their CPU added up, the largest peak.
    pub fn of_daemons(pids: impl IntoIterator<Item = Option<u32>>) -> Stopwatch {
        Stopwatch::of_all(pids.into_iter().map(proc_dir).collect())
    }

    fn of_all(procs: Vec<String>) -> Stopwatch {
        for proc in &procs {
            // "5" resets the peak resident set (VmHWM) to the current one (Linux ≥ 4.0).
            let _ = std::fs::write(format!("{proc}/clear_refs"), "5");
        }
        let cpu_at_start = cpu_of(&procs);
        Stopwatch {
            procs,
            started: Instant::now(),
            cpu_at_start,
        }
    }

    pub fn stop(&self) -> Cost {
        let wall = self.started.elapsed();
        let cpu_pct = match (self.cpu_at_start, cpu_of(&self.procs)) {
            (Some(a), Some(b)) if wall > Duration::ZERO => {
                Some(100.0 * (b - a) / wall.as_secs_f64())
            }
            _ => None,
        };
        let peak_rss_mib = self
            .procs
            .iter()
            .filter_map(|p| peak_rss_mib(p))
            .reduce(f64::max);
        Cost {
            wall,
            cpu_pct,
            peak_rss_mib,
        }
    }
}

/// The CPU seconds of all these processes, if each can be read.
fn cpu_of(procs: &[String]) -> Option<f64> {
    procs.iter().map(|p| cpu_seconds(p)).sum()
}

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".into(),
    }
}

/// User plus system CPU seconds of the process so far (fields 14 and 15 of stat, after
/// the command name, which may itself hold spaces and is closed by the last ')').
fn cpu_seconds(proc: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("{proc}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

fn peak_rss_mib(proc: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("{proc}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_scenario_shows_cpu_and_memory() {
        let watch = Stopwatch::start();
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let cost = watch.stop();
        assert!(cost.wall >= Duration::from_millis(200));
        if cfg!(target_os = "linux") {
            assert!(cost.cpu_pct.unwrap() > 10.0, "{cost:?}");
            assert!(cost.peak_rss_mib.unwrap() > 0.0);
        }
    }
}
