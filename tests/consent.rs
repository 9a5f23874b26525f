//! Consent, whatever the rules say: an unsubscribed address gets no more marketing
//! email (receipts still go), a forgotten person is erased but stays suppressed, and
//! the operator can stop all sending, and cancel or retry rows.

mod support;

use support::*;

const TEMPLATE: &str = "---\nsubject: \"{{ template }} for {{ lead.name }}\"\n---\n<p>Hola</p>\n";
const RECEIPT: &str = "---\nsubject: \"Receipt\"\ntransactional: true\n---\n<p>Gracias</p>\n";

fn folder(leads: &str) -> Folder {
    Folder::with_files(&[
        (
            "embudo.yaml",
            "funnel: { stages: [interest] }\nsmtp: { url: file://./mail, from: \"Shop <shop@example.com>\" }\n",
        ),
        ("templates/welcome.html", TEMPLATE),
        ("templates/receipt.html", RECEIPT),
        (
            "rules/10_welcome.rhai",
            "send(\"welcome\");\nif has_event(\"purchase\") { send(\"receipt\"); }\n",
        ),
        ("leads.csv", leads),
    ])
}

fn tick(f: &Folder, at: &str) -> String {
    stdout(&f.run(&["tick", "--now", at], 0))
}

fn sent(f: &Folder) -> Vec<(String, String)> {
    let mut v: Vec<_> = f
        .mails()
        .iter()
        .map(|m| {
            let to = m.to.rsplit('<').next().unwrap().trim_end_matches('>');
            (to.to_string(), m.template().to_string())
        })
        .collect();
    v.sort();
    v
}

fn pair(to: &str, t: &str) -> (String, String) {
    (to.to_string(), t.to_string())
}

#[test]
fn an_unsubscribed_address_gets_receipts_but_never_marketing_again() {
    let f = folder("email,name\nana@example.com,Ana\nbob@example.com,Bob\n");
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let o = stdout(&f.run(
        &[
            "unsubscribe",
            "Ana@Example.com",
            "--now",
            "2026-03-02T09:30:00Z",
        ],
        0,
    ));
    assert!(o.contains("unsubscribed ana@example.com"), "{o}");
    f.run(
        &[
            "event",
            "ana@example.com",
            "purchase",
            "--at",
            "2026-03-02T09:45:00Z",
        ],
        0,
    );
    let out = tick(&f, "2026-03-02T10:00:00Z");
    assert!(out.contains("suppressed 1"), "{out}");
    assert_eq!(
        sent(&f),
        [
            pair("ana@example.com", "receipt"),
            pair("bob@example.com", "welcome")
        ]
    );
    let list = stdout(&f.run(&["outbox", "list", "--state", "suppressed"], 0));
    assert!(
        list.contains("the address is suppressed (unsubscribed)"),
        "{list}"
    );
    // `outbox retry` cannot get around it: consent is checked at every send.
    f.run(&["outbox", "retry", "--all"], 0);
    tick(&f, "2026-03-02T10:05:00Z");
    assert_eq!(sent(&f).len(), 2);
}

