//! `embudo check --smtp` against a real SMTP server (aiosmtpd, which offers no
//! STARTTLS), and what smtp:// without ?tls= means.

mod support;

use support::*;

const TEMPLATE: &str = "---\nsubject: \"Hola {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n<a href=\"{{ unsubscribe_url }}\">baja</a>\n";

fn folder(url: &str) -> Folder {
    Folder::with_files(&[
        (
            "embudo.yaml",
            &format!("smtp:\n  url: \"{url}\"\n  from: \"Shop <shop@example.com>\"\n"),
        ),
        ("templates/welcome.html", TEMPLATE),
        ("rules/10_welcome.rhai", "send(\"welcome\");\n"),
        ("leads.csv", "email,name\nana@example.com,Ana\n"),
    ])
}

#[test]
fn check_smtp_says_what_the_server_offers_and_whether_embudo_can_send() {
    let server = SmtpServer::start();
    let port = server.port;

    // No ?tls=: STARTTLS is required, and this server does not offer it.
    let f = folder(&format!("smtp://127.0.0.1:{port}"));
    let o = stdout(&f.run(&["check"], 0));
    assert!(
        o.contains("note: smtp.url `smtp://127.0.0.1:")
            && o.contains("STARTTLS is required")
            && o.contains("?tls=none")
            && o.contains("?tls=opportunistic"),
        "{o}"
    );
    let o = stdout(&f.run(&["check", "--smtp"], 1));
    assert!(o.contains(&format!("connected to 127.0.0.1:{port}")), "{o}");
    assert!(o.contains("greeting: 220 "), "{o}");
    assert!(o.contains("EHLO name: "), "{o}");
    assert!(o.contains("STARTTLS: not offered"), "{o}");
    assert!(o.contains("AUTH: none offered"), "{o}");
    assert!(
        o.contains("error: 127.0.0.1:")
            && o.contains("does not offer STARTTLS, and STARTTLS is required by default")
            && o.contains("?tls=none"),
        "{o}"
    );
    assert!(
        o.contains("embudo cannot send through this server as configured"),
        "{o}"
    );

    // A send logs the same reason, and nothing is sent.
    f.run(&["import", "leads.csv"], 0);
    let out = f
        .embudo()
        .args(["tick", "--now", "2026-03-02T10:00:00Z"])
        .output()
        .unwrap();
    let e = stderr(&out);
    assert!(
        e.contains("STARTTLS is required by default") && e.contains("?tls=none"),
        "{e}"
    );
    assert!(server.messages().is_empty());

    // tls=none: it works, in plain text.
    let f = folder(&format!("smtp://127.0.0.1:{port}?tls=none"));
    let o = stdout(&f.run(&["check", "--smtp"], 0));
    assert!(o.contains("STARTTLS: not offered"), "{o}");
    assert!(
        o.contains("embudo can send through this server as configured"),
        "{o}"
    );
    // A username with a server that offers no AUTH will not work.
    f.write(
        "embudo.yaml",
        &format!(
            "smtp:\n  url: \"smtp://127.0.0.1:{port}?tls=none\"\n  from: \"Shop <shop@example.com>\"\n  username: shop\n"
        ),
    );
    let o = stdout(&f.run(&["check", "--smtp"], 1));
    assert!(o.contains("offers no AUTH PLAIN or LOGIN"), "{o}");
    // Nothing was ever sent by a check.
    assert!(server.messages().is_empty());

    // file://: nothing to connect to.
    let f = folder("file://./mail");
    let o = stdout(&f.run(&["check", "--smtp"], 0));
    assert!(o.contains("there is no SMTP server to connect to"), "{o}");
}
