//! `embudo bench --quick`, as CI runs it: every scenario at small sizes against real
//! processes (a daemon for HTTP, aiosmtpd for sending), failing if a scenario did other
//! work than it should (the bench checks its own counts), and the table written
//! between BENCHMARKS.md's markers with what is around them kept.

mod support;

use std::process::Command;
use support::*;

const SCENARIOS: [&str; 11] = [
    "import leads (CSV)",
    "import events (CSV, a year of them)",
    "first pass: every lead queues an email",
    "steady pass: nothing changes",
    "first tick's delivery, demo limits (file)",
    "report",
    "HTTP POST /events, 100 a request",
    "HTTP POST /events, 1 a request",
    "send to an SMTP sink",
    "simulate 3 days at a 1-hour step",
    "| scenario | size | time | throughput |",
];

#[test]
fn the_quick_bench_runs_every_scenario_and_writes_its_table() {
    if sqlite_only("embudo bench builds its own SQLite funnels; the SQLite run covers it") {
        return;
    }
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    std::fs::write(&out, "# Benchmarks\n\nWritten by hand, kept.\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_embudo"))
        .args([
            "bench",
            "--quick",
            "--smtp",
            &format!("127.0.0.1:{}", smtp.port),
        ])
        .arg("--out")
        .arg(&out)
        .arg("--dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("# Benchmarks\n\nWritten by hand, kept.\n"),
        "{text}"
    );
    for scenario in SCENARIOS {
        assert!(text.contains(scenario), "no `{scenario}` in:\n{text}");
    }
    assert!(
        text.contains("1140 sent, 860 held"),
        "the demo's limits held the rest:\n{text}"
    );
    // Every email of the sending scenario reached the server, once.
    assert_eq!(smtp.messages().len(), 300);
    // The same table went to stdout.
    assert!(
        stdout(&run).contains("| report | 2000 leads |"),
        "{}",
        stdout(&run)
    );
}

/// The daemons' part on the PostgreSQL run: one and three `embudo run` on one database
/// share a tick's pass and deliver every welcome once, and the rows go to a section of
/// BENCHMARKS.md of their own, leaving the SQLite table as it was.
#[test]
fn the_quick_bench_measures_one_and_three_daemons_on_postgresql() {
    if postgres_only("the daemons' part needs a PostgreSQL server") {
        return;
    }
    let server = std::env::var("EMBUDO_TEST_POSTGRES").unwrap();
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let sqlite_table = "<!-- bench:start (written by `embudo bench`; edit outside the markers) -->\nkept\n<!-- bench:end -->";
    std::fs::write(&out, format!("# Benchmarks\n\n{sqlite_table}\n")).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_embudo"))
        .args([
            "bench",
            "--quick",
            "--only",
            "daemons",
            "--postgres",
            &server,
        ])
        .args(["--smtp", &format!("127.0.0.1:{}", smtp.port)])
        .arg("--out")
        .arg(&out)
        .arg("--dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(sqlite_table), "{text}");
    for row in [
        "| PostgreSQL tick, 1 daemon(s) | 2000 leads |",
        "| PostgreSQL send, 1 daemon(s) | 2000 emails |",
        "| PostgreSQL tick, 3 daemon(s) | 2000 leads |",
        "| PostgreSQL send, 3 daemon(s) | 2000 emails |",
    ] {
        assert!(text.contains(row), "no `{row}` in:\n{text}");
    }
    assert!(
        text.contains("<!-- bench:postgres:end -->"),
        "the PostgreSQL section has its markers:\n{text}"
    );
    // Each count of daemons delivered every welcome, once.
    let got = by_recipient(&smtp);
    assert_eq!(got.len(), 2000, "every lead welcomed");
    for (to, ids) in &got {
        assert_eq!(
            ids.len(),
            2,
            "{to}: once with one daemon, once with three: {ids:?}"
        );
    }
}
