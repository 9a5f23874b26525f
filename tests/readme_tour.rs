//! The README's tour and the tienda example's walk-through, run line by line as a new
//! user would type them, in a fresh folder. Each quoted claim in a line's comment (or
//! in the comment lines just above a command) must appear in what that command prints;
//! `ls DIR` lines claim how many files DIR holds. The tour gives every command a
//! `--now`, so the claims hold at any hour the suite runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// One command of a shell block, with the claims made about it.
#[derive(Debug)]
struct Step {
    line: String,
    words: Vec<String>,
    claims: Vec<String>,
    comment: String,
}

/// The first ```sh block after `heading` in `doc`.
fn block(doc: &str, heading: &str) -> Vec<String> {
    let at = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"));
    let rest = &doc[at..];
    let start = rest.find("```sh\n").expect("a ```sh block") + 6;
    let end = rest[start..].find("```").unwrap() + start;
    // Join continued lines.
    let mut lines = Vec::new();
    let mut cur = String::new();
    for l in rest[start..end].lines() {
        if let Some(head) = l.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(l.trim_start_matches(|c: char| c == ' ' && !cur.is_empty()));
            lines.push(std::mem::take(&mut cur));
        }
    }
    lines
}

fn quoted(s: &str) -> Vec<String> {
    s.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, x)| x.to_string())
        .collect()
}

/// Splits a command line into words, honouring double quotes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut inq = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                inq = !inq;
                any = true;
            }
            ' ' if !inq => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn steps(lines: &[String]) -> Vec<Step> {
    let mut out = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for l in lines {
        let t = l.trim();
        if t.is_empty() {
            pending.clear();
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            pending.extend(quoted(c));
            continue;
        }
        let (cmd, comment) = match t.find(" #") {
            Some(i) => (t[..i].trim(), t[i + 2..].trim()),
            None => (t, ""),
        };
        for (i, part) in cmd.split("&&").enumerate() {
            let mut claims = std::mem::take(&mut pending);
            if i == cmd.split("&&").count() - 1 {
                claims.extend(quoted(comment));
            }
            out.push(Step {
                line: t.to_string(),
                words: words(part.trim()),
                claims,
                comment: comment.to_string(),
            });
        }
    }
    out
}

/// Kills a daemon the tour started if the test fails before it stops it.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary in `cwd` as a reader of the README runs it; on the PostgreSQL run, on
/// the tour's own database `db`.
fn embudo(cwd: &Path, db: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_embudo"));
    match db {
        Some(url) => c.env("EMBUDO_DATABASE_URL", url),
        None => c.env_remove("EMBUDO_DATABASE_URL"),
    };
    c.current_dir(cwd)
        .env_remove("EMBUDO_CONFIG")
        .env_remove("EMBUDO_LOG")
        .env_remove("EMBUDO_SIGNING_KEY")
        .env_remove("EMBUDO_API_TOKEN")
        // Never 8080: the machine may be running the user's own daemon.
        .env("EMBUDO_HTTP_LISTEN", "127.0.0.1:0");
    c
}

/// Runs `lines` from `start`, checking every claim; returns the last folder.
fn walk(lines: &[String], start: &Path, db: Option<&str>) -> PathBuf {
    let mut cwd = start.to_path_buf();
    for step in steps(lines) {
        let w = &step.words;
        match w[0].as_str() {
            "cargo" | "alias" => continue,
            "cd" => {
                cwd = cwd.join(&w[1]);
                continue;
            }
            "ls" => {
                let n: usize = step
                    .comment
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or_else(|| panic!("`{}`: the comment starts with a count", step.line));
                let found = std::fs::read_dir(cwd.join(&w[1])).unwrap().count();
                assert_eq!(found, n, "`{}`", step.line);
                continue;
            }
            "embudo" => {}
            other => panic!("the tour runs `{other}`, which this test does not know"),
        }
        let args = &w[1..];
        let mut rest = args.iter().map(String::as_str);
        let command = loop {
            match rest.next() {
                Some("--config" | "-c") => {
                    rest.next();
                }
                Some(a) if a.starts_with('-') => {}
                other => break other,
            }
        };
        if command == Some("run") {
            run_daemon(&cwd, db, args, &step);
            continue;
        }
        let out = embudo(&cwd, db).args(args).output().unwrap();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "`{}`:\n{text}", step.line);
        for c in &step.claims {
            assert!(
                text.contains(c.as_str()),
                "`{}` does not say \"{c}\":\n{text}",
                step.line
            );
        }
    }
    cwd
}

