//! Rules that overflow, run away or flood the log, with the real binary: each is a rule
//! error at its place for the lead it hit, never a crash, and every other lead is
//! evaluated and emailed as usual: by `tick`, `event`, `campaign run` and a running
//! daemon (whose evaluation task must outlive the bad rule).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::*;

const NOW: &str = "2026-03-02T10:00:00Z";
const TEMPLATE: &str =
    "---\nsubject: \"{{ template }} for {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n";
const CONFIG: &str = "funnel: { stages: [interest] }\nsmtp: { url: file://./mail, from: \"Shop <shop@example.com>\" }\n";
/// Everyone gets the welcome email.
const WELCOME: &str = "send(\"welcome\");\n";
/// An overflow for one lead only: a window of 10,000,000,000 days.
const BAD_COUNT: &str = "// one lead only\nif lead.email == \"bad@example.com\" {\n    let n = count(\"page_view\", days(10000000) * 1000);\n}\n";
const BAD_SENT_COUNT: &str = "// one lead only\nif lead.email == \"bad@example.com\" {\n    let n = sent_count(days(10000000) * 1000);\n}\n";

/// `bad@example.com` and `n - 1` other leads.
fn leads_csv(n: usize) -> String {
    let mut csv = String::from("email,name\nbad@example.com,Bad\n");
    for i in 1..n {
        csv.push_str(&format!("lead{i:02}@example.com,Lead {i}\n"));
    }
    csv
}

fn folder(config: &str, rules: &[(&str, &str)], leads: usize) -> Folder {
    let csv = leads_csv(leads);
    let mut files: Vec<(&str, &str)> = vec![
        ("embudo.yaml", config),
        ("templates/welcome.html", TEMPLATE),
        ("templates/promo.html", TEMPLATE),
        ("leads.csv", &csv),
    ];
    files.extend_from_slice(rules);
    let f = Folder::with_files(&files);
    f.run(&["import", "leads.csv", "--now", NOW], 0);
    f
}

/// The place of the overflow in `src`: line 3, the column of its `*`.
fn overflow_at(file: &str, src: &str) -> String {
    let line = src.lines().nth(2).unwrap();
    format!("{file}:3:{}:", line.find('*').unwrap() + 1)
}

/// Address → templates of the emails written to `mail/`.
fn mails_by_address(f: &Folder) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in f.mails() {
        let addr = mail
            .to
            .rsplit('<')
            .next()
            .unwrap()
            .trim_end_matches('>')
            .to_string();
        m.entry(addr).or_default().push(mail.template().to_string());
    }
    m
}

fn each_got_one(f: &Folder, template: &str, leads: &[String]) {
    let got = mails_by_address(f);
    let want: BTreeMap<String, Vec<String>> = leads
        .iter()
        .map(|l| (l.clone(), vec![template.to_string()]))
        .collect();
    assert_eq!(got, want, "exactly one `{template}` email per lead");
}

fn all_leads(n: usize) -> Vec<String> {
    leads_csv(n)
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tick_with_an_overflowing_rule(rule: &str) {
    let f = folder(
        CONFIG,
        &[
            ("rules/10_welcome.rhai", WELCOME),
            ("rules/20_bad.rhai", rule),
        ],
        5,
    );
    let out = f.run(&["tick", "--now", NOW], 1);
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    let at = overflow_at("rules/20_bad.rhai", rule);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rule error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!(
            "rule error: {at} Runtime error: 10000000d * 1000 overflows"
        )),
        "{stderr}"
    );
    assert!(errors[0].contains("(1 lead(s)"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stdout
            .contains("5 leads evaluated, 5 changed, 0 stage move(s), 5 email(s) queued; sent 5,"),
        "{stdout}"
    );
    // The bad rule failed for its lead only; the welcome rule ran for all five.
    each_got_one(&f, "welcome", &all_leads(5));
}

#[test]
fn tick_reports_an_overflowing_count_at_its_place_and_emails_every_lead_once() {
    tick_with_an_overflowing_rule(BAD_COUNT);
}

#[test]
fn tick_reports_an_overflowing_sent_count_at_its_place_and_emails_every_lead_once() {
    tick_with_an_overflowing_rule(BAD_SENT_COUNT);
}

