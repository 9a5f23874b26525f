//! The HTTP API of a running daemon, driven over real HTTP: leads and events in (with a
//! token), an event's email out at once, the lead's state back, and the email's own
//! one-click unsubscribe link verified against the endpoint.

mod support;

use std::time::Duration;
use support::*;

fn daemon_with_api(smtp: &SmtpServer) -> (Folder, u16, Daemon) {
    let f = Folder::demo();
    f.set_smtp_url(&smtp.url());
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml"))
        .unwrap()
        .replace("0 */5 * * * *", "0 0 0 1 1 *");
    f.write("embudo.yaml", &yaml);
    // The API works on the daemon's clock: a Monday morning, so the demo's quiet hours
    // never hold the emails the test waits for, whatever the hour it runs.
    let daemon = Daemon::start(&f, &["--now", "2026-03-02T10:00:00Z"]);
    // The start-up pass runs beside the API: wait for it, or on a loaded machine it may
    // come after a test's first leads and queue their emails before the test's events.
    daemon.wait_log("evaluation pass", 1, std::time::Duration::from_secs(30));
    let port = daemon.port();
    (f, port, daemon)
}

#[test]
fn leads_and_events_in_emails_out_and_the_one_click_link_unsubscribes() {
    let smtp = SmtpServer::start();
    let (_f, port, daemon) = daemon_with_api(&smtp);

    assert_eq!(
        http(port, "GET", "/healthz", None, b""),
        (200, "ok\n".into())
    );

    // Writes need the token.
    let lead = br#"[{"email": " Ana@Example.com", "name": "Ana", "tags": ["school"], "locale": "es", "attrs": {"city": "Sevilla", "kids": 2}}]"#;
    let (status, body) = http(port, "POST", "/leads", None, lead);
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(port, "POST", "/leads", Some("wrong"), lead);
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(port, "POST", "/leads", Some(API_TOKEN), lead);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"created\":1"), "{body}");

    // Bad input names the item and field, and stores nothing of the batch.
    let (status, body) = http(
        port,
        "POST",
        "/leads",
        Some(API_TOKEN),
        br#"[{"email": "bob@example.com"}, {"email": "not-an-address"}]"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("leads[1].email"), "{body}");
    let long = format!(
        r#"{{"email": "long@example.com", "name": "{}"}}"#,
        "x".repeat(1000)
    );
    let (status, body) = http(port, "POST", "/leads", Some(API_TOKEN), long.as_bytes());
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("leads[0].name: 1000 characters; at most 200"),
        "{body}"
    );
    let (status, _) = http(port, "GET", "/leads/bob@example.com", Some(API_TOKEN), b"");
    assert_eq!(status, 404);
    let (status, body) = http(port, "POST", "/leads", Some(API_TOKEN), b"{not json");
    assert_eq!(status, 400, "{body}");
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, _) = http(port, "POST", "/leads", Some(API_TOKEN), &big);
    assert_eq!(status, 413);

    // An event: the rules run at once and the daemon sends within a second or so.
    let (status, body) = http(
        port,
        "POST",
        "/events",
        Some(API_TOKEN),
        br#"{"lead": "ana@example.com", "kind": "quote_requested", "props": {"url": "/presupuesto"}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"recorded\":1") && body.contains("\"moves\":1"),
        "{body}"
    );
    let mail = smtp.wait_for(1, Duration::from_secs(10));
    let comparison = mail
        .iter()
        .find(|m| m.template() == "eval-comparison")
        .expect("the comparison went out");

    let (status, body) = http(port, "GET", "/leads/ana@example.com", Some(API_TOKEN), b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stage"], "evaluation");
    assert_eq!(v["events"][0]["kind"], "quote_requested");
    assert_eq!(v["stage_history"].as_array().unwrap().len(), 2);
    assert_eq!(v["unsubscribed"], false);
    let (status, _) = http(port, "GET", "/leads/1", None, b"");
    assert_eq!(status, 401, "personal data needs the token");

    // The email's own List-Unsubscribe link, as a mail client's one-click POST.
    let lu = comparison.header("List-Unsubscribe").unwrap();
    let url = lu.split('<').nth(1).unwrap().split('>').next().unwrap();
    let path = url.strip_prefix("https://tienda.example/embudo").unwrap();
    let (status, page) = http(port, "GET", path, None, b"");
    assert_eq!(status, 200);
    assert!(
        page.contains("<form method=\"post\">"),
        "a GET only asks: {page}"
    );
    let (_, v) = http(port, "GET", "/leads/1", Some(API_TOKEN), b"");
    assert!(v.contains("\"unsubscribed\":false"), "{v}");
    let (status, page) = http(port, "POST", path, None, b"List-Unsubscribe=One-Click");
    assert_eq!(status, 200);
    assert!(page.contains("You are unsubscribed"), "{page}");
    let (_, v) = http(port, "GET", "/leads/1", Some(API_TOKEN), b"");
    assert!(v.contains("\"unsubscribed\":true"), "{v}");
    // A forged or cut token does nothing.
    let forged = format!("{}x", &path[..path.len() - 1]);
    let (status, _) = http(port, "POST", &forged, None, b"");
    assert_eq!(status, 404);

    // Tracking: its links go through a signed redirect to the same place, and the
    // pixel records an open; both become events the rules read.
    let html = &comparison.html;
    let click = html
        .split("href=\"")
        .skip(1)
        .map(|h| h.split('"').next().unwrap())
        .find(|h| h.contains("/t/c/"))
        .expect("a tracked link");
    let click_path = click.strip_prefix("https://tienda.example/embudo").unwrap();
    let raw = std::fs::read_to_string(repo().join("templates/eval-comparison.html")).unwrap();
    let first_target = raw
        .split("href=\"")
        .skip(1)
        .map(|h| h.split('"').next().unwrap())
        .find(|h| h.starts_with("http"))
        .unwrap();
    let (status, _) = http(port, "GET", click_path, None, b"");
    assert_eq!(status, 302);
    let location = raw_header(port, click_path, "location");
    assert_eq!(location.as_deref(), Some(first_target));
    let pixel = html
        .split("/t/o/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (status, _) = http(port, "GET", &format!("/t/o/{pixel}"), None, b"");
    assert_eq!(status, 200);
    // A link whose target was changed is refused: no open redirect.
    let token = click_path.strip_prefix("/t/c/").unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    let evil = base64_url("1\neval-comparison\nhttps://evil.example/");
    assert_ne!(payload, evil);
    let (status, _) = http(port, "GET", &format!("/t/c/{evil}.{tag}"), None, b"");
    assert_eq!(status, 404);
    // Nor does a signature cut short (guessable byte by byte if it were accepted).
    let (status, _) = http(
        port,
        "GET",
        &format!("/t/c/{evil}.{}", &tag[..2]),
        None,
        b"",
    );
    assert_eq!(status, 404);
    let (status, _) = http(
        port,
        "GET",
        &format!("/t/c/{payload}.{}", &tag[..2]),
        None,
        b"",
    );
    assert_eq!(status, 404);
    let (_, v) = http(port, "GET", "/leads/1", Some(API_TOKEN), b"");
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"click") && kinds.contains(&"open"),
        "{kinds:?}"
    );

    // Metrics and the funnel.
    let (status, m) = http(port, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(m.contains("embudo_leads{stage=\"evaluation\"} 1"), "{m}");
    assert!(m.contains("embudo_outbox{state=\"sent\"}"), "{m}");
    let (status, j) = http(port, "GET", "/funnel", None, b"");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["stages"][1]["stage"], "evaluation");
    let t = v["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["template"] == "eval-comparison")
        .unwrap();
    // The link was followed twice within a minute: the same token counts once.
    assert_eq!(
        (t["opened"].as_i64(), t["clicked"].as_i64()),
        (Some(1), Some(1)),
        "{t}"
    );
    daemon.stop();
}

