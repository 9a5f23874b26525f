//! The HTTP API under faults and abuse, against the real binary and a real daemon:
//! a full disk (nothing acknowledged is lost, refusals say "disk full", writes work
//! again once space returns, without a restart), many concurrent writers (no "locked"
//! answers), a pixel hit over and over (one open), slow clients that never finish
//! their headers (closed after the header timeout), and retried webhooks (idempotent).
//! Every test counts the rows actually stored.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const NOW: &str = "2026-03-02T10:00:00Z";

/// One request with the API token and these extra headers; returns (status, body).
fn req(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let auth = format!("Bearer {API_TOKEN}");
    let mut all = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    all.extend_from_slice(headers);
    http_with(port, method, path, &all, body, Duration::from_secs(60))
}

fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    req(port, "POST", path, &[], body.as_bytes())
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The events of kind `kind` stored for the lead `email`.
fn events_of(f: &Folder, email: &str, kind: &str) -> usize {
    block(async {
        let store = f.store().await;
        let id = store.find_lead_id(email).await.unwrap().expect("the lead");
        let later = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let n = store
            .load_lead(id, later)
            .await
            .unwrap()
            .unwrap()
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .count();
        store.close().await;
        n
    })
}

fn lead_count(f: &Folder) -> u64 {
    block(async {
        let store = f.store().await;
        let n = store.lead_count().await.unwrap();
        store.close().await;
        n
    })
}

fn stored(f: &Folder, email: &str) -> bool {
    block(async {
        let store = f.store().await;
        let found = store.find_lead_id(email).await.unwrap().is_some();
        store.close().await;
        found
    })
}

fn daemon(f: &Folder) -> (Daemon, u16) {
    let d = Daemon::start(f, &["--now", NOW]);
    let port = d.port();
    (d, port)
}

/// A tmpfs mounted for the test, unmounted when dropped (also on a panic).
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Mount {
                dir: dir.to_path_buf(),
            })
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open there: detach it now, it goes when freed.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
    }
}

/// Fills the file system of `dir` with one file until it refuses (ENOSPC).
fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut file = std::fs::File::create(&p).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    // The last few blocks, byte by byte in smaller pieces.
    for size in [4096, 512, 1] {
        while file.write_all(&chunk[..size]).is_ok() {}
    }
    let _ = file.sync_all();
    p
}

fn lead_json(email: &str) -> String {
    // Enough attributes that each lead needs fresh pages.
    let attrs: Vec<String> = (0..12)
        .map(|i| format!("\"a{i}\": \"{}\"", "v".repeat(300)))
        .collect();
    format!(
        r#"{{"email": "{email}", "name": "Chaos", "attrs": {{{}}}}}"#,
        attrs.join(", ")
    )
}

#[test]
fn a_full_disk_loses_no_acknowledged_lead_and_writes_resume_when_space_returns() {
    if sqlite_only("the SQLite file on a full tmpfs; the server's disk is not the test's") {
        return;
    }
    let f = Folder::demo();
    let mnt = f.path().join("disk");
    // Declared before the daemon, so it drops (unmounts) after the daemon is killed.
    let _mount = match Mount::tmpfs(&mnt, "3m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs to fill ({why}); the disk-full test needs root or CAP_SYS_ADMIN"
            );
            return;
        }
    };
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml")).unwrap();
    let yaml: Vec<String> = yaml
        .lines()
        .map(|l| {
            if l.starts_with("database:") {
                format!("database: sqlite://{}/embudo.db", mnt.display())
            } else {
                l.to_string()
            }
        })
        .collect();
    f.write("embudo.yaml", &(yaml.join("\n") + "\n"));
    let (d, port) = daemon(&f);
    let mut expected = 0u64;
    for i in 0..5 {
        let (status, body) = post(
            port,
            "/leads",
            &lead_json(&format!("before{i}@example.com")),
        );
        assert_eq!(status, 200, "{body}");
        expected += 1;
    }
    assert_eq!(http(port, "GET", "/healthz", None, b"").0, 200);

    let filler = fill(&mnt);
    let (mut ok, mut refused) = (Vec::new(), 0);
    for i in 0..60 {
        let email = format!("full{i}@example.com");
        let (status, body) = post(port, "/leads", &lead_json(&email));
        match status {
            200 => ok.push(email),
            503 => {
                assert!(body.contains("disk full"), "{body}");
                assert!(
                    !body.contains("code:") && !body.contains("SQLITE"),
                    "no raw database text: {body}"
                );
                refused += 1;
            }
            other => panic!("{other} {body}\n{}", d.log()),
        }
    }
    let (health, why) = http(port, "GET", "/healthz", None, b"");
    eprintln!(
        "disk full: {} answered 200, {refused} answered 503; /healthz {health}",
        ok.len()
    );
    assert!(refused > 0, "the disk never filled up");
    assert_eq!(health, 503, "{why}");
    assert!(why.contains("disk full"), "{why}");

    std::fs::remove_file(&filler).unwrap();
    let mut after = 0;
    for i in 0..10 {
        let email = format!("after{i}@example.com");
        let (status, body) = post(port, "/leads", &lead_json(&email));
        assert_eq!(status, 200, "{body}\n{}", d.log());
        ok.push(email);
        after += 1;
    }
    assert_eq!(
        http(port, "GET", "/healthz", None, b""),
        (200, "ok\n".into())
    );
    expected += ok.len() as u64;
    drop(d);
    for email in &ok {
        assert!(stored(&f, email), "{email} was acknowledged but not stored");
    }
    assert_eq!(lead_count(&f), expected);
    eprintln!(
        "disk full: stored {expected} leads = 5 before + {} acknowledged while full + {after} after",
        ok.len() - after
    );
}

