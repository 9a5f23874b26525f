//! Test support: the real binary, a copy of a funnel folder, and a real SMTP server
//! (aiosmtpd, installed by tests/run.sh) whose mailbox the tests read back.
//!
//! The suite runs once per backend (tests/run.sh): on SQLite, each folder keeps its
//! database in its own `embudo.db`; with `EMBUDO_TEST_BACKEND=postgres`, each folder
//! gets a new database of its own on the server `EMBUDO_TEST_POSTGRES` names, which
//! every command the folder runs is given through `EMBUDO_DATABASE_URL`.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SIGNING_KEY: &str = "test-signing-key";
pub const API_TOKEN: &str = "test-api-token";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run of the suite stores in PostgreSQL (`EMBUDO_TEST_BACKEND=postgres`)
/// rather than SQLite.
pub fn on_postgres() -> bool {
    match std::env::var("EMBUDO_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite" | "") | Err(_) => false,
        Ok(other) => panic!("EMBUDO_TEST_BACKEND={other}: it is sqlite or postgres"),
    }
}

/// For a test (or a part of one) about SQLite itself, a file on disk: true, with the
/// reason printed, when the run is on PostgreSQL and it must be skipped.
pub fn sqlite_only(why: &str) -> bool {
    let skip = on_postgres();
    if skip {
        eprintln!("SKIPPED on PostgreSQL: {why}");
    }
    skip
}

/// For a test about what only PostgreSQL does (daemons sharing a pass): true, with the
/// reason printed, when the run is on SQLite and it must be skipped.
pub fn postgres_only(why: &str) -> bool {
    let skip = !on_postgres();
    if skip {
        eprintln!("SKIPPED on SQLite: {why}");
    }
    skip
}

/// A new, empty database for one test on the PostgreSQL run (its URL), none on SQLite
/// (where the funnel's own `database:` file is used).
pub fn new_database() -> Option<String> {
    on_postgres().then(pg::create)
}

/// Runs `f` to completion on a runtime of its own (on a thread of its own, so it works
/// both in plain tests and inside a test's own runtime).
pub fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join()
        .unwrap()
    })
}

/// The test PostgreSQL server: a database per folder, dropped with it.
mod pg {
    use sqlx::Connection;

    /// The server tests/run.sh started.
    fn server() -> String {
        std::env::var("EMBUDO_TEST_POSTGRES")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "EMBUDO_TEST_BACKEND=postgres needs EMBUDO_TEST_POSTGRES=postgres://USER@HOST:PORT (tests/run.sh starts a server and sets both)"
                )
            })
            .trim_end_matches('/')
            .to_string()
    }

    async fn admin() -> sqlx::PgConnection {
        let server = server();
        sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("the test PostgreSQL server {server}: {e}"))
    }

    /// Creates a database with a fresh name; returns its URL.
    pub fn create() -> String {
        let name = format!("f_{:016x}", rand::random::<u64>());
        super::block_on(async {
            let mut c = admin().await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .unwrap();
            let _ = c.close().await;
        });
        format!("{}/{name}", server())
    }

    /// Drops the database at `url`, with whatever is still connected to it (a daemon
    /// killed a moment ago): the server is a throwaway, but its disk is not endless.
    pub fn drop(url: &str) {
        let name = url.rsplit('/').next().unwrap().to_string();
        super::block_on(async {
            let mut c = admin().await;
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await;
            let _ = c.close().await;
        });
    }
}

/// A funnel folder in a temporary directory, with its database (see the module's doc).
pub struct Folder {
    pub dir: tempfile::TempDir,
    /// The folder's PostgreSQL database on the PostgreSQL run.
    database: Option<String>,
}

impl Drop for Folder {
    fn drop(&mut self) {
        if let Some(url) = &self.database {
            pg::drop(url);
        }
    }
}

impl Folder {
    fn in_dir(dir: tempfile::TempDir) -> Folder {
        Folder {
            dir,
            database: new_database(),
        }
    }

