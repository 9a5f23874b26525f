//! The dashboard at `/`: behind the API token (a browser is asked for it) unless
//! `http.dashboard_public` is set, and the page a real browser renders: headless
//! Chromium loads it from the running daemon, its DOM must show the stages and their
//! figures, and its screenshot is kept at target/dashboard.png (a CI artefact).

mod support;

use base64::Engine;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{API_TOKEN, Daemon, Folder, http, http_with};

/// The demo with its sample leads, ticked once at a Monday morning, so every stage has
/// leads and the welcome has gone out; then the daemon on that database.
fn seeded(public: bool) -> (Folder, Daemon) {
    let f = Folder::demo_with_seed();
    let mut yaml = std::fs::read_to_string(f.path().join("embudo.yaml"))
        .unwrap()
        .replace("0 */5 * * * *", "0 0 0 1 1 *");
    if public {
        yaml = yaml.replace("http:\n", "http:\n  dashboard_public: true\n");
    }
    f.write("embudo.yaml", &yaml);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    f.run(
        &["import", "events.csv", "--now", "2026-03-02T09:00:00Z"],
        0,
    );
    f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 0);
    let daemon = Daemon::start(&f, &["--now", "2026-03-02T10:05:00Z"]);
    daemon.wait_log("evaluation pass", 1, Duration::from_secs(30));
    (f, daemon)
}

#[test]
fn the_dashboard_asks_for_the_token_and_shows_the_funnel() {
    let (_f, daemon) = seeded(false);
    let port = daemon.port();
    let (status, body) = http(port, "GET", "/", None, b"");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("API token"), "{body}");
    let (status, _) = http(port, "GET", "/", Some("wrong"), b"");
    assert_eq!(status, 401);
    // What a browser sends once asked: Basic, any user, the token as the password.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("me:{API_TOKEN}"))
    );
    let (status, page) = http_with(
        port,
        "GET",
        "/",
        &[("Authorization", basic.as_str())],
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(status, 200, "{page}");
    for bit in [
        "<h1>The funnel</h1>",
        "interest:",
        "evaluation:",
        "customer:",
        "edu-welcome",
    ] {
        assert!(page.contains(bit), "{bit}\n{page}");
    }
    let (status, page) = http(port, "GET", "/", Some(API_TOKEN), b"");
    assert_eq!(status, 200, "{page}");
    // The same report as JSON, over a period, segmented; nonsense is a 400.
    let (status, j) = http(
        port,
        "GET",
        "/funnel?by=tag:school&from=2026-01-01T00:00:00Z",
        None,
        b"",
    );
    assert_eq!(status, 200, "{j}");
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(
        (v["by"].as_str(), v["from"].as_str()),
        (Some("tag:school"), Some("2026-01-01T00:00:00Z"))
    );
    let (status, j) = http(port, "GET", "/funnel?by=school", None, b"");
    assert_eq!(status, 400, "{j}");
    daemon.stop();
}

/// Chromium, if this machine has it: the test command installs Debian's package and
/// sets EMBUDO_TEST_REQUIRE_CHROMIUM, so in CI a missing browser fails the test.
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("EMBUDO_TEST_REQUIRE_CHROMIUM").is_none(),
            "Chromium is not installed (apt-get install chromium)"
        );
        eprintln!("skipped: no Chromium on this machine (tests/run.sh installs it)");
    }
    found
}

/// Runs headless Chromium on `url` with `extra` flags; its standard output.
fn headless(browser: &str, profile: &std::path::Path, url: &str, extra: &[&str]) -> String {
    // The browser runs on the real clock: a shifted one (libfaketime, as the suite is
    // also run) is for embudo, and stalls Chromium's own timers.
    let mut child = Command::new(browser)
        .env_remove("LD_PRELOAD")
        .env_remove("FAKETIME")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    // Never left behind: killed if it has not finished in a minute.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn a_real_browser_renders_the_stages_and_their_figures() {
    let Some(browser) = chromium() else {
        return;
    };
    let (f, daemon) = seeded(true);
    let url = format!("http://127.0.0.1:{}/", daemon.port());
    let profile = f.path().join("chromium-profile");
    let dom = headless(browser, &profile, &url, &["--dump-dom"]);
    for bit in [
        "The funnel",
        "interest:",
        "evaluation:",
        "customer:",
        "edu-welcome",
        "Buying windows",
    ] {
        assert!(dom.contains(bit), "{bit}\n{dom}");
    }
    // The numbers agree with the JSON report of the same daemon.
    let (_, j) = http(daemon.port(), "GET", "/funnel", None, b"");
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    for s in v["stages"].as_array().unwrap() {
        let line = format!(
            "{}: {} now · {} reached",
            s["stage"].as_str().unwrap(),
            s["leads"],
            s["reached"]
        );
        assert!(dom.contains(&line), "{line}\n{dom}");
    }
    // A phone-sized screenshot, kept for people to look at.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        browser,
        &profile,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,2600",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    daemon.stop();
}