#[test]
fn twenty_event_writers_and_a_lead_writer_get_no_locked_answers_and_everything_is_stored() {
    let f = Folder::demo();
    let (_d, port) = daemon(&f);
    let writers: Vec<String> = (0..20).map(|i| format!("w{i}@example.com")).collect();
    let batch: Vec<String> = writers
        .iter()
        .map(|e| format!(r#"{{"email": "{e}"}}"#))
        .collect();
    let (status, body) = post(port, "/leads", &format!("[{}]", batch.join(",")));
    assert_eq!(status, 200, "{body}");

    const EVENTS: usize = 25;
    const LEADS: usize = 500;
    let mut threads = Vec::new();
    for w in writers.clone() {
        threads.push(std::thread::spawn(move || {
            let mut statuses = Vec::new();
            for i in 0..EVENTS {
                let body =
                    format!(r#"{{"lead": "{w}", "kind": "page_view", "props": {{"n": {i}}}}}"#);
                statuses.push(post(port, "/events", &body));
            }
            statuses
        }));
    }
    threads.push(std::thread::spawn(move || {
        (0..LEADS)
            .map(|i| {
                post(
                    port,
                    "/leads",
                    &format!(r#"{{"email": "l{i}@example.com"}}"#),
                )
            })
            .collect()
    }));
    let answers: Vec<(u16, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unavailable = answers.iter().filter(|(s, _)| *s == 503).count();
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    eprintln!(
        "concurrent writers: {} requests, {ok} answered 200, {unavailable} answered 503",
        answers.len()
    );
    let bad: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        bad.is_empty(),
        "{} not 200, e.g. {:?}",
        bad.len(),
        bad.first()
    );
    assert_eq!(unavailable, 0);
    assert_eq!(lead_count(&f), (writers.len() + LEADS) as u64);
    for w in &writers {
        assert_eq!(events_of(&f, w, "page_view"), EVENTS, "{w}");
    }
}

#[test]
fn the_same_open_pixel_two_hundred_times_records_one_open() {
    let f = Folder::demo();
    let (d, port) = daemon(&f);
    let (status, body) = post(port, "/leads", r#"{"email": "ana@example.com"}"#);
    assert_eq!(status, 200, "{body}");
    let id = block(async {
        let store = f.store().await;
        let id = store
            .find_lead_id("ana@example.com")
            .await
            .unwrap()
            .unwrap();
        store.close().await;
        id
    });
    let email = embudo::domain::EmailAddress::parse("ana@example.com").unwrap();
    let payload = embudo::delivery::signing::unsubscribe_payload(id.0, &email);
    let token = embudo::delivery::signing::Signer::new(SIGNING_KEY.as_bytes())
        .sign("open", &format!("{payload}\nwelcome"));
    let path = format!("/t/o/{token}");
    let started = Instant::now();
    for _ in 0..200 {
        let (status, _) = http(port, "GET", &path, None, b"");
        assert_eq!(status, 200, "{}", d.log());
    }
    let opens = events_of(&f, "ana@example.com", "open");
    eprintln!(
        "open pixel: 200 hits in {:?}, {opens} open event(s) recorded",
        started.elapsed()
    );
    assert_eq!(opens, 1);
}

#[test]
fn connections_that_never_finish_their_headers_are_closed_and_others_are_served() {
    let f = Folder::demo();
    let (_d, port) = daemon(&f);
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")
                .unwrap();
            s
        })
        .collect();
    // Meanwhile a normal request is answered.
    assert_eq!(
        http(port, "GET", "/healthz", None, b""),
        (200, "ok\n".into())
    );
    // Each slow connection is closed by the server (EOF, or a 408 then EOF) within the
    // header timeout (10 s) and a generous margin.
    let deadline = started + Duration::from_secs(40);
    let mut closed_after = Vec::new();
    for s in &mut slow {
        let mut buf = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "a connection is still open after 40 s");
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        closed_after.push(started.elapsed());
    }
    let last = closed_after.iter().max().unwrap();
    eprintln!("slow headers: 200 connections, all closed by the server, the last after {last:?}");
    assert_eq!(closed_after.len(), 200);
    assert!(
        *last >= Duration::from_secs(5),
        "closed before any timeout could run: {last:?}"
    );
    // And the daemon still answers.
    assert_eq!(http(port, "GET", "/healthz", None, b"").0, 200);
}

#[test]
fn a_retried_webhook_is_recorded_once_and_event_ids_are_deduplicated() {
    let f = Folder::demo();
    let (_d, port) = daemon(&f);
    let (status, body) = post(port, "/leads", r#"{"email": "ana@example.com"}"#);
    assert_eq!(status, 200, "{body}");

    let event = br#"{"lead": "ana@example.com", "kind": "webinar_signup"}"#;
    let key = [("Idempotency-Key", "hook-0001")];
    let first = req(port, "POST", "/events", &key, event);
    let second = req(port, "POST", "/events", &key, event);
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first, second, "the retry gets the first answer");
    assert!(first.1.contains("\"recorded\":1"), "{}", first.1);
    assert_eq!(events_of(&f, "ana@example.com", "webinar_signup"), 1);

    // The same key with another body is refused, and records nothing.
    let other = br#"{"lead": "ana@example.com", "kind": "webinar_signup", "props": {"x": 1}}"#;
    let (status, body) = req(port, "POST", "/events", &key, other);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("Idempotency-Key"), "{body}");
    assert_eq!(events_of(&f, "ana@example.com", "webinar_signup"), 1);

    // The same for leads.
    let lead = br#"{"email": "bea@example.com"}"#;
    let lkey = [("Idempotency-Key", "lead-0001")];
    let a = req(port, "POST", "/leads", &lkey, lead);
    let b = req(port, "POST", "/leads", &lkey, lead);
    assert_eq!(a.0, 200, "{}", a.1);
    assert_eq!(a, b);
    assert_eq!(lead_count(&f), 2);

    // Event ids: the second event with an id already recorded is a duplicate.
    let with_id = r#"{"lead": "ana@example.com", "kind": "purchase", "id": "ord-77"}"#;
    let (status, body) = post(port, "/events", with_id);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"recorded\":1") && body.contains("\"duplicates\":0"),
        "{body}"
    );
    let (status, body) = post(port, "/events", with_id);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"recorded\":0") && body.contains("\"duplicates\":1"),
        "{body}"
    );
    // Also within one batch.
    let (status, body) = post(port, "/events", &format!("[{with_id}, {with_id}]"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"duplicates\":2"), "{body}");
    assert_eq!(events_of(&f, "ana@example.com", "purchase"), 1);
}

