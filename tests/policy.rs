//! The sending policy, rule by rule: each holds an email back, says why and until
//! when, and releases it then. Nothing is dropped. Run with `tick --now` at chosen
//! instants and the file transport.

mod support;

use support::*;

const TEMPLATE: &str =
    "---\nsubject: \"{{ template }} for {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n";
const RECEIPT: &str = "---\nsubject: \"Receipt\"\ntransactional: true\n---\n<p>Gracias</p>\n";

fn folder(limits: &str, rule: &str, leads: &str) -> Folder {
    Folder::with_files(&[
        (
            "embudo.yaml",
            &format!(
                "funnel: {{ stages: [interest] }}\nschedule: {{ timezone: Europe/Madrid }}\nsmtp: {{ url: file://./mail, from: \"Shop <shop@example.com>\" }}\nlimits: {limits}\n"
            ),
        ),
        ("templates/a.html", TEMPLATE),
        ("templates/b.html", TEMPLATE),
        ("templates/c.html", TEMPLATE),
        ("templates/d.html", TEMPLATE),
        ("templates/receipt.html", RECEIPT),
        ("rules/10_send.rhai", rule),
        ("leads.csv", leads),
    ])
}

fn tick(f: &Folder, at: &str) -> String {
    stdout(&f.run(&["tick", "--now", at], 0))
}

/// (address, template) of each email written, the address without the name.
fn sent_to(f: &Folder) -> Vec<(String, String)> {
    f.mails()
        .iter()
        .map(|m| (address(&m.to), m.template().to_string()))
        .collect()
}

fn address(to: &str) -> String {
    to.rsplit('<')
        .next()
        .unwrap()
        .trim_end_matches('>')
        .to_string()
}

#[test]
fn quiet_hours_hold_an_email_until_the_leads_own_morning_and_spare_receipts() {
    let f = folder(
        "{ quiet_hours: { from: \"21:00\", to: \"08:00\" } }",
        "send(\"a\");\nsend(\"receipt\");\n",
        "email,name,timezone\nana@example.com,Ana,Europe/Madrid\nluis@example.com,Luis,America/Mexico_City\n",
    );
    f.run(&["import", "leads.csv", "--now", "2026-03-02T20:00:00Z"], 0);
    // 22:30 in Madrid, 15:30 in Mexico City.
    let out = tick(&f, "2026-03-02T21:30:00Z");
    assert!(out.contains("sent 3, held 1"), "{out}");
    let sent = sent_to(&f);
    assert!(
        sent.contains(&("ana@example.com".into(), "receipt".into())),
        "receipts ignore quiet hours: {sent:?}"
    );
    assert!(
        sent.contains(&("luis@example.com".into(), "a".into())),
        "{sent:?}"
    );
    // Visible, with the reason and the release: 08:00 in Madrid is 07:00 UTC.
    let list = stdout(&f.run(&["outbox", "list", "--state", "held"], 0));
    assert!(list.contains("ana@example.com"), "{list}");
    assert!(list.contains("2026-03-03T07:00:00Z"), "{list}");
    assert!(
        list.contains("quiet hours 21:00–08:00 in Europe/Madrid"),
        "{list}"
    );

    // `report` shows what is held back, and why.
    let report = stdout(&f.run(&["report", "--now", "2026-03-02T21:31:00Z"], 0));
    assert!(
        report.contains("1 email(s): quiet hours 21:00–08:00 in Europe/Madrid (first release 2026-03-03T07:00:00Z)"),
        "{report}"
    );
    let json = stdout(&f.run(&["report", "--format", "json"], 0));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["stages"][0]["stage"], "interest");
    assert_eq!(v["stages"][0]["leads"], 2);
    assert_eq!(v["templates"][0]["template"], "a");
    assert_eq!(v["templates"][0]["states"]["held"], 1);
    assert!(tick(&f, "2026-03-03T06:59:00Z").contains("sent 0, held 0"));
    let out = tick(&f, "2026-03-03T07:00:00Z");
    assert!(out.contains("sent 1, held 0"), "{out}");
    assert_eq!(f.mails().len(), 4);

    // simulate runs the same policy: the email waits for 08:00 in Madrid.
    let sim = stdout(&f.run(
        &[
            "simulate",
            "--from",
            "2026-03-02T21:30:00Z",
            "--to",
            "2026-03-03T09:00:00Z",
            "--step",
            "30m",
            "--leads",
            "leads.csv",
            "--format",
            "csv",
        ],
        0,
    ));
    assert!(
        sim.lines()
            .any(|l| l.starts_with("2026-03-03T07:00:00Z,1,ana@example.com,send,a,")),
        "{sim}"
    );
}

