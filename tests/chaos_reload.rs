//! Hot reload under an editor's faults, with the real daemon: an emptied, truncated or
//! comment-only embudo.yaml never replaces the running funnel (its quiet hours, its
//! sender, its links stay); removing keys on purpose takes `reload: {allow_removals:
//! true}`; an out-of-range value is refused by `check` and by reload alike.

mod support;

use std::time::Duration;
use support::*;

/// The daemon's clock: Monday 2 March 2026, 11:00 in Madrid (outside quiet hours).
const NOW: &str = "2026-03-02T10:00:00Z";

fn running_demo() -> (Folder, Daemon, String) {
    let f = Folder::demo();
    f.set_smtp_url("file://./mail");
    let original = std::fs::read_to_string(f.path().join("embudo.yaml")).unwrap();
    f.write("one.csv", "email,name\nana@example.com,Ana\n");
    f.run(&["import", "one.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let daemon = Daemon::start(&f, &["--now", NOW]);
    wait_until("the welcome", Duration::from_secs(30), || {
        f.mails().len() == 1
    });
    (f, daemon, original)
}

fn rejected(daemon: &Daemon, n: usize) {
    daemon.wait_log("reload rejected", n, Duration::from_secs(20));
    assert_eq!(
        daemon.log().matches("reloaded the funnel").count(),
        0,
        "{}",
        daemon.log()
    );
}

#[test]
fn a_half_saved_config_never_replaces_the_running_one() {
    let (f, daemon, original) = running_demo();

    // An editor's half-save: the file is empty.
    f.write("embudo.yaml", "");
    rejected(&daemon, 1);
    let log = daemon.log();
    assert!(
        log.contains("limits.quiet_hours") && log.contains("smtp.from"),
        "the refusal names what would go: {log}"
    );
    assert!(log.contains("allow_removals: true"), "{log}");

    // The running funnel keeps its sender, its links and its limits: an event's email
    // still leaves From the shop, with the shop's unsubscribe link.
    f.run(
        &[
            "event",
            "ana@example.com",
            "quote_requested",
            "--at",
            "2026-03-02T10:00:01Z",
        ],
        0,
    );
    wait_until("the comparison", Duration::from_secs(30), || {
        f.mails().len() == 2
    });
    let mail = f
        .mails()
        .into_iter()
        .find(|m| m.template() == "eval-comparison")
        .unwrap();
    assert!(mail.from.contains("hola@tienda.example"), "{}", mail.from);
    assert!(
        mail.header("List-Unsubscribe")
            .unwrap()
            .contains("https://tienda.example/embudo/unsubscribe/"),
        "{:?}",
        mail.header("List-Unsubscribe")
    );

    // A file cut short, and one of comments only: refused the same way.
    f.write("embudo.yaml", &original[..700]);
    rejected(&daemon, 2);
    f.write("embudo.yaml", "# nothing here yet\n");
    rejected(&daemon, 3);

    // Removing quiet hours on purpose: the file says so, and the change is taken.
    let without: String = original
        .lines()
        .filter(|l| !l.trim_start().starts_with("quiet_hours:"))
        .map(|l| format!("{l}\n"))
        .collect();
    f.write(
        "embudo.yaml",
        &format!("{without}reload: {{ allow_removals: true }}\n"),
    );
    daemon.wait_log("reloaded the funnel", 1, Duration::from_secs(20));
    daemon.stop();
}

#[test]
fn an_out_of_range_value_is_refused_by_check_and_by_reload() {
    let (f, daemon, original) = running_demo();
    let bad = original.replace("rate_per_second: 20", "rate_per_second: 1e-20");
    assert_ne!(bad, original);
    f.write("embudo.yaml", &bad);
    rejected(&daemon, 1);
    assert!(
        daemon.log().contains("limits.rate_per_second"),
        "{}",
        daemon.log()
    );
    let out = f.run(&["check"], 2);
    assert!(
        stderr(&out).contains("limits.rate_per_second") && stderr(&out).contains("out of range"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Other commands refuse the file too: nothing runs on a rate that would stall.
    let out = f.run(&["tick", "--now", NOW], 2);
    assert!(
        stderr(&out).contains("limits.rate_per_second"),
        "{}",
        stderr(&out)
    );
    daemon.stop();
}

/// A funnel of one's own (its own stages, its own database file) whose embudo.yaml is
/// emptied: the emergency stop refuses to act on a database that does not exist
/// rather than answering "paused" while the daemon sends on; `check` blames the file,
/// not the rules that name its stages.
#[test]
fn an_emptied_config_never_makes_the_operator_act_on_another_database() {
    if sqlite_only("the database embudo.yaml names: EMBUDO_DATABASE_URL names it instead") {
        return;
    }
    let yaml = "funnel: { stages: [visitor, trial] }\ndatabase: sqlite://fun.db\nsmtp: { url: \"file://./mail\", from: \"Fun <fun@example.com>\" }\n";
    let f = Folder::with_files(&[
        ("embudo.yaml", yaml),
        (
            "templates/hello.html",
            "---\nsubject: \"Hola {{ lead.name }}\"\n---\n<p>Hola</p>\n",
        ),
        (
            "rules/10_trial.rhai",
            "send(\"hello\");\nif has_event(\"signup\") { move_to(\"trial\"); }\n",
        ),
        ("leads.csv", "email,name\nana@example.com,Ana\n"),
    ]);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);

    f.write("embudo.yaml", "");
    let out = f.run(&["pause"], 2);
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!f.path().join("embudo.db").exists(), "no stray database");
    f.run(&["outbox", "list"], 2);

    // A tab where spaces belong: the file is the problem, with a help line; the rule
    // naming `trial` is not blamed for stages the file could not say.
    f.write(
        "embudo.yaml",
        &yaml.replace("funnel: {", "funnel:\n\tstages: [visitor, trial]\nx: {"),
    );
    let out = f.run(&["check"], 2);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("help:"), "{text}");
    assert!(!text.contains("unknown stage"), "{text}");

    // Back to the real file: pause acts on the real database and the outbox says so.
    f.write("embudo.yaml", yaml);
    f.run(&["pause"], 0);
    let out = f.run(&["outbox", "list"], 0);
    assert!(
        stdout(&out).contains("sending is paused"),
        "{}",
        stdout(&out)
    );
}