#[test]
fn field_limits_are_the_same_for_http_and_csv() {
    let f = Folder::demo();
    let (_d, port) = daemon(&f);
    let tags: Vec<String> = (0..51).map(|i| format!("\"t{i}\"")).collect();
    let (status, body) = post(
        port,
        "/leads",
        &format!(
            r#"{{"email": "a@example.com", "tags": [{}]}}"#,
            tags.join(",")
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("at most 50"), "{body}");
    let (status, body) = post(
        port,
        "/leads",
        &format!(
            r#"{{"email": "a@example.com", "attrs": {{"k": "{}"}}}}"#,
            "x".repeat(1001)
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("at most 1000"), "{body}");
    let (status, body) = post(
        port,
        "/leads",
        r#"{"email": "a@example.com", "tags": ["bad\u0007tag"]}"#,
    );
    assert_eq!(status, 422, "{body}");
    // An encoded-word in a name loses its markers.
    let (status, body) = post(
        port,
        "/leads",
        r#"{"email": "a@example.com", "name": "=?utf-8?b?QW5hDQpCY2M6IHhAZXZpbC5leGFtcGxl?="}"#,
    );
    assert_eq!(status, 200, "{body}");
    let name = block(async { f.lead("a@example.com").await.name.unwrap() });
    assert!(!name.contains("=?") && !name.contains("?="), "{name}");
    assert_eq!(lead_count(&f), 1);
    // The CSV import refuses the same row for the same reason.
    f.write(
        "many-tags.csv",
        &format!(
            "email,tags\nb@example.com,{}\n",
            (0..51)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(";")
        ),
    );
    let out = f
        .embudo()
        .args(["import", "many-tags.csv"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("at most 50") || stderr(&out).contains("at most 50"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(lead_count(&f), 1);
}