#[test]
fn event_reports_an_overflowing_rule_and_still_queues_what_the_other_rules_ask() {
    for rule in [BAD_COUNT, BAD_SENT_COUNT] {
        let f = folder(
            CONFIG,
            &[
                ("rules/10_welcome.rhai", WELCOME),
                ("rules/20_bad.rhai", rule),
            ],
            3,
        );
        let at = overflow_at("rules/20_bad.rhai", rule);
        let out = f.run(&["event", "bad@example.com", "page_view", "--at", NOW], 1);
        assert!(
            stdout(&out).contains("the rules queued 1 email(s)"),
            "{}",
            stdout(&out)
        );
        let err = stderr(&out);
        assert_eq!(
            err.lines().filter(|l| l.starts_with("rule error:")).count(),
            1,
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "rule error: {at} Runtime error: 10000000d * 1000 overflows"
            )),
            "{err}"
        );
        let out = f.run(
            &["event", "lead01@example.com", "page_view", "--at", NOW],
            0,
        );
        assert!(stdout(&out).contains("the rules queued 1 email(s)"));
        // The tick queues the third lead's and delivers all three, once each.
        let out = f.run(&["tick", "--now", NOW], 1);
        assert!(
            stdout(&out).contains("1 email(s) queued; sent 3,"),
            "{}",
            stdout(&out)
        );
        each_got_one(&f, "welcome", &all_leads(3));
    }
}

#[test]
fn campaign_run_leaves_out_the_lead_whose_audience_overflows_and_emails_the_others() {
    let audience =
        "lead.email != \"bad@example.com\" || count(\"page_view\", days(10000000) * 1000) > 0";
    let config = format!(
        "{CONFIG}campaigns:\n  - id: promo\n    schedule: {{ cron: \"0 0 9 1 1 *\" }}\n    audience: '{audience}'\n    template: promo\n    key: \"{{year}}\"\n"
    );
    let f = folder(&config, &[], 5);
    let out = f.run(&["campaign", "run", "promo", "--now", NOW], 1);
    let (o, e) = (stdout(&out), stderr(&out));
    let col = audience.find('*').unwrap() + 1;
    assert!(
        e.contains(&format!(
            ":1:{col}: Runtime error: 10000000d * 1000 overflows"
        )),
        "{o}\n{e}"
    );
    assert!(
        o.contains("campaign promo [2026]: 4 lead(s) in the audience, 4 email(s) queued"),
        "{o}\n{e}"
    );
    assert_eq!(
        e.matches("audience error").count(),
        2,
        "logged once, printed once: {e}"
    );
    let out = f.run(&["tick", "--now", NOW], 0);
    assert!(stdout(&out).contains("sent 4,"), "{}", stdout(&out));
    let others: Vec<String> = all_leads(5).into_iter().skip(1).collect();
    each_got_one(&f, "promo", &others);
}

