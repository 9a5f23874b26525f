//! The operator's stop and the database's locks under load, with the real binary, a
//! real SMTP server and real SQLite: `embudo pause` and SIGTERM in the middle of a
//! backlog, three daemons on one database, and a tick lock left by a dead process.
//! Each test counts every email received and every outbox row: nothing lost, nothing
//! doubled.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// Every daemon and command of these tests runs on this clock: a Monday morning.
const NOW: &str = "2026-03-02T10:00:00Z";

/// Waits until the server's count stands still for two seconds; returns it.
fn settled(smtp: &SmtpServer) -> usize {
    let mut last = smtp.messages().len();
    let mut still = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while still.elapsed() < Duration::from_secs(2) {
        assert!(Instant::now() < deadline, "the count never settled");
        std::thread::sleep(Duration::from_millis(200));
        let n = smtp.messages().len();
        if n != last {
            last = n;
            still = Instant::now();
        }
    }
    last
}

/// Outbox rows by state, through the library.
fn states(f: &Folder) -> Vec<(String, i64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { f.store().await.outbox_counts().await.unwrap() })
}

fn count(states: &[(String, i64)], state: &str) -> i64 {
    states
        .iter()
        .find(|(s, _)| s == state)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

/// A backlog of `n` welcomes at 20 a second, the daemon sending it.
fn backlog(smtp: &SmtpServer, n: usize) -> (Folder, Daemon) {
    let f = Folder::welcome_funnel(&smtp.url(), "{ rate_per_second: 20 }", n);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let daemon = Daemon::start(&f, &["--now", NOW]);
    wait_until("the first 20 emails", Duration::from_secs(60), || {
        smtp.messages().len() >= 20
    });
    (f, daemon)
}

/// Waits for `n` emails, then checks each of the `n` recipients got exactly one.
fn all_once(smtp: &SmtpServer, n: usize) {
    wait_until("every email", Duration::from_secs(60), || {
        smtp.messages().len() >= n
    });
    let got = by_recipient(smtp);
    assert_eq!(got.len(), n);
    assert!(got.values().all(|ids| ids.len() == 1), "a duplicate");
}

/// At 20 a second, with 4 sends in flight and the pause read every half second, at
/// most this many emails may still leave after the switch.
const AFTER_STOP: usize = 20 + 4;

#[test]
fn pause_mid_backlog_stops_new_sends_within_a_second_and_resume_sends_the_rest_once() {
    let smtp = SmtpServer::start();
    let (f, daemon) = backlog(&smtp, 300);
    f.run(&["pause"], 0);
    let at_pause = smtp.messages().len();
    let after = settled(&smtp);
    println!("at pause: {at_pause}, after: {after}, of 300");
    assert!(
        after - at_pause <= AFTER_STOP,
        "{} emails left after the pause",
        after - at_pause
    );
    assert!(after < 300, "the pause stopped the round before its end");
    let s = states(&f);
    assert_eq!(count(&s, "sent") as usize, after, "{s:?}");
    assert_eq!(count(&s, "sending"), 0, "claimed rows went back: {s:?}");
    assert_eq!(
        (count(&s, "queued") + count(&s, "retry")) as usize,
        300 - after,
        "{s:?}"
    );

    f.run(&["resume"], 0);
    all_once(&smtp, 300);
    daemon.stop();
}

#[test]
fn sigterm_mid_backlog_stops_claiming_at_once_and_exits_in_bounded_time() {
    let smtp = SmtpServer::start();
    let (f, mut daemon) = backlog(&smtp, 300);
    let at_term = smtp.messages().len();
    let (code, took) = daemon.terminate(Duration::from_secs(20));
    let after = settled(&smtp);
    println!("at SIGTERM: {at_term}, after: {after}, exit {code:?} after {took:?}");
    assert_eq!(code, Some(0), "{}", daemon.log());
    assert!(
        after - at_term <= AFTER_STOP,
        "{} emails left after SIGTERM",
        after - at_term
    );
    let s = states(&f);
    assert_eq!(count(&s, "sent") as usize, after, "{s:?}");
    assert_eq!(count(&s, "sending"), 0, "nothing left claimed: {s:?}");

    // The next daemon sends the rest, each once.
    let daemon = Daemon::start(&f, &["--now", NOW]);
    all_once(&smtp, 300);
    daemon.stop();
}

/// A round longer than the sender lease's 30 seconds (100 emails at 2 a second) with
/// three daemons on the database: the lease is renewed while the round runs, so no
/// other daemon takes it, and every email is sent once.
#[test]
fn three_daemons_on_one_database_send_every_email_once_through_a_long_round() {
    let smtp = SmtpServer::start();
    let f = Folder::welcome_funnel(&smtp.url(), "{ rate_per_second: 2 }", 100);
    // The machine's clock, as in production: leases run on the wall clock, and this
    // funnel has no quiet hours or other rule that the hour could change.
    f.run(&["import", "leads.csv"], 0);
    let daemons: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start_named(&f, n, &[]))
        .collect();
    wait_until("all 100 emails", Duration::from_secs(120), || {
        smtp.messages().len() >= 100
    });
    let last = settled(&smtp);
    let got = by_recipient(&smtp);
    let doubled: usize = got.values().map(|ids| ids.len() - 1).sum();
    println!("received {last}, distinct {}, doubled {doubled}", got.len());
    assert_eq!(got.len(), 100, "every email arrived");
    assert_eq!(doubled, 0, "no email twice");
    let s = states(&f);
    assert_eq!(count(&s, "sent"), 100, "{s:?}");
    for d in daemons {
        d.stop();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Writes a tick lock row as a process would that holds it until `until_ms`.
fn hold_tick_lock(f: &Folder, holder: &str, until_ms: i64) {
    assert!(!holder.contains('\''));
    block_on(f.execute(&format!(
        "INSERT INTO locks (name, holder, until) VALUES ('tick', '{holder}', {until_ms}) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until"
    )));
}

/// A process killed (-9) in the middle of a pass leaves the tick lock behind. The
/// fault is injected by writing the lock row such a process leaves (a holder on this
/// machine whose PID is gone, held for an hour): the next tick takes it at once
/// instead of coalescing into a pass nobody runs. A live holder is still respected.
#[test]
fn a_tick_lock_left_by_a_dead_process_is_taken_over_at_once() {
    let f = Folder::welcome_funnel("file://./mail", "{}", 3);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let hour_ahead = chrono::Utc::now().timestamp_millis() + 3_600_000;
    hold_tick_lock(&f, &format!("{}:{dead_pid}:0", hostname()), hour_ahead);
    let out = f.run(&["tick", "--now", NOW], 0);
    assert!(
        stdout(&out).contains("3 leads evaluated"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("its tick lock is taken over"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.mails().len(), 3);

    // A live holder (this test's own process) is waited for: the tick is coalesced.
    hold_tick_lock(
        &f,
        &format!("{}:{}:0", hostname(), std::process::id()),
        hour_ahead,
    );
    let out = f.run(&["tick", "--now", "2026-03-02T10:05:00Z"], 0);
    assert!(
        stderr(&out).contains("another tick is running"),
        "{}",
        stderr(&out)
    );
}

/// A daemon that cannot do its work says so, loudly: while another process holds the
/// database locked, nothing can be written and no pass finishes, and `/healthz`
/// answers 503 with the reasons; once the lock goes, the same daemon answers 200.
#[test]
fn healthz_says_when_the_daemon_cannot_work_and_when_it_can_again() {
    if sqlite_only("another process locks the SQLite file") {
        return;
    }
    let smtp = SmtpServer::start();
    let f = Folder::welcome_funnel(&smtp.url(), "{}", 1);
    // A tick every 2 seconds: a pass is overdue after about 4.
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml"))
        .unwrap()
        .replace("0 0 0 1 1 *", "*/2 * * * * *");
    f.write("embudo.yaml", &yaml);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let mut daemon = Daemon::start(&f, &["--now", NOW]);
    let port = daemon.port();
    let health = || http(port, "GET", "/healthz", None, b"");
    wait_until("a healthy daemon", Duration::from_secs(30), || {
        health().0 == 200
    });

    let locker = Locker::lock(&f.path().join("embudo.db"));
    let mut body = String::new();
    wait_until("/healthz to answer 503", Duration::from_secs(90), || {
        let (status, b) = health();
        body = b;
        status == 503
    });
    println!("while locked: {body}");
    assert!(
        body.contains("database") || body.contains("evaluation pass"),
        "{body}"
    );
    locker.release();
    wait_until(
        "/healthz to answer 200 again",
        Duration::from_secs(90),
        || health().0 == 200,
    );
    assert!(daemon.alive(), "{}", daemon.log());
    daemon.stop();
}
