//! `embudo preview`: what a lead would receive, shown, written as .eml, or test-sent,
//! by the code the sender uses, and never recorded in the outbox.

mod support;

use support::*;

#[tokio::test]
async fn preview_shows_writes_and_test_sends_without_touching_the_outbox() {
    let smtp = SmtpServer::start();
    let f = Folder::demo();
    f.set_smtp_url(&smtp.url());

    // The sample lead needs no database.
    let o = stdout(&f.run(&["preview", "edu-welcome", "--sample"], 0));
    assert!(
        o.contains("Subject: Bienvenido/a a Tienda Sol, Lucía"),
        "{o}"
    );
    assert!(o.contains("--- text ---\nHola, Lucía:"), "{o}");
    assert!(o.contains("--- html ---\n"), "{o}");
    assert!(o.contains("Unsubscribe: https://"), "{o}");
    assert!(!f.has_database());

    // A stored lead, by email, in its own locale.
    f.run(&["import", "leads.csv", "--now", "2026-03-01T08:00:00Z"], 0);
    let who = "emily.carter@example.com";
    let o = stdout(&f.run(&["preview", "edu-welcome", "--lead", who], 0));
    assert!(o.contains(&format!("To: Emily Carter <{who}>")), "{o}");
    assert!(o.contains("locale en"), "{o}");

    // An .eml file is the message the sender would send, headers and all.
    f.run(
        &[
            "preview",
            "edu-welcome",
            "--lead",
            who,
            "--eml",
            "welcome.eml",
            "--now",
            "2026-03-02T10:00:00Z",
        ],
        0,
    );
    let eml = Mail::parse(&std::fs::read(f.path().join("welcome.eml")).unwrap());
    assert!(eml.to.contains(who), "{eml:?}");
    assert_eq!(eml.template(), "edu-welcome");
    assert_eq!(
        eml.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(eml.header("Date"), Some("Mon, 02 Mar 2026 10:00:00 +0000"));
    assert!(!eml.text.is_empty() && !eml.html.is_empty());

    // A test send goes to the address given, through the real SMTP server.
    let o = stdout(&f.run(
        &[
            "preview",
            "edu-welcome",
            "--lead",
            who,
            "--to",
            "me@shop.example",
        ],
        0,
    ));
    assert!(o.contains("a test send"), "{o}");
    let mail = smtp.wait_for(1, std::time::Duration::from_secs(10));
    assert_eq!(mail.len(), 1);
    assert!(mail[0].to.contains("me@shop.example"), "{:?}", mail[0]);
    assert!(
        mail[0].subject.starts_with("[test] "),
        "{:?}",
        mail[0].subject
    );
    // Its unsubscribe link is not the lead's: clicking it in a test inbox harms nobody.
    let theirs = eml.header("List-Unsubscribe").unwrap();
    let ours = mail[0].header("List-Unsubscribe").unwrap();
    assert_ne!(theirs.split(',').next(), ours.split(',').next());
    // Pause and suppression hold for test sends too.
    f.run(&["pause"], 0);
    let e = stderr(&f.run(
        &[
            "preview",
            "edu-welcome",
            "--sample",
            "--to",
            "me@shop.example",
        ],
        2,
    ));
    assert!(e.contains("sending is paused"), "{e}");
    f.run(&["resume"], 0);
    f.run(&["unsubscribe", "me@shop.example"], 0);
    let e = stderr(&f.run(
        &[
            "preview",
            "edu-welcome",
            "--sample",
            "--to",
            "me@shop.example",
        ],
        2,
    ));
    assert!(e.contains("suppression list (unsubscribed)"), "{e}");
    assert_eq!(smtp.messages().len(), 1);

    // Nothing of it is in the outbox: the lead still gets its real welcome later.
    let store = f.store().await;
    assert!(store.outbox_counts().await.unwrap().is_empty());

    // Mistakes are usage errors that say what exists.
    let e = stderr(&f.run(&["preview", "nope", "--sample"], 2));
    assert!(
        e.contains("no template `nope`") && e.contains("edu-welcome"),
        "{e}"
    );
    let e = stderr(&f.run(
        &["preview", "edu-welcome", "--lead", "ghost@example.com"],
        2,
    ));
    assert!(e.contains("no lead `ghost@example.com`"), "{e}");
    let e = stderr(&f.run(
        &[
            "preview",
            "edu-welcome",
            "--sample",
            "--to",
            "not-an-address",
        ],
        2,
    ));
    assert!(e.contains("--to"), "{e}");
}
