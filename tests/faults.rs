//! Faults, with the real binary and a real SMTP server process: a daemon killed with
//! -9 in the middle of 1,000 emails, the SMTP server down for a while, a hard bounce,
//! and a database that is locked or read-only. Nothing is lost; duplicates are at most
//! the emails in flight at the kill.

mod support;

use std::time::Duration;
use support::*;

fn folder(smtp_url: &str, limits: &str, leads: usize) -> Folder {
    Folder::welcome_funnel(smtp_url, limits, leads)
}

#[tokio::test]
async fn kill_9_in_the_middle_of_1000_emails_loses_none_and_duplicates_at_most_those_in_flight() {
    let smtp = SmtpServer::start();
    let f = folder(&smtp.url(), "{ rate_per_second: 1000 }", 1000);
    f.run(&["import", "leads.csv"], 0);
    let daemon = Daemon::start(&f, &[]);
    wait_until(
        "300 emails before the kill",
        Duration::from_secs(60),
        || smtp.messages().len() >= 300,
    );
    daemon.kill();
    let at_kill = smtp.messages().len();
    let in_flight = {
        let store = f.store().await;
        let n = store
            .outbox_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| s == "sending")
            .map(|(_, n)| n)
            .unwrap_or(0);
        store.close().await;
        n
    };

    // The restarted daemon takes over at once (the old process is gone) and finishes.
    let daemon = Daemon::start(&f, &[]);
    wait_until("all 1000 recipients", Duration::from_secs(120), || {
        by_recipient(&smtp).len() >= 1000
    });
    std::thread::sleep(Duration::from_millis(500));
    daemon.stop();

    let got = by_recipient(&smtp);
    let total: usize = got.values().map(|v| v.len()).sum();
    let duplicates = total - got.len();
    println!(
        "kill -9 after {at_kill} emails: {in_flight} row(s) claimed, {} received by 1000 recipients, {duplicates} duplicate(s)",
        total
    );
    assert_eq!(got.len(), 1000, "every email arrives");
    // Rows claimed at the kill were `sending`, but only the sends under way (at most
    // 4 at once) can have reached the server unrecorded.
    assert!(
        duplicates <= 4 && duplicates as i64 <= in_flight,
        "{duplicates} duplicates, {in_flight} claimed at the kill"
    );
    // A duplicate is the same email: a retry keeps its Message-ID, so clients fold it.
    for (to, ids) in &got {
        assert!(ids.iter().all(|id| id == &ids[0]), "{to}: {ids:?}");
    }
    let store = f.store().await;
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        [("sent".to_string(), 1000)]
    );
}

