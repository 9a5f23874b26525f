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

/// A campaign each, in Europe/Madrid, for these crons.
fn madrid_campaigns(crons: &[(&str, &str)]) -> Folder {
    let mut yaml = String::from(
        "funnel: { stages: [customer] }\nschedule: { tick: \"0 0 0 1 1 *\", timezone: Europe/Madrid }\nsmtp: { url: \"file://./mail\", from: \"Shop <shop@example.com>\" }\ncampaigns:\n",
    );
    for (id, cron) in crons {
        yaml.push_str(&format!(
            "  - id: {id}\n    schedule: {{ cron: \"{cron}\" }}\n    audience: 'true'\n    template: a\n"
        ));
    }
    Folder::with_files(&[
        ("embudo.yaml", &yaml),
        ("templates/a.html", "---\nsubject: \"A\"\n---\n<p>A</p>\n"),
    ])
}

/// Each recorded firing: campaign → (its scheduled instant, the daemon's clock when
/// it began), read straight from the database.
async fn firings(
    f: &Folder,
) -> std::collections::BTreeMap<
    String,
    (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
> {
    let rows: Vec<(String, i64, i64)> = f
        .fetch_all("SELECT campaign, scheduled_at, started_at FROM campaign_firings")
        .await;
    let t = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap();
    rows.into_iter()
        .map(|(c, s, b)| (c, (t(s), t(b))))
        .collect()
}

/// Waits (on the real clock) until `campaign` has fired, and checks it fired at
/// `expected` (UTC): scheduled then, and begun by the daemon's clock within the
/// scheduler's resolution after it, never before.
async fn fired_at(f: &Folder, daemon: &Daemon, campaign: &str, expected: &str) {
    let expected: chrono::DateTime<chrono::Utc> = expected.parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (scheduled, began) = loop {
        if let Some(f) = firings(f).await.get(campaign) {
            break *f;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{campaign}` never fired:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(scheduled, expected, "{campaign}: {}", daemon.log());
    assert!(
        began >= expected && began - expected < chrono::TimeDelta::seconds(2),
        "{campaign} scheduled at {expected} began at {began}"
    );
}

/// Spring forward in Madrid (29 March 2026, 02:00 CET → 03:00 CEST, at 01:00 UTC): a
/// daemon started before the change fires a firing on each side at its UTC instant,
/// one at 03:00 CEST and one in the skipped hour at the end of the gap, not an hour
/// off as a scheduler that kept the offset it started with would.
#[tokio::test]
async fn the_daemons_scheduler_fires_madrid_crons_on_both_sides_of_spring_forward() {
    let f = madrid_campaigns(&[
        ("before", "58 59 1 * * *"),
        ("three", "0 0 3 * * *"),
        ("gap", "0 30 2 * * *"),
    ]);
    // 01:59:55 CET.
    let daemon = Daemon::start(&f, &["--now", "2026-03-29T00:59:55Z"]);
    fired_at(&f, &daemon, "before", "2026-03-29T00:59:58Z").await;
    fired_at(&f, &daemon, "three", "2026-03-29T01:00:00Z").await;
    fired_at(&f, &daemon, "gap", "2026-03-29T01:00:00Z").await;
    daemon.stop();
}

/// Fall back in Madrid (25 October 2026, 03:00 CEST → 02:00 CET, at 01:00 UTC): a
/// daemon started before the change fires 02:59:58 CEST at its UTC instant and does
/// not fire 03:00 at the change (03:00 CEST never comes; 03:00 CET is an hour later);
/// started again before 03:00 CET, it fires then.
#[tokio::test]
async fn the_daemons_scheduler_fires_madrid_crons_on_both_sides_of_fall_back() {
    let f = madrid_campaigns(&[("before", "58 59 2 * * *"), ("three", "0 0 3 * * *")]);
    // 02:59:55 CEST.
    let daemon = Daemon::start(&f, &["--now", "2026-10-25T00:59:55Z"]);
    fired_at(&f, &daemon, "before", "2026-10-25T00:59:58Z").await;
    // Past 01:00 UTC on the daemon's clock: 02:00:02 CET, and `three` has not fired.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !firings(&f).await.contains_key("three"),
        "03:00 fired at the change:\n{}",
        daemon.log()
    );
    daemon.stop();
    // 02:59:57 CET.
    let daemon = Daemon::start(&f, &["--now", "2026-10-25T01:59:57Z"]);
    fired_at(&f, &daemon, "three", "2026-10-25T02:00:00Z").await;
    daemon.stop();
}