/// `embudo run`: waits for the claims in its log, then stops it as Ctrl-C would.
fn run_daemon(cwd: &Path, db: Option<&str>, args: &[String], step: &Step) {
    let log = cwd.join("tour-daemon.log");
    let child = embudo(cwd, db)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    while !step.claims.iter().all(|c| read().contains(c.as_str())) {
        assert!(
            Instant::now() < deadline,
            "`{}` never said {:?}:\n{}",
            step.line,
            step.claims,
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-INT", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(guard.0.wait().unwrap().code(), Some(0), "{}", read());
}

#[test]
fn the_readme_tour_does_what_it_says() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = block(&readme, "## A five-minute tour");
    assert!(lines.len() > 10, "{lines:?}");
    let dir = tempfile::tempdir().unwrap();
    let shop = walk(&lines, dir.path(), new_database().as_deref());
    assert!(shop.ends_with("shop"));
}

#[test]
fn the_tienda_walkthrough_does_what_it_says() {
    let readme = std::fs::read_to_string(repo().join("examples/tienda/README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = Folder::copy_of("examples/tienda");
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    std::fs::rename(copy.path(), dir.path().join("examples/tienda")).unwrap();
    let db = new_database();
    for heading in ["## Run it", "### Replay two months", "### Campaigns"] {
        walk(&block(&readme, heading), dir.path(), db.as_deref());
    }
}

#[test]
fn the_first_command_seeds_the_demo_and_says_where_to_look() {
    // `cargo run -- run` at the repository root, in a copy: a new database is seeded
    // with the demo's leads and events; each email is sent or held with its release.
    let f = Folder::demo_with_seed();
    let daemon = Daemon::start(&f, &[]);
    daemon.wait_log("delivery round", 1, Duration::from_secs(60));
    let log = daemon.log();
    assert!(log.contains("seeded the new database"), "{log}");
    assert!(log.contains("leads=8 events=7"), "{log}");
    assert!(
        log.contains("emails are written as .eml files into ./outbox-mail"),
        "{log}"
    );
    let sent = log.matches(" sent outbox=").count();
    let held = log.matches("held: quiet hours").count();
    assert_eq!(
        sent + held,
        8,
        "every email sent or held with a reason:\n{log}"
    );
    let files = std::fs::read_dir(f.path().join("outbox-mail"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, sent, "{log}");
    daemon.stop();
    // A restart does not seed again.
    let daemon = Daemon::start(&f, &[]);
    daemon.wait_log("evaluation pass", 1, Duration::from_secs(60));
    assert!(!daemon.log().contains("seeded"), "{}", daemon.log());
    daemon.stop();
}

#[test]
fn a_daemon_with_no_leads_says_what_to_do() {
    let f = Folder::demo();
    let daemon = Daemon::start(&f, &[]);
    daemon.wait_log("evaluation pass", 1, Duration::from_secs(60));
    let log = daemon.log();
    assert!(
        log.contains("no leads yet: import some with `embudo import leads.csv`"),
        "{log}"
    );
    assert!(log.contains("/leads"), "{log}");
    daemon.stop();
}

/// The user documents stand on their own: every link points at a file of the
/// repository (or a web page), and none talks of issue numbers.
#[test]
fn the_documents_link_only_inside_the_repository() {
    let mut docs = vec![
        repo().join("README.md"),
        repo().join("ARCHITECTURE.md"),
        repo().join("examples/tienda/README.md"),
    ];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        docs.push(e.unwrap().path());
    }
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo()).unwrap().display().to_string();
        for (i, _) in text.match_indices("](") {
            let target = text[i + 2..].split(')').next().unwrap();
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if file.is_empty() {
                continue;
            }
            let path = doc.parent().unwrap().join(file);
            assert!(
                path.exists(),
                "{name} links to {target}, which does not exist"
            );
            let real = path.canonicalize().unwrap();
            assert!(
                real.starts_with(repo().canonicalize().unwrap()),
                "{name} links outside the repository: {target}"
            );
        }
        for bad in ["issue #", "../shared", "DESIGN.md"] {
            assert!(!text.contains(bad), "{name} mentions `{bad}`");
        }
        for (i, _) in text.match_indices('#') {
            let next = text[i + 1..].chars().next().unwrap_or(' ');
            assert!(
                !next.is_ascii_digit(),
                "{name} names an issue number: {}",
                &text[i.saturating_sub(20)..(i + 5).min(text.len())]
            );
        }
    }
}