#[test]
fn a_list_moved_from_another_tool_is_honoured_before_its_leads_arrive() {
    let f =
        folder("email,name\nana@example.com,Ana\ncarla@example.com,Carla\ndan@example.com,Dan\n");
    // An export from another tool: many columns, one bad address.
    f.write(
        "unsubscribed.csv",
        "Email Address,First Name,Email,Reason\nx,Ana,ana@example.com,manual\ny,Carla,not-an-address,bounce\nz,Eve,eve@example.com,complaint\n",
    );
    let out = f.run(&["unsubscribe", "--file", "unsubscribed.csv"], 1);
    assert!(
        stdout(&out).contains("unsubscribed 2 address(es)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("unsubscribed.csv:3: `not-an-address`"),
        "{}",
        stderr(&out)
    );
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    f.write("eve.csv", "email,name\neve@example.com,Eve\n");
    f.run(&["import", "eve.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    let out = tick(&f, "2026-03-02T10:00:00Z");
    assert!(out.contains("sent 2"), "{out}");
    assert!(out.contains("suppressed 2"), "{out}");
    assert_eq!(
        sent(&f),
        [
            pair("carla@example.com", "welcome"),
            pair("dan@example.com", "welcome")
        ]
    );
}

#[tokio::test]
async fn forget_erases_the_person_and_keeps_only_a_hash_that_still_suppresses() {
    let f = folder("email,name\nana@example.com,Ana\n");
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    f.run(
        &[
            "event",
            "ana@example.com",
            "purchase",
            "--at",
            "2026-03-02T09:30:00Z",
        ],
        0,
    );
    tick(&f, "2026-03-02T10:00:00Z");
    let o = stdout(&f.run(&["forget", "ana@example.com"], 0));
    assert!(o.contains("forgot lead 1"), "{o}");
    {
        let store = f.store().await;
        assert!(
            store
                .find_lead_id("ana@example.com")
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
    }
    // Nothing of her is left in the database but the hash of her address: not in the
    // SQLite file's bytes (nor its WAL's), not in any PostgreSQL row.
    let stored = if support::on_postgres() {
        vec![f.snapshot()]
    } else {
        let wal = std::fs::read(f.path().join("embudo.db-wal")).unwrap_or_default();
        vec![f.snapshot(), wal]
    };
    for bytes in &stored {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("ana@example.com"),
            "the address is still stored"
        );
    }
    // She comes back in an import: she is never mailed again, not even a receipt.
    f.run(&["import", "leads.csv", "--now", "2026-03-03T09:00:00Z"], 0);
    f.run(
        &[
            "event",
            "ana@example.com",
            "purchase",
            "--at",
            "2026-03-03T09:30:00Z",
        ],
        0,
    );
    let out = tick(&f, "2026-03-03T10:00:00Z");
    assert!(
        out.contains("sent 0") && out.contains("suppressed 2"),
        "{out}"
    );
    let e = stderr(&f.run(&["forget", "nobody@example.com"], 2));
    assert!(e.contains("no lead `nobody@example.com`"), "{e}");
}

#[test]
fn pause_stops_all_sending_across_restarts_until_resume() {
    let f = folder("email,name\nana@example.com,Ana\n");
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    assert!(stdout(&f.run(&["pause"], 0)).contains("all sending paused"));
    let out = tick(&f, "2026-03-02T10:00:00Z");
    assert!(out.contains("sending is paused"), "{out}");
    // Another process, later: still paused. The rules still run and queue.
    let out = tick(&f, "2026-03-02T11:00:00Z");
    assert!(out.contains("sending is paused"), "{out}");
    assert!(f.mails().is_empty());
    let list = stdout(&f.run(&["outbox", "list"], 0));
    assert!(list.contains("queued"), "{list}");
    f.run(&["resume"], 0);
    let out = tick(&f, "2026-03-02T12:00:00Z");
    assert!(out.contains("sent 1"), "{out}");
}

#[test]
fn the_operator_cancels_and_retries_rows_by_filter() {
    let f = folder("email,name\nana@example.com,Ana\nbob@example.com,Bob\n");
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    f.run(&["pause"], 0);
    tick(&f, "2026-03-02T10:00:00Z");
    let e = stderr(&f.run(&["outbox", "cancel"], 2));
    assert!(e.contains("--all"), "{e}");
    let o = stdout(&f.run(&["outbox", "cancel", "--lead", "bob@example.com"], 0));
    assert!(o.contains("1 row(s) cancelled"), "{o}");
    f.run(&["resume"], 0);
    let out = tick(&f, "2026-03-02T10:05:00Z");
    assert!(out.contains("sent 1"), "{out}");
    assert_eq!(sent(&f), [pair("ana@example.com", "welcome")]);
    let list = stdout(&f.run(&["outbox", "list", "--state", "cancelled"], 0));
    assert!(
        list.contains("bob@example.com") && list.contains("cancelled by the operator"),
        "{list}"
    );
    // Changed our mind: retry it. The dedupe key still holds: one welcome each.
    let o = stdout(&f.run(
        &[
            "outbox",
            "retry",
            "--state",
            "cancelled",
            "--template",
            "welcome",
        ],
        0,
    ));
    assert!(o.contains("1 row(s) queued again"), "{o}");
    let out = tick(&f, "2026-03-02T10:10:00Z");
    assert!(out.contains("sent 1"), "{out}");
    assert_eq!(
        sent(&f),
        [
            pair("ana@example.com", "welcome"),
            pair("bob@example.com", "welcome")
        ]
    );
    let e = stderr(&f.run(&["outbox", "list", "--state", "lost"], 2));
    assert!(e.contains("no state `lost`"), "{e}");
}