#[test]
fn the_per_lead_cap_holds_the_extra_email_until_a_slot_frees() {
    let f = folder(
        "{ per_lead: { max: 3, within: 3d } }",
        "send(\"a\");\nsend(\"b\");\nsend(\"c\");\nsend(\"d\");\n",
        "email,name\nana@example.com,Ana\n",
    );
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let out = tick(&f, "2026-03-02T10:00:00Z");
    assert!(out.contains("sent 3, held 1"), "{out}");
    let list = stdout(&f.run(
        &[
            "outbox",
            "list",
            "--state",
            "held",
            "--lead",
            "ana@example.com",
        ],
        0,
    ));
    assert!(list.contains("per-lead cap: 3 email(s) in 3d"), "{list}");
    assert!(list.contains("2026-03-05T10:00:00Z"), "{list}");
    assert!(tick(&f, "2026-03-05T09:59:59Z").contains("sent 0"));
    let out = tick(&f, "2026-03-05T10:00:00Z");
    assert!(out.contains("sent 1, held 0"), "{out}");
    let mut templates: Vec<String> = f.mails().iter().map(|m| m.template().to_string()).collect();
    templates.sort();
    assert_eq!(templates, ["a", "b", "c", "d"]);
}

#[test]
fn the_daily_capacity_sends_the_oldest_first_and_the_rest_at_the_business_midnight() {
    let leads = (1..=5).fold("email,name\n".to_string(), |acc, i| {
        acc + format!("lead{i}@example.com,Lead {i}\n").as_str()
    });
    let f = folder(
        "{ daily_capacity: 3 }",
        "send(\"a\");\nsend(\"receipt\");\n",
        &leads,
    );
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let out = tick(&f, "2026-03-02T10:00:00Z");
    // 3 marketing emails fit; the 5 receipts do not count and are not held.
    assert!(out.contains("sent 8, held 2"), "{out}");
    let marketing: Vec<String> = f
        .mails()
        .iter()
        .filter(|m| m.template() == "a")
        .map(|m| address(&m.to))
        .collect();
    assert_eq!(
        marketing,
        [
            "lead1@example.com",
            "lead2@example.com",
            "lead3@example.com"
        ]
    );
    let list = stdout(&f.run(&["outbox", "list", "--state", "held"], 0));
    assert!(
        list.contains("daily capacity of 3 reached (Europe/Madrid)"),
        "{list}"
    );
    // Midnight in Madrid is 23:00 UTC in winter.
    assert!(list.contains("2026-03-02T23:00:00Z"), "{list}");
    assert!(tick(&f, "2026-03-02T22:59:00Z").contains("sent 0"));
    let out = tick(&f, "2026-03-02T23:00:00Z");
    assert!(out.contains("sent 2, held 0"), "{out}");
    assert_eq!(f.mails().iter().filter(|m| m.template() == "a").count(), 5);
}

#[tokio::test]
async fn explain_shows_each_rules_decision_and_the_policys_verdict_and_writes_nothing() {
    let f = folder(
        "{ quiet_hours: { from: \"21:00\", to: \"08:00\" }, per_lead: { max: 1, within: 7d } }",
        "if lead.stage == \"interest\" { send(\"a\"); send(\"b\"); }\n",
        "email,name,timezone\nana@example.com,Ana,Europe/Madrid\n",
    );
    f.write("rules/20_quiet.rhai", "// nothing to do here\n");
    f.run(&["import", "leads.csv", "--now", "2026-03-02T20:00:00Z"], 0);
    let out = stdout(&f.run(
        &["explain", "ana@example.com", "--at", "2026-03-02T21:30:00Z"],
        0,
    ));
    assert!(
        out.contains("lead 1 ana@example.com (Ana): stage `interest`"),
        "{out}"
    );
    assert!(out.contains("10_send   send: a; send: b"), "{out}");
    assert!(out.contains("20_quiet  nothing to do"), "{out}");
    assert!(
        out.contains("a (new, asked by rule 10_send): held until 2026-03-03T07:00:00Z: quiet hours 21:00–08:00 in Europe/Madrid"),
        "{out}"
    );
    // At 10:00 the first goes and the second meets the per-lead cap of 1 a week.
    let out = stdout(&f.run(&["explain", "1", "--at", "2026-03-03T10:00:00Z"], 0));
    assert!(
        out.contains("a (new, asked by rule 10_send): goes now"),
        "{out}"
    );
    assert!(
        out.contains("b (new, asked by rule 10_send): held until 2026-03-10T10:00:00Z: per-lead cap: 1 email(s) in 7d"),
        "{out}"
    );
    let store = f.store().await;
    assert!(
        store.outbox_counts().await.unwrap().is_empty(),
        "explain wrote nothing"
    );
    let e = stderr(&f.run(&["explain", "nobody@example.com"], 2));
    assert!(e.contains("no lead `nobody@example.com`"), "{e}");
}
