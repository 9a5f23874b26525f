//! `embudo check --smtp`: what the configured SMTP server offers, and whether embudo's
//! TLS mode and credentials will work with it. Nothing is sent: greeting, EHLO, and
//! when offered STARTTLS and EHLO again (and AUTH when credentials are configured),
//! then QUIT.

use crate::funnel::config::{Config, STARTTLS_HELP, Tls, Transport};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(20);

/// What the probe found: lines to print, and whether sending will work.
#[derive(Debug, Default)]
pub struct Probe {
    /// What the server said and offers, one fact a line.
    pub facts: Vec<String>,
    /// Why embudo will not send through this server as configured (empty: it will).
    pub problems: Vec<(String, Option<String>)>,
    /// Things that work but are worth knowing.
    pub notes: Vec<String>,
}

/// Talks to the configured server; `Err` only when there is no SMTP server to talk to
/// (`file://`), with the reason.
pub async fn probe(cfg: &Config) -> Result<Probe, String> {
    let (host, port, tls) = match &cfg.smtp.transport {
        Transport::File(dir) => {
            return Err(format!(
                "smtp.url is {}: emails are written as files into {}, there is no SMTP server to connect to",
                cfg.smtp.url,
                dir.display()
            ));
        }
        Transport::Smtp {
            host, port, tls, ..
        } => (host.clone(), *port, *tls),
    };
    let mut p = Probe::default();
    let mode = match tls {
        Tls::Implicit => "implicit TLS (smtps://)",
        Tls::Required => "STARTTLS required",
        Tls::Opportunistic => "STARTTLS when offered (tls=opportunistic)",
        Tls::None => "no TLS (tls=none)",
    };
    p.facts.push(format!("smtp.url: {} ({mode})", cfg.smtp.url));
    let server = Server {
        host,
        port,
        tls,
        hello: ClientId::default(),
    };
    let conn = if tls == Tls::Implicit {
        server.connect_implicit(&mut p).await?
    } else {
        server.connect_plain(&mut p).await
    };
    let Some(mut conn) = conn else {
        return Ok(p);
    };
    server.check_auth(&mut p, cfg, &mut conn).await;
    if !conn.has_broken() {
        let _ = conn.quit().await;
    }
    Ok(p)
}

/// The server `smtp.url` names, and how embudo is told to talk to it.
struct Server {
    host: String,
    port: u16,
    tls: Tls,
    hello: ClientId,
}

impl Server {
    /// A connection that speaks TLS from the first byte (`smtps://`); `None` (with the
    /// problem noted) when there is none.
    async fn connect_implicit(&self, p: &mut Probe) -> Result<Option<AsyncSmtpConnection>, String> {
        let (host, port) = (&self.host, self.port);
        let params =
            TlsParameters::new(host.clone()).map_err(|e| format!("TLS for {host}: {e}"))?;
        let conn = AsyncSmtpConnection::connect_tokio1(
            (host.as_str(), port),
            Some(TIMEOUT),
            &self.hello,
            Some(params),
            None,
        )
        .await;
        match conn {
            Ok(c) => {
                p.facts.push(format!("connected to {host}:{port} with TLS"));
                p.facts
                    .push(format!("EHLO name: {}", c.server_info().name()));
                Ok(Some(c))
            }
            Err(e) => {
                p.problems.push((
                    format!("cannot open a TLS connection to {host}:{port}: {e}"),
                    Some("smtps:// speaks TLS from the first byte (usually port 465); for a server on 587 or 25 write smtp://host:port".into()),
                ));
                Ok(None)
            }
        }
    }

    /// A plain connection, upgraded with STARTTLS when offered and wanted; `None` (with
    /// the problem noted) when the server cannot be talked to.
    async fn connect_plain(&self, p: &mut Probe) -> Option<AsyncSmtpConnection> {
        let (host, port) = (&self.host, self.port);
        // The greeting and the EHLO reply as the server writes them.
        match plain_ehlo(host, port).await {
            Ok((greeting, ehlo)) => {
                p.facts.push(format!("connected to {host}:{port}"));
                p.facts.push(format!("greeting: {greeting}"));
                if let Some(name) = ehlo.first().and_then(|l| l.split_whitespace().next()) {
                    p.facts.push(format!("EHLO name: {name}"));
                }
                let ext: Vec<&str> = ehlo.iter().skip(1).map(String::as_str).collect();
                if !ext.is_empty() {
                    p.facts.push(format!("extensions: {}", ext.join(", ")));
                }
            }
            Err(e) => {
                p.problems.push((
                    format!("cannot talk to {host}:{port}: {e}"),
                    Some("is the server running, and are smtp.url's host and port right?".into()),
                ));
                return None;
            }
        }
        let mut conn = match self.open_plain().await {
            Ok(c) => c,
            Err(e) => {
                p.problems
                    .push((format!("cannot talk to {host}:{port}: {e}"), None));
                return None;
            }
        };
        let starttls = conn.can_starttls();
        p.facts.push(format!(
            "STARTTLS: {}",
            if starttls { "offered" } else { "not offered" }
        ));
        self.note_tls(p, starttls);
        if starttls && self.tls != Tls::None && !self.starttls(p, &mut conn).await {
            conn.abort().await;
            return None;
        }
        Some(conn)
    }

    /// A lettre connection over a fresh TCP connection, greeted and EHLO'd.
    async fn open_plain(&self) -> Result<AsyncSmtpConnection, String> {
        let (host, port) = (&self.host, self.port);
        let tcp = tokio::time::timeout(
            TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("connecting to {host}:{port}: timed out"))?
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(|e| e.to_string())
    }

