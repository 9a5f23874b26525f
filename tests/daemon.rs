//! The daemon on its schedule, its clock, and refusing plaintext when TLS is required.

mod support;

use std::time::Duration;
use support::*;

fn set_tick(f: &Folder, cron: &str) {
    let p = f.path().join("embudo.yaml");
    let src = std::fs::read_to_string(&p).unwrap();
    let out: Vec<String> = src
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("tick:") {
                format!("  tick: \"{cron}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(p, out.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn the_daemon_evaluates_on_its_cron_schedule_with_a_clock_started_at_now() {
    let smtp = SmtpServer::start();
    let f = Folder::demo();
    f.set_smtp_url(&smtp.url());
    set_tick(&f, "*/2 * * * * *");
    // The daemon's clock starts on a Monday morning: no quiet hours, whenever the suite runs.
    let daemon = Daemon::start(&f, &["--now", "2026-03-02T10:00:00Z"]);
    daemon.wait_log("evaluation pass", 1, Duration::from_secs(20));
    // A lead imported while the daemon runs is welcomed by the next scheduled pass.
    f.write("one.csv", "email,name\nana@example.com,Ana\n");
    f.run(&["import", "one.csv", "--now", "2026-03-02T10:00:01Z"], 0);
    let mail = smtp.wait_for(1, Duration::from_secs(15));
    daemon.stop();
    assert_eq!(mail.len(), 1, "a scheduled pass welcomed the new lead");
    assert_eq!(mail[0].template(), "edu-welcome");
    let store = f.store().await;
    let id = f.lead_id("ana@example.com").await;
    let rows = store.outbox_of(id).await.unwrap();
    let requested = rows[0].requested_at;
    let start: chrono::DateTime<chrono::Utc> = "2026-03-02T10:00:00Z".parse().unwrap();
    assert!(
        requested > start && requested < start + chrono::TimeDelta::seconds(30),
        "stamped on the daemon's clock: {requested}"
    );
}

#[test]
fn required_tls_never_falls_back_to_plaintext() {
    let smtp = SmtpServer::start();
    let f = Folder::demo();
    f.set_smtp_url(&format!("smtp://127.0.0.1:{}?tls=required", smtp.port));
    f.write("one.csv", "email,name\nana@example.com,Ana\n");
    // Chosen clocks on a Monday morning: the demo's quiet hours never hold the email.
    f.run(&["import", "one.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let out = f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 0);
    assert!(
        stdout(&out).contains("sent 0, held 0, retry 1"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).to_lowercase().contains("tls"),
        "{}",
        stderr(&out)
    );
    assert!(smtp.messages().is_empty());
    // Opportunistic TLS sends in plaintext to a server that offers no STARTTLS.
    f.set_smtp_url(&format!("smtp://127.0.0.1:{}?tls=opportunistic", smtp.port));
    f.write("two.csv", "email,name\nbob@example.com,Bob\n");
    f.run(&["import", "two.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let out = f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 0);
    assert!(stdout(&out).contains("sent 1"), "{}", stdout(&out));
}
