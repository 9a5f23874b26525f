//! The bench's results: one row a scenario, rendered as the Markdown table of
//! BENCHMARKS.md. The table is written between two markers, so the analysis and
//! profiles a person writes around it survive the next run.

use super::measure::Cost;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Where a row goes in BENCHMARKS.md: each section between markers of its own, so a
/// run of one part (`--only daemons`) leaves the other's table as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// One process on SQLite on disk: the scenarios of the performance targets.
    Sqlite,
    /// Several daemons on one PostgreSQL database.
    Postgres,
}

impl Section {
    pub const ALL: [Section; 2] = [Section::Sqlite, Section::Postgres];

    fn markers(self) -> (&'static str, &'static str) {
        match self {
            Section::Sqlite => (
                "<!-- bench:start (written by `embudo bench`; edit outside the markers) -->",
                "<!-- bench:end -->",
            ),
            Section::Postgres => (
                "<!-- bench:postgres:start (written by `embudo bench`; edit outside the markers) -->",
                "<!-- bench:postgres:end -->",
            ),
        }
    }
}

/// Most memory any scenario may take (the bound for a million leads).
pub const RSS_LIMIT_MIB: f64 = 300.0;

/// What a scenario must reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At least this many units a second.
    Rate(f64),
    /// At most this long.
    Time(Duration),
    /// At least this share of the SMTP ceiling measured in the same run.
    Ceiling(f64),
    None,
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    /// How much work, e.g. 1000000 and "leads".
    pub units: usize,
    pub unit: &'static str,
    pub cost: Cost,
    pub target: Target,
    /// For `Target::Ceiling`: the ceiling's rate, units a second.
    pub ceiling: Option<f64>,
    pub note: String,
    pub section: Section,
}

impl Row {
    pub fn new(scenario: impl Into<String>, units: usize, unit: &'static str, cost: Cost) -> Row {
        Row {
            scenario: scenario.into(),
            units,
            unit,
            cost,
            target: Target::None,
            ceiling: None,
            note: String::new(),
            section: Section::Sqlite,
        }
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = target;
        self
    }

    pub fn on(mut self, section: Section) -> Row {
        self.section = section;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// Units a second.
    pub fn rate(&self) -> f64 {
        self.units as f64 / self.cost.wall.as_secs_f64().max(1e-9)
    }

    /// Whether the target was reached (memory included); `None` without a target.
    pub fn met(&self) -> Option<bool> {
        let rss_ok = self.cost.peak_rss_mib.is_none_or(|m| m <= RSS_LIMIT_MIB);
        let ok = match self.target {
            Target::Rate(r) => self.rate() >= r,
            Target::Time(t) => self.cost.wall <= t,
            Target::Ceiling(share) => self.ceiling.is_some_and(|c| self.rate() >= share * c),
            Target::None => return (!rss_ok).then_some(false),
        };
        Some(ok && rss_ok)
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::Rate(r) => format!("≥ {}/s", si(r)),
            Target::Time(t) => format!("≤ {} s", t.as_secs()),
            Target::Ceiling(share) => match self.ceiling {
                Some(c) => format!("≥ {share} × {}/s", si(c)),
                None => format!("≥ {share} × ceiling (not measured)"),
            },
            Target::None => "—".into(),
        }
    }
}

/// 12345.6 → "12.3k", for rates people compare at a glance.
pub fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The Markdown table of these rows.
pub fn markdown(rows: &[Row]) -> String {
    let mut t = String::from(
        "| scenario | size | time | throughput | CPU (100 % = 1 core) | peak RSS | target | met | note |\n\
         |---|---:|---:|---:|---:|---:|---|---|---|\n",
    );
    for r in rows {
        let cpu = r.cost.cpu_pct.map_or("—".into(), |c| format!("{c:.0} %"));
        let rss = r
            .cost
            .peak_rss_mib
            .map_or("—".into(), |m| format!("{m:.0} MiB"));
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            t,
            "| {} | {} {} | {:.2} s | {} {}/s | {cpu} | {rss} | {} | {met} | {} |",
            r.scenario,
            r.units,
            r.unit,
            r.cost.wall.as_secs_f64(),
            si(r.rate()),
            r.unit,
            r.target_text(),
            r.note
        );
    }
    t
}

/// Puts `text` between the markers of `section` in the file at `path` (created if
/// missing; the text outside the markers is kept).
pub fn write_into(path: &Path, section: Section, text: &str) -> std::io::Result<()> {
    let (start, end) = section.markers();
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let block = format!("{start}\n{text}{end}");
    let new = match (old.find(start), old.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + end.len()..]),
        _ if old.is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{old}\n{block}\n"),
    };
    // Written beside and renamed: an interrupted run never leaves half a file.
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, new)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(secs: f64, rss: f64) -> Cost {
        Cost {
            wall: Duration::from_secs_f64(secs),
            cpu_pct: Some(150.0),
            peak_rss_mib: Some(rss),
        }
    }

    #[test]
    fn a_row_is_met_by_its_rate_and_its_memory() {
        let fast = Row::new("import", 1000, "leads", cost(0.5, 20.0)).target(Target::Rate(1000.0));
        assert_eq!(fast.met(), Some(true));
        let slow = Row::new("import", 1000, "leads", cost(2.0, 20.0)).target(Target::Rate(1000.0));
        assert_eq!(slow.met(), Some(false));
        let fat = Row::new("import", 1000, "leads", cost(0.5, 400.0)).target(Target::Rate(1000.0));
        assert_eq!(fat.met(), Some(false));
        let mut sent =
            Row::new("send", 1000, "emails", cost(1.0, 20.0)).target(Target::Ceiling(0.25));
        assert_eq!(sent.met(), Some(false), "no ceiling measured: not met");
        sent.ceiling = Some(4000.0);
        assert_eq!(sent.met(), Some(true));
        assert!(markdown(&[sent]).contains("| send | 1000 emails | 1.00 s | 1000 emails/s | 150 % | 20 MiB | ≥ 0.25 × 4000/s | yes |"));
    }

    #[test]
    fn the_table_replaces_only_what_is_between_the_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        write_into(&path, Section::Sqlite, "first\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n## Profiles\nkept\n")).unwrap();
        write_into(&path, Section::Sqlite, "second\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("second") && !text.contains("first"), "{text}");
        assert!(text.contains("## Profiles\nkept"), "{text}");
        // Each section has markers of its own: writing one leaves the other.
        write_into(&path, Section::Postgres, "daemons\n").unwrap();
        write_into(&path, Section::Sqlite, "third\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("third") && text.contains("daemons"), "{text}");
        assert!(text.contains("## Profiles\nkept"), "{text}");
    }
}