    /// A copy of `src` (relative to the repository root) without its database or mail.
    pub fn copy_of(src: &str) -> Folder {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join(src), dir.path());
        Folder::in_dir(dir)
    }

    /// The demo funnel, as `embudo init` writes it, without its `seed:` sample data
    /// (tests bring their own leads).
    pub fn demo() -> Folder {
        let f = Folder::demo_with_seed();
        let p = f.path().join("embudo.yaml");
        let yaml = std::fs::read_to_string(&p).unwrap();
        let kept: Vec<&str> = yaml.lines().filter(|l| !l.starts_with("seed:")).collect();
        assert!(
            kept.len() < yaml.lines().count(),
            "the demo has a seed: line"
        );
        std::fs::write(p, kept.join("\n") + "\n").unwrap();
        f
    }

    /// The demo funnel exactly as `embudo init` writes it.
    pub fn demo_with_seed() -> Folder {
        let f = Folder::with_files(&[]);
        f.run(&["init", "."], 0);
        f
    }

    /// An empty folder with just these files.
    pub fn with_files(files: &[(&str, &str)]) -> Folder {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        Folder::in_dir(dir)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    /// Drops `limits.quiet_hours`, for tests where the daemon and other commands share
    /// the machine's real clock (an `embudo event` next to an `embudo run`): with quiet
    /// hours, whether an email leaves would depend on the hour the suite runs.
    pub fn without_quiet_hours(&self) {
        let p = self.path().join("embudo.yaml");
        let yaml = std::fs::read_to_string(&p).unwrap();
        let kept: Vec<&str> = yaml
            .lines()
            .filter(|l| !l.trim_start().starts_with("quiet_hours:"))
            .collect();
        assert!(kept.len() < yaml.lines().count(), "no quiet_hours line");
        std::fs::write(p, kept.join("\n") + "\n").unwrap();
    }

    /// Points `smtp.url` at `url` (the line `  url: …` of the smtp block).
    pub fn set_smtp_url(&self, url: &str) {
        let p = self.path().join("embudo.yaml");
        let src = std::fs::read_to_string(&p).unwrap();
        let mut out = String::new();
        let mut replaced = false;
        for line in src.lines() {
            if !replaced && line.trim_start().starts_with("url:") {
                out.push_str(&format!("  url: \"{url}\"\n"));
                replaced = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        assert!(replaced, "no smtp url line in embudo.yaml");
        std::fs::write(p, out).unwrap();
    }

    /// The emails the file transport wrote into `mail/` (`smtp.url: file://./mail`).
    pub fn mails(&self) -> Vec<Mail> {
        let mut out: Vec<Mail> = std::fs::read_dir(self.path().join("mail"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| Mail::parse(&std::fs::read(e.path()).unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (&a.to, &a.subject).cmp(&(&b.to, &b.subject)));
        out
    }

    /// The binary, run in this folder with a known signing key.
    pub fn embudo(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_embudo"));
        c.current_dir(self.path())
            .env("EMBUDO_SIGNING_KEY", SIGNING_KEY)
            .env("EMBUDO_API_TOKEN", API_TOKEN)
            .env("EMBUDO_LOG", "info")
            .env_remove("EMBUDO_CONFIG");
        match &self.database {
            Some(url) => c.env("EMBUDO_DATABASE_URL", url),
            None => c.env_remove("EMBUDO_DATABASE_URL"),
        };
        c
    }

    /// Runs the binary with `args`, returning its output; panics with the output if
    /// the exit code is not `code`.
    pub fn run(&self, args: &[&str], code: i32) -> Output {
        let out = self.embudo().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "embudo {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A lead of this folder's database, by email, as of now.
    pub async fn lead(&self, email: &str) -> embudo::domain::Lead {
        let id = self.lead_id(email).await;
        self.store()
            .await
            .load_lead(id, chrono::Utc::now())
            .await
            .unwrap()
            .unwrap()
            .lead
    }

    /// The id of a lead of this folder's database, by email or id.
    pub async fn lead_id(&self, who: &str) -> embudo::domain::LeadId {
        self.store()
            .await
            .find_lead_id(who)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no lead {who}"))
    }

    /// The library's view of this folder's database.
    pub async fn store(&self) -> embudo::store::Store {
        embudo::store::Store::open_and_migrate(&self.database_url())
            .await
            .unwrap()
    }

    /// The URL of this folder's database: its PostgreSQL database, or on SQLite the
    /// file `database:` in embudo.yaml names.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database {
            return url.clone();
        }
        embudo::funnel::config::Config::load(&self.path().join("embudo.yaml"), chrono::Utc::now())
            .unwrap()
            .database
    }

    /// Whether a command has created this folder's database: on SQLite the file
    /// `embudo.db` exists, on PostgreSQL the database has tables (it was migrated).
    pub fn has_database(&self) -> bool {
        if self.database.is_none() {
            return self.path().join("embudo.db").exists();
        }
        let tables: Vec<(String,)> = block_on(self.fetch_all(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        ));
        !tables.is_empty()
    }

    /// Everything stored in this folder's database, to compare before and after a
    /// command that must not write: on SQLite the file's bytes, on PostgreSQL every
    /// table's rows as JSON, in order.
    pub fn snapshot(&self) -> Vec<u8> {
        if self.database.is_none() {
            return std::fs::read(self.path().join("embudo.db")).unwrap();
        }
        let tables: Vec<(String,)> = block_on(self.fetch_all(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        ));
        let mut out = Vec::new();
        for (t,) in tables {
            let rows: Vec<(String,)> = block_on(self.fetch_all(&format!(
                "SELECT to_jsonb(r)::text AS j FROM \"{t}\" r ORDER BY j"
            )));
            out.extend(format!("{t}\n").into_bytes());
            for (r,) in rows {
                out.extend(format!("{r}\n").into_bytes());
            }
        }
        out
    }

    /// Runs one SQL statement (written for both backends) on this folder's database.
    pub async fn execute(&self, sql: &str) {
        let url = self.database_url();
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if url.starts_with("postgres") {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }

    /// The rows of a query (written for both backends) on this folder's database; none
    /// while the database or the table does not exist yet. The SQLite file is opened
    /// read-only, so reading never creates it.
    pub async fn fetch_all<T>(&self, sql: &str) -> Vec<T>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    {
        let url = self.database_url();
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if url.starts_with("postgres") {
            let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await else {
                return Vec::new();
            };
            sqlx::query_as(sql)
                .fetch_all(&mut c)
                .await
                .unwrap_or_default()
        } else {
            let path = url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap();
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let Ok(mut c) = sqlx::ConnectOptions::connect(&options).await else {
                return Vec::new();
            };
            sqlx::query_as(sql)
                .fetch_all(&mut c)
                .await
                .unwrap_or_default()
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".db") || n.contains(".db-") || n == "outbox-mail" {
            continue;
        }
        let to = dst.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

const WELCOME: &str = "---\nsubject: \"Hola {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n";

impl Folder {
    /// A one-stage funnel that welcomes each of `leads` leads (lead0001@example.com…,
    /// in leads.csv, not yet imported) once, with `limits` (a YAML flow map) and a
    /// tick once a year, so only the start-up pass and events queue email.
    pub fn welcome_funnel(smtp_url: &str, limits: &str, leads: usize) -> Folder {
        let csv = (1..=leads).fold(String::from("email,name\n"), |acc, i| {
            acc + format!("lead{i:04}@example.com,Lead {i}\n").as_str()
        });
        Folder::with_files(&[
            (
                "embudo.yaml",
                &format!(
                    "funnel: {{ stages: [interest] }}\nschedule: {{ tick: \"0 0 0 1 1 *\" }}\nsmtp: {{ url: \"{smtp_url}\", from: \"Shop <shop@example.com>\" }}\nlimits: {limits}\n"
                ),
            ),
            ("templates/welcome.html", WELCOME),
            (
                "rules/10_welcome.rhai",
                "send(\"welcome\");\nif has_event(\"bounced\") && !lead.tags.contains(\"bounced\") { tag(\"bounced\"); }\n",
            ),
            ("leads.csv", &csv),
        ])
    }
}

/// Recipient → Message-IDs of the copies the server received.
pub fn by_recipient(smtp: &SmtpServer) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for mail in smtp.messages() {
        m.entry(mail.to.clone()).or_default().push(mail.message_id);
    }
    m
}

/// Polls `done` until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `embudo run` whose log is written to `daemon.log` in the folder. It is
/// killed when the handle drops, also when a test panics, so no test leaves a daemon
/// behind; its HTTP API listens on a port the system picks, never 8080.
pub struct Daemon {
    pub child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    /// Starts the daemon with `args` (e.g. `["--now", "2026-03-02T10:00:00Z"]`). Tests
    /// that wait for a marketing email give `--now` at a daytime hour, so quiet hours
    /// and weekday rules never depend on when the suite runs.
    pub fn start(f: &Folder, args: &[&str]) -> Daemon {
        Daemon::start_named(f, "daemon", args)
    }

    /// A daemon logging to `NAME.log`, for several daemons on one folder.
    pub fn start_named(f: &Folder, name: &str, args: &[&str]) -> Daemon {
        let log = f.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = f
            .embudo()
            .arg("run")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port of the HTTP API, once it listens (read from the log).
    pub fn port(&self) -> u16 {
        self.wait_log("HTTP API listening listen=", 1, Duration::from_secs(20));
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains("HTTP API listening listen="))
            .unwrap();
        let addr = line.split("listen=").nth(1).unwrap().trim();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits until the log contains `what` `n` times; panics with the log if it does not.
    pub fn wait_log(&self, what: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log().matches(what).count() < n {
            assert!(
                Instant::now() < deadline,
                "no {n}× `{what}` in the daemon's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit code must be 0.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert_eq!(self.child.wait().unwrap().code(), Some(0), "{}", self.log());
    }

    /// kill -9: no chance to finish anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the exit code
    /// and how long the exit took (panics if the daemon is still running).
    pub fn terminate(&mut self, timeout: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < timeout,
                "still running {timeout:?} after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A no-op for a process already waited for (std remembers its status).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another process holding an exclusive lock on a SQLite file until the test releases
/// it (or the handle drops). It waits on its stdin, not on a timer: a fixed sleep
/// would tie the test to the machine's clock (and fails under a shifted clock).
pub struct Locker {
    child: Child,
}

impl Locker {
    pub fn lock(db: &Path) -> Locker {
        let mut child = Command::new(python())
            .args([
                "-c",
                "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.read()\n",
            ])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        Locker { child }
    }

    /// Lets the lock go and waits for the process to end.
    pub fn release(mut self) {
        drop(self.child.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real SMTP server process (aiosmtpd) storing what it receives in a Maildir.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

pub fn python() -> String {
    if let Ok(p) = std::env::var("EMBUDO_TEST_PYTHON") {
        return p;
    }
    let venv = repo().join("target/test-venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    panic!(
        "the SMTP tests need aiosmtpd: run the test suite with tests/run.sh, which installs it into target/test-venv"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(free_port())
    }

    /// A server on a chosen port (to bring one up where embudo already points).
    pub fn start_on(port: u16) -> SmtpServer {
        SmtpServer::start_with(port, &[], None)
    }

    /// A server that answers `550 5.1.1` (a hard bounce) for these recipients.
    pub fn rejecting(reject: &[&str]) -> SmtpServer {
        SmtpServer::start_with(free_port(), reject, None)
    }

    /// A server offering AUTH without TLS, accepting `user`/`pass`; `logins()` lists
    /// the logins it received.
    pub fn with_plain_auth(user: &str, pass: &str) -> SmtpServer {
        SmtpServer::start_with(free_port(), &[], Some(format!("{user}:{pass}")))
    }

    /// The AUTH attempts received ("PLAIN user"), in order.
    pub fn logins(&self) -> Vec<String> {
        std::fs::read_to_string(self.maildir.path().join("mail.auth"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn start_with(port: u16, reject: &[&str], auth: Option<String>) -> SmtpServer {
        let maildir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/support/smtpd.py"))
            .arg(port.to_string())
            .arg(maildir.path().join("mail"));
        if !reject.is_empty() {
            cmd.args(["--reject", &reject.join(",")]);
        }
        if let Some(a) = auth {
            cmd.args(["--auth", &a]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let server = SmtpServer {
            child,
            port,
            maildir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Stops the server (its mailbox stays readable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The URL for embudo.yaml.
    pub fn url(&self) -> String {
        url_for(self.port)
    }

    /// Every message received so far, parsed, sorted by recipient then subject.
    pub fn messages(&self) -> Vec<Mail> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(self.maildir.path().join("mail").join(sub)) else {
                continue;
            };
            for e in rd {
                let raw = std::fs::read(e.unwrap().path()).unwrap();
                out.push(Mail::parse(&raw));
            }
        }
        out.sort_by(|a, b| (&a.to, &a.subject).cmp(&(&b.to, &b.subject)));
        out
    }

    /// Waits until at least `n` messages have arrived, then returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `smtp.url` of a plain-text SMTP server on `port`.
pub fn url_for(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}?tls=none")
}

/// A received email, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub html: String,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Mail {
        let m = mailparse::parse_mail(raw).unwrap();
        let h = |name: &str| {
            m.headers
                .iter()
                .find(|x| x.get_key().eq_ignore_ascii_case(name))
                .map(|x| x.get_value())
                .unwrap_or_default()
        };
        let mut text = String::new();
        let mut html = String::new();
        for part in m.parts() {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = part.get_body().unwrap(),
                "text/html" => html = part.get_body().unwrap(),
                _ => {}
            }
        }
        Mail {
            from: h("From"),
            to: h("To"),
            subject: h("Subject"),
            message_id: h("Message-ID"),
            headers: m
                .headers
                .iter()
                .map(|x| (x.get_key(), x.get_value()))
                .collect(),
            text,
            html,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn template(&self) -> &str {
        self.header("X-Embudo-Template").unwrap_or("")
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    http_with(port, method, path, &headers, body, Duration::from_secs(20))
}

/// One HTTP/1.1 request with these headers, waiting up to `timeout` for the answer;
/// returns (status, body).
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Waits until something listens on `port`.
pub fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