#[test]
fn with_the_smtp_server_down_emails_wait_and_all_arrive_when_it_is_back() {
    let port = free_port();
    let f = folder(&url_for(port), "{ retry_after: 1s }", 20);
    f.run(&["import", "leads.csv"], 0);
    let daemon = Daemon::start(&f, &[]);
    daemon.wait_log("temporary failure, will retry", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let smtp = SmtpServer::start_on(port);
    wait_until(
        "20 emails after the server came back",
        Duration::from_secs(60),
        || smtp.messages().len() >= 20,
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = daemon.log();
    daemon.stop();
    let got = by_recipient(&smtp);
    assert_eq!(got.len(), 20);
    // While it was down, a batch stopped trying after the first failures instead of
    // every email failing (and logging) on its own.
    let failures = log.matches("temporary failure, will retry").count();
    let summaries = log.matches("the SMTP server is unreachable").count();
    println!("server down: {failures} failure line(s), {summaries} summary line(s)");
    assert!(summaries > 0, "{log}");
    // At most the sends already under way (4) and the one being started fail on their own.
    assert!(
        failures <= 5 * summaries,
        "{failures} failures for {summaries} rounds:\n{log}"
    );
    assert_eq!(
        got.values().map(|v| v.len()).sum::<usize>(),
        20,
        "no duplicates"
    );
}

#[tokio::test]
async fn a_hard_bounce_suppresses_that_address_and_records_an_event_the_rules_read() {
    let smtp = SmtpServer::rejecting(&["lead0002@example.com"]);
    let f = folder(&smtp.url(), "{}", 3);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    // A bounce is a failure the operator should see: the tick exits 1.
    let out = stdout(&f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 1));
    assert!(out.contains("sent 2") && out.contains("bounced 1"), "{out}");
    let got = by_recipient(&smtp);
    assert_eq!(got.len(), 2);
    assert!(!got.keys().any(|k| k.contains("lead0002")));
    // The next pass: the rules see the `bounced` event.
    f.run(&["tick", "--now", "2026-03-02T10:05:00Z"], 0);
    let lead = f.lead("lead0002@example.com").await;
    assert!(lead.tags.contains("bounced"), "{:?}", lead.tags);
    assert!(lead.unsubscribed_at.is_some());
    let list = stdout(&f.run(&["outbox", "list", "--lead", "lead0002@example.com"], 0));
    assert!(
        list.contains("hard bounce") && list.contains("550"),
        "{list}"
    );
    // Nothing more goes to it, whatever the rules ask.
    f.write("rules/20_more.rhai", "send(\"welcome\", \"again\");\n");
    let out = stdout(&f.run(&["tick", "--now", "2026-03-02T10:10:00Z"], 0));
    assert!(
        out.contains("sent 2") && out.contains("suppressed 1"),
        "{out}"
    );
}

#[test]
fn a_locked_database_is_a_clear_error_and_the_next_run_loses_nothing() {
    if sqlite_only("another process locks the SQLite file") {
        return;
    }
    let smtp = SmtpServer::start();
    let f = folder(&smtp.url(), "{}", 2);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    // Another process holds an exclusive lock for longer than embudo waits (10 s).
    let db = f.path().join("embudo.db");
    let locker = Locker::lock(&db);
    let out = f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 1);
    let e = stderr(&out);
    assert!(
        e.contains("database is busy or locked by another process"),
        "{e}"
    );
    assert!(smtp.messages().is_empty());
    locker.release();
    let out = stdout(&f.run(&["tick", "--now", "2026-03-02T10:01:00Z"], 0));
    assert!(out.contains("sent 2"), "{out}");
    assert_eq!(by_recipient(&smtp).len(), 2);
}

#[test]
fn a_read_only_database_is_a_clear_error_and_nothing_stored_changes() {
    if sqlite_only("a SQLite file opened read-only (mode=ro)") {
        return;
    }
    let f = folder("file://./mail", "{}", 2);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let before = std::fs::read(f.path().join("embudo.db")).unwrap();
    let url = format!("sqlite://{}?mode=ro", f.path().join("embudo.db").display());
    let out = f
        .embudo()
        .env("EMBUDO_DATABASE_URL", &url)
        .args(["tick", "--now", "2026-03-02T10:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("database is read-only") && stderr(&out).contains("permissions"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(f.path().join("embudo.db")).unwrap(), before);
    assert!(f.mails().is_empty());
}

/// A daemon whose database is locked for a while logs it, keeps running, and carries
/// on when the lock goes: no crash loop.
#[test]
fn a_running_daemon_rides_out_a_locked_database() {
    if sqlite_only("another process locks the SQLite file") {
        return;
    }
    let smtp = SmtpServer::start();
    let f = folder(&smtp.url(), "{}", 1);
    f.write(
        "embudo.yaml",
        &std::fs::read_to_string(f.path().join("embudo.yaml"))
            .unwrap()
            .replace("0 0 0 1 1 *", "*/2 * * * * *"),
    );
    f.run(&["import", "leads.csv"], 0);
    let mut daemon = Daemon::start(&f, &[]);
    wait_until("the first email", Duration::from_secs(20), || {
        !smtp.messages().is_empty()
    });
    let db = f.path().join("embudo.db");
    // Held for longer than the daemon waits (10 s): until it has said so.
    let locker = Locker::lock(&db);
    daemon.wait_log("database is busy or locked", 1, Duration::from_secs(60));
    locker.release();
    assert!(daemon.alive(), "the daemon survived:\n{}", daemon.log());
    // After the lock: a new lead is welcomed by the same daemon.
    f.write("more.csv", "email,name\nnew@example.com,New\n");
    f.run(&["import", "more.csv"], 0);
    wait_until("the new lead's email", Duration::from_secs(20), || {
        smtp.messages().len() >= 2
    });
    daemon.stop();
}
