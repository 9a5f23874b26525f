//! Secrets travel only encrypted: with `smtp.username` set, embudo never sends the
//! password over a connection without TLS, even to a server that offers AUTH in clear
//! (a real aiosmtpd doing so, which records every login it receives). A loopback
//! server may be allowed explicitly. A new database, which holds the generated
//! signing key, is readable by its owner only.

mod support;

use support::*;

const NOW: &str = "2026-03-02T10:00:00Z";

fn funnel(url: &str) -> Folder {
    let f = Folder::welcome_funnel(url, "{}", 2);
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml"))
        .unwrap()
        .replace(
            "from: \"Shop <shop@example.com>\" }",
            "from: \"Shop <shop@example.com>\", username: shop, password_env: SHOP_SMTP_PASSWORD }",
        );
    f.write("embudo.yaml", &yaml);
    let out = f
        .embudo()
        .env("SHOP_SMTP_PASSWORD", "s3cret")
        .args(["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    f
}

fn tick(f: &Folder) -> std::process::Output {
    f.embudo()
        .env("SHOP_SMTP_PASSWORD", "s3cret")
        .args(["tick", "--now", NOW])
        .output()
        .unwrap()
}

#[test]
fn the_password_never_crosses_a_connection_without_tls() {
    let smtp = SmtpServer::with_plain_auth("shop", "s3cret");
    for tls in ["opportunistic", "none"] {
        let f = funnel(&format!("smtp://127.0.0.1:{}?tls={tls}", smtp.port));
        let out = tick(&f);
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(o.contains("sent 0, held 0, retry 2"), "tls={tls}: {o}{e}");
        assert!(
            e.contains("refusing to send the SMTP password"),
            "tls={tls}: {e}"
        );
        // check says so before anything is tried.
        let out = f
            .embudo()
            .env("SHOP_SMTP_PASSWORD", "s3cret")
            .arg("check")
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains("smtp.username is set but smtp.url says tls="),
            "{}",
            stdout(&out)
        );
    }
    assert_eq!(
        smtp.logins(),
        Vec::<String>::new(),
        "no login reached the server"
    );
    assert!(smtp.messages().is_empty());

    // Allowed on purpose, for a server on this machine: the login goes, the mail too.
    let f = funnel(&format!(
        "smtp://127.0.0.1:{}?tls=none&plain_auth=loopback",
        smtp.port
    ));
    let out = tick(&f);
    assert!(
        stdout(&out).contains("sent 2"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(smtp.messages().len(), 2);
    assert!(!smtp.logins().is_empty(), "the allowed login");

    // Not for another host: a configuration error naming why.
    let f = Folder::welcome_funnel(
        "smtp://mail.example.com:25?tls=none&plain_auth=loopback",
        "{}",
        1,
    );
    let out = f.run(&["check"], 2);
    assert!(
        stderr(&out).contains("only for a server on this machine"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_new_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    if sqlite_only("the permissions of the SQLite file") {
        return;
    }
    let f = Folder::welcome_funnel("file://./mail", "{}", 1);
    // No EMBUDO_SIGNING_KEY: one is generated and stored in the database.
    let out = f
        .embudo()
        .env_remove("EMBUDO_SIGNING_KEY")
        .args(["tick", "--now", NOW])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("generated one"), "{}", stderr(&out));
    for name in ["embudo.db", "embudo.db-wal"] {
        let p = f.path().join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            assert_eq!(m.permissions().mode() & 0o077, 0, "{name} is private");
        }
    }
    assert!(f.path().join("embudo.db").exists());
}