#[test]
fn a_running_daemon_keeps_evaluating_after_an_overflowing_rule() {
    let config = format!("{CONFIG}schedule: {{ tick: \"* * * * * *\" }}\n");
    let f = folder(
        &config,
        &[
            ("rules/10_welcome.rhai", WELCOME),
            ("rules/20_bad.rhai", BAD_COUNT),
        ],
        3,
    );
    let mut daemon = Daemon::start(&f, &["--now", NOW]);
    let port = daemon.port();
    wait_until("3 welcome emails", Duration::from_secs(30), || {
        f.mails().len() >= 3
    });
    daemon.wait_log("rule skipped", 1, Duration::from_secs(30));

    // An event for the bad lead: its rules fail, the answer still comes.
    let (status, body) = http(
        port,
        "POST",
        "/events",
        Some(API_TOKEN),
        br#"[{"lead": "bad@example.com", "kind": "page_view"}]"#,
    );
    assert_eq!(status, 200, "{body}\n{}", daemon.log());
    assert!(body.contains("\"recorded\":1"), "{body}");

    // A lead imported later is evaluated by the same, still living, evaluation task.
    f.write("later.csv", "email,name\nlater@example.com,Later\n");
    f.run(&["import", "later.csv", "--now", NOW], 0);
    wait_until("the later lead's email", Duration::from_secs(30), || {
        mails_by_address(&f).contains_key("later@example.com")
    });
    assert!(daemon.alive(), "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains(&overflow_at("rules/20_bad.rhai", BAD_COUNT)) && log.contains("overflows"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let mut everyone = all_leads(3);
    everyone.push("later@example.com".into());
    everyone.sort();
    each_got_one(&f, "welcome", &everyone);
    daemon.stop();
}

#[test]
fn runaway_rules_are_stopped_and_reported_once_per_pass_over_20_leads() {
    let sort = "// sorting a big array again and again: stopped by the time budget\nlet a = [];\nfor i in 0..1000 { a.push(1000 - i); }\nloop { a.sort(); a.reverse(); }\n";
    let spin = "// an empty endless loop: stopped by the operation limit\nloop { }\n";
    let f = folder(
        CONFIG,
        &[
            ("rules/10_welcome.rhai", WELCOME),
            ("rules/20_sort.rhai", sort),
            ("rules/30_spin.rhai", spin),
        ],
        20,
    );
    let out = f.run(&["tick", "--now", NOW], 1);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("20 leads evaluated"), "{o}");
    assert!(o.contains("20 email(s) queued; sent 20,"), "{o}");
    each_got_one(&f, "welcome", &all_leads(20));
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("rule error:")).collect();
    assert_eq!(errors.len(), 2, "one summary line per runaway rule:\n{e}");
    assert!(
        errors[0].starts_with("rule error: rules/20_sort.rhai:")
            && errors[0]
                .contains("rule took longer than 50 ms for this lead (runaway loop?) (20 lead(s)"),
        "{e}"
    );
    assert!(
        errors[1].starts_with("rule error: rules/30_spin.rhai:2:")
            && errors[1].contains(
                "Too many operations: more than 200000 for this lead (runaway loop?) (20 lead(s)"
            ),
        "{e}"
    );
    // The log names each runaway rule once for the pass, too.
    for file in ["rules/20_sort.rhai", "rules/30_spin.rhai"] {
        let logged = e
            .lines()
            .filter(|l| l.contains("rule skipped") && l.contains(file))
            .count();
        assert_eq!(logged, 1, "{file}:\n{e}");
    }
}

/// Lines of the log written by `print` in `file`, grouped by lead.
fn printed_by_lead(log: &str, file: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in log.lines().filter(|l| l.contains(&format!("rule={file})"))) {
        let lead = l.split("(lead=").nth(1).unwrap().split(' ').next().unwrap();
        *m.entry(lead.to_string()).or_default() += 1;
    }
    m
}

#[test]
fn a_rule_printing_in_a_loop_writes_at_most_20_lines_per_lead() {
    let spam = "let i = 0;\nloop { print(\"spam \" + i); i += 1; }\n";
    let f = folder(
        CONFIG,
        &[
            ("rules/10_welcome.rhai", WELCOME),
            ("rules/20_spam.rhai", spam),
        ],
        3,
    );
    let out = f.run(&["tick", "--now", NOW], 1);
    let e = stderr(&out);
    let printed = printed_by_lead(&e, "rules/20_spam.rhai");
    assert_eq!(printed.len(), 3, "{printed:?}");
    assert!(printed.values().all(|n| *n == 20), "{printed:?}");
    assert_eq!(
        e.matches("… further output of rules/20_spam.rhai suppressed")
            .count(),
        3,
        "one notice per lead"
    );
    assert!(e.len() < 64 * 1024, "{} bytes of log", e.len());
    each_got_one(&f, "welcome", &all_leads(3));

    // Long lines: 4 KiB per lead is reached first (4 lines of 1,000 characters).
    let long = "let line = \"\";\nfor i in 0..1000 { line += \"x\"; }\nloop { print(line); }\n";
    let f = folder(CONFIG, &[("rules/20_long.rhai", long)], 2);
    let e = stderr(&f.run(&["tick", "--now", NOW], 1));
    let printed = printed_by_lead(&e, "rules/20_long.rhai");
    assert_eq!(
        printed.values().copied().collect::<Vec<_>>(),
        [4, 4],
        "{printed:?}"
    );
}
