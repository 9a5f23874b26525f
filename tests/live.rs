//! The running daemon reacts: a change to the funnel folder is swapped in (or rejected,
//! the last good version running on), and an event's email leaves within a second.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn templates_sent(smtp: &SmtpServer, to: &str) -> Vec<String> {
    let mut t: Vec<String> = smtp
        .messages()
        .iter()
        .filter(|m| m.to.contains(to))
        .map(|m| m.template().to_string())
        .collect();
    t.sort();
    t
}

fn wait_sent(smtp: &SmtpServer, to: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = templates_sent(smtp, to);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{to}: got {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const TEMPLATE_A: &str = "---\nsubject: \"A for {{ lead.name }}\"\n---\n<p>A</p>\n";
const TEMPLATE_B: &str = "---\nsubject: \"B for {{ lead.name }}\"\n---\n<p>B</p>\n";

#[test]
fn a_valid_rule_change_is_swapped_in_and_a_broken_one_is_rejected_while_the_last_good_runs() {
    let smtp = SmtpServer::start();
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            &format!(
                "funnel: {{ stages: [interest] }}\nschedule: {{ tick: \"* * * * * *\" }}\nsmtp: {{ url: \"{}\", from: \"Shop <shop@example.com>\" }}\n",
                smtp.url()
            ),
        ),
        ("templates/a.html", TEMPLATE_A),
        ("templates/b.html", TEMPLATE_B),
        ("rules/10_drip.rhai", "send(\"a\");\n"),
        ("ana.csv", "email,name\nana@example.com,Ana\n"),
        ("bob.csv", "email,name\nbob@example.com,Bob\n"),
    ]);
    f.run(&["import", "ana.csv"], 0);
    let daemon = Daemon::start(&f, &[]);
    wait_sent(&smtp, "ana@", &["a"]);

    // A valid change: the next pass runs the new rule.
    f.write("rules/10_drip.rhai", "send(\"a\");\nsend(\"b\");\n");
    daemon.wait_log("reloaded the funnel", 1, Duration::from_secs(10));
    wait_sent(&smtp, "ana@", &["a", "b"]);

    // A broken change: rejected with its position, the last good version keeps running.
    f.write(
        "rules/10_drip.rhai",
        "send(\"a\");\nsend(\"b\");\nsend(\"c\"\n",
    );
    daemon.wait_log(
        "reload rejected problem=rules/10_drip.rhai:",
        1,
        Duration::from_secs(10),
    );
    daemon.wait_log(
        "the last good version keeps running",
        1,
        Duration::from_secs(5),
    );
    f.run(&["import", "bob.csv"], 0);
    wait_sent(&smtp, "bob@", &["a", "b"]);

    // A rule naming a template that does not exist is rejected the same way, by name.
    f.write("rules/10_drip.rhai", "send(\"a\");\nsend(\"typo\");\n");
    daemon.wait_log("unknown template `typo`", 1, Duration::from_secs(10));
    // So is removing a stage that leads are in.
    f.write(
        "embudo.yaml",
        &std::fs::read_to_string(f.path().join("embudo.yaml"))
            .unwrap()
            .replace("[interest]", "[evaluation]"),
    );
    f.write("rules/10_drip.rhai", "send(\"a\");\nsend(\"b\");\n");
    daemon.wait_log(
        "stage `interest` is not in funnel.stages but 2 lead(s) are in it",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(daemon.log().matches("reloaded the funnel").count(), 1);
    daemon.stop();
}

/// `embudo event` runs the lead's rules in its own process and queues the email; the
/// daemon, whose next tick is months away, sends it within a second.
#[test]
fn an_event_email_leaves_within_a_second_with_the_tick_far_away() {
    let smtp = SmtpServer::start();
    let f = Folder::demo();
    f.set_smtp_url(&smtp.url());
    // `embudo event` and the daemon both read the machine's clock: without quiet hours
    // the comparison leaves at once at any hour the suite runs.
    f.without_quiet_hours();
    // Once a year, on 1 January at midnight: no scheduled pass during the test.
    f.write(
        "embudo.yaml",
        &std::fs::read_to_string(f.path().join("embudo.yaml"))
            .unwrap()
            .replace("0 */5 * * * *", "0 0 0 1 1 *"),
    );
    f.write("one.csv", "email,name\nana@example.com,Ana\n");
    f.run(&["import", "one.csv"], 0);
    let daemon = Daemon::start(&f, &[]);
    // The start-up pass welcomes her.
    wait_sent(&smtp, "ana@", &["edu-welcome"]);

    f.run(&["event", "ana@example.com", "quote_requested"], 0);
    wait_sent(&smtp, "ana@", &["edu-welcome", "eval-comparison"]);
    daemon.stop();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = f.store().await;
        let id = f.lead_id("ana@example.com").await;
        let row = store
            .outbox_of(id)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.template.as_str() == "eval-comparison")
            .unwrap();
        let (requested, sent) = (row.requested_at, row.sent_at.unwrap());
        let lag = sent - requested;
        println!("event to sent: {} ms", lag.num_milliseconds());
        assert!(
            lag < chrono::TimeDelta::seconds(1),
            "queued at {requested}, sent at {sent}: {} ms",
            lag.num_milliseconds()
        );
    });
    assert_eq!(
        smtp.messages().len(),
        2,
        "no scheduled pass ran: only the start-up pass and the event"
    );
}

/// The daemon's own timer fires a campaign at its instant, and a restarted daemon does
/// not fire it again.
#[test]
fn the_daemon_fires_a_campaign_at_its_time_and_a_restart_does_not_repeat_it() {
    let smtp = SmtpServer::start();
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            &format!(
                "funnel: {{ stages: [customer] }}\nschedule: {{ tick: \"0 0 0 1 1 *\", timezone: Europe/Madrid }}\nsmtp: {{ url: \"{}\", from: \"Shop <shop@example.com>\" }}\ncampaigns:\n  - id: morning\n    schedule: {{ cron: \"0 0 9 * * *\" }}\n    audience: 'true'\n    template: a\n",
                smtp.url()
            ),
        ),
        ("templates/a.html", TEMPLATE_A),
        ("leads.csv", "email,name\nana@example.com,Ana\n"),
    ]);
    f.run(&["import", "leads.csv"], 0);
    // 08:59:58 in Madrid: the campaign is two seconds away.
    let daemon = Daemon::start(&f, &["--now", "2026-03-02T07:59:58Z"]);
    wait_sent(&smtp, "ana@", &["a"]);
    daemon.wait_log("campaign fired", 1, Duration::from_secs(5));
    daemon.stop();
    let daemon = Daemon::start(&f, &["--now", "2026-03-02T08:00:30Z"]);
    std::thread::sleep(Duration::from_secs(2));
    daemon.stop();
    assert_eq!(templates_sent(&smtp, "ana@"), ["a"], "fired once");
}