/// One header of a GET's response (lower-case name).
fn raw_header(port: u16, path: &str, name: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw.lines()
        .find(|l| l.to_lowercase().starts_with(&format!("{name}:")))
        .map(|l| l.split_once(':').unwrap().1.trim().to_string())
}

/// Unpadded URL-safe base64, as the tokens use.
fn base64_url(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (u32::from(*c) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn a_batch_of_events_runs_each_lead_once_and_an_unknown_lead_refuses_the_batch() {
    let smtp = SmtpServer::start();
    let (_f, port, _daemon) = daemon_with_api(&smtp);
    let leads = br#"[{"email": "ana@example.com"}, {"email": "bob@example.com"}, {"email": "cai@example.com"}]"#;
    let (status, body) = http(port, "POST", "/leads", Some(API_TOKEN), leads);
    assert_eq!(status, 200, "{body}");

    // Ana twice (by email and by id) and Bob once: the rules of each run once, after
    // all of the batch is stored. Cai, not named, is left for the next pass.
    let batch = br#"[{"lead": "ana@example.com", "kind": "quote_requested"},
                     {"lead": "bob@example.com", "kind": "page_view"},
                     {"lead": 1, "kind": "page_view"}]"#;
    let (status, body) = http(port, "POST", "/events", Some(API_TOKEN), batch);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["recorded"], &v["queued"], &v["moves"]),
        (&3.into(), &2.into(), &1.into()),
        "{body}"
    );
    let mut sent: Vec<(String, String)> = smtp
        .wait_for(2, Duration::from_secs(10))
        .iter()
        .map(|m| {
            (
                m.header("To").unwrap().to_string(),
                m.template().to_string(),
            )
        })
        .collect();
    sent.sort();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].0.contains("ana@") && sent[0].1 == "eval-comparison",
        "{sent:?}"
    );
    assert!(
        sent[1].0.contains("bob@") && sent[1].1 == "edu-welcome",
        "{sent:?}"
    );
    let (_, ana) = http(port, "GET", "/leads/1", Some(API_TOKEN), b"");
    let ana: serde_json::Value = serde_json::from_str(&ana).unwrap();
    assert_eq!(ana["events"].as_array().unwrap().len(), 2);
    assert_eq!(
        ana["stage_history"].as_array().unwrap().len(),
        2,
        "one move"
    );

    // A lead that does not exist refuses the whole batch, naming the item: Cai's
    // event is not stored and no rule runs.
    let batch = br#"[{"lead": "cai@example.com", "kind": "quote_requested"},
                     {"lead": "nobody@example.com", "kind": "page_view"}]"#;
    let (status, body) = http(port, "POST", "/events", Some(API_TOKEN), batch);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("events[1]") && body.contains("nobody@example.com"),
        "{body}"
    );
    let (_, cai) = http(port, "GET", "/leads/cai@example.com", Some(API_TOKEN), b"");
    let cai: serde_json::Value = serde_json::from_str(&cai).unwrap();
    assert_eq!(cai["events"].as_array().unwrap().len(), 0, "{cai}");
    assert_eq!(cai["stage"], "interest", "{cai}");
    assert_eq!(cai["sends"].as_array().map_or(0, Vec::len), 0, "{cai}");
}