    /// What the TLS mode means with a server that does (or does not) offer STARTTLS.
    fn note_tls(&self, p: &mut Probe, starttls: bool) {
        let (host, port) = (&self.host, self.port);
        match (self.tls, starttls) {
            (Tls::Required, false) => {
                p.problems.push((
                    format!(
                        "{host}:{port} does not offer STARTTLS, and STARTTLS is required by default (smtp.url has no ?tls=, or tls=required): embudo will send nothing through it"
                    ),
                    Some(STARTTLS_HELP.into()),
                ));
            }
            (Tls::Opportunistic, false) => p.notes.push(
                "the server offers no STARTTLS: with tls=opportunistic emails go unencrypted".into(),
            ),
            (Tls::None, true) => p.notes.push(
                "the server offers STARTTLS but smtp.url says tls=none: remove ?tls=none to encrypt".into(),
            ),
            (Tls::None, false) => p
                .notes
                .push("tls=none: emails go unencrypted (fine for a server on this machine)".into()),
            _ => {}
        }
    }

    /// Upgrades `conn` with STARTTLS; false when the handshake failed (the connection
    /// is then of no further use).
    async fn starttls(&self, p: &mut Probe, conn: &mut AsyncSmtpConnection) -> bool {
        let host = &self.host;
        let params = match TlsParameters::new(host.clone()) {
            Ok(params) => params,
            Err(e) => {
                p.problems.push((format!("TLS for {host}: {e}"), None));
                return true;
            }
        };
        match conn.starttls(params, &self.hello).await {
            Ok(()) => {
                p.facts.push(format!(
                    "STARTTLS: succeeded; EHLO again: {}",
                    conn.server_info().name()
                ));
                true
            }
            Err(e) => {
                p.problems.push((
                    format!("STARTTLS with {host} failed: {e}"),
                    Some("the server's certificate must be valid for the host in smtp.url".into()),
                ));
                false
            }
        }
    }

    /// AUTH, as far as lettre (embudo's SMTP client) knows it: PLAIN and LOGIN; tried
    /// with the configured credentials, if any.
    async fn check_auth(&self, p: &mut Probe, cfg: &Config, conn: &mut AsyncSmtpConnection) {
        let info = conn.server_info();
        let mechanisms: Vec<&str> = [
            (Mechanism::Plain, "PLAIN"),
            (Mechanism::Login, "LOGIN"),
            (Mechanism::Xoauth2, "XOAUTH2"),
        ]
        .iter()
        .filter(|(m, _)| info.supports_auth_mechanism(*m))
        .map(|(_, n)| *n)
        .collect();
        p.facts.push(format!(
            "AUTH: {}",
            if mechanisms.is_empty() {
                "none offered".to_string()
            } else {
                mechanisms.join(" ")
            }
        ));
        let Some(user) = &cfg.smtp.username else {
            p.notes.push(
                "no smtp.username: embudo sends without logging in (the server must accept that)"
                    .into(),
            );
            return;
        };
        if !mechanisms.contains(&"PLAIN") && !mechanisms.contains(&"LOGIN") {
            p.problems.push((
                format!(
                    "smtp.username is set but the server offers no AUTH PLAIN or LOGIN{}",
                    if self.tls == Tls::None {
                        " (many servers offer AUTH only after STARTTLS)"
                    } else {
                        ""
                    }
                ),
                Some("remove smtp.username if the server takes mail without a login".into()),
            ));
            return;
        }
        let pass = match cfg.smtp_password() {
            Ok(pass) => pass,
            Err(e) => return p.problems.push((e, None)),
        };
        let c = Credentials::new(user.clone(), pass.unwrap_or_default());
        match conn.auth(&[Mechanism::Plain, Mechanism::Login], &c).await {
            Ok(_) => p.facts.push(format!("AUTH as {user}: accepted")),
            Err(e) => p.problems.push((
                format!("AUTH as {user} refused: {e}"),
                Some("check smtp.username and the password in smtp.password_env".into()),
            )),
        }
    }
}

/// Greeting and EHLO reply lines (without their codes) of a plain connection; QUIT.
async fn plain_ehlo(host: &str, port: u16) -> Result<(String, Vec<String>), String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let (r, mut w) = tcp.into_split();
        let mut r = BufReader::new(r);
        let greeting = reply(&mut r).await?;
        if !greeting.0.starts_with('2') {
            return Err(format!("the server greets with {}", greeting.1.join(" ")));
        }
        w.write_all(b"EHLO embudo.check\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let ehlo = reply(&mut r).await?;
        if !ehlo.0.starts_with('2') {
            return Err(format!("EHLO answered {} {}", ehlo.0, ehlo.1.join(" ")));
        }
        let _ = w.write_all(b"QUIT\r\n").await;
        let _ = reply(&mut r).await;
        Ok((format!("{} {}", greeting.0, greeting.1.join(" ")), ehlo.1))
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| "no answer within 20s".to_string())?
}

/// One SMTP reply: its code and its lines' texts.
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<(String, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("the server closed the connection".into());
        }
        let line = line.trim_end();
        if line.len() < 3 {
            return Err(format!("not an SMTP reply: {line:?}"));
        }
        let code = line[..3].to_string();
        lines.push(line.get(4..).unwrap_or("").to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines));
        }
    }
}
