//! SMTP over `smtp://` with our own connections instead of lettre's pool.
//!
//! lettre 0.11's transport leaves Nagle's algorithm on, and each message then stalls
//! about 40 ms waiting for a delayed ACK: ~200 messages a second at best, and a long
//! window in which the server has the message but we have not yet read its 250 (so a
//! crash there makes a duplicate). Here every connection is a `TcpStream` with
//! `TCP_NODELAY`, handed to lettre's `AsyncSmtpConnection` (which still speaks the
//! protocol, STARTTLS and AUTH). Idle connections are kept for reuse, checked with a
//! NOOP when they have idled a while, and dropped when old.

use super::outcome::{SendError, classify};
use crate::funnel::config::Tls;
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// An idle connection older than this is closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(50);
/// An idle connection older than this is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct DirectSmtp {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    /// The password may go over a connection without TLS (a loopback server only).
    plain_auth: bool,
    hello: ClientId,
    idle: Arc<Mutex<Vec<(AsyncSmtpConnection, Instant)>>>,
}

impl DirectSmtp {
    pub fn new(
        host: &str,
        port: u16,
        tls: Tls,
        credentials: Option<Credentials>,
        plain_auth: bool,
    ) -> DirectSmtp {
        DirectSmtp {
            host: host.to_string(),
            port,
            tls,
            credentials,
            plain_auth,
            hello: ClientId::default(),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let where_ = format!("{}:{}", self.host, self.port);
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| SendError::Unreachable(format!("connecting to {where_}: timed out")))?
        .map_err(|e| SendError::Unreachable(format!("connecting to {where_}: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::Temporary(format!("TCP_NODELAY on {where_}: {e}")))?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(classify)?;
        let wants_tls = match self.tls {
            Tls::Required => {
                if !conn.can_starttls() {
                    conn.abort().await;
                    return Err(SendError::Temporary(format!(
                        "{where_} does not offer STARTTLS, and STARTTLS is required by default (smtp.url has no ?tls=, or tls=required); nothing was sent in plaintext. {}",
                        crate::funnel::config::STARTTLS_HELP
                    )));
                }
                true
            }
            Tls::Opportunistic => conn.can_starttls(),
            Tls::None | Tls::Implicit => false,
        };
        if wants_tls {
            let params = TlsParameters::new(self.host.clone())
                .map_err(|e| SendError::Temporary(format!("TLS for {}: {e}", self.host)))?;
            conn.starttls(params, &self.hello).await.map_err(classify)?;
        }
        if self.credentials.is_some() && !wants_tls && !self.plain_auth {
            conn.abort().await;
            return Err(SendError::Temporary(format!(
                "refusing to send the SMTP password to {where_} over a connection without TLS (the server offers no STARTTLS, or smtp.url says tls=none); nothing was sent. Use a server with TLS, or for a server on this machine add &plain_auth=loopback to smtp.url"
            )));
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(classify)?;
        }
        Ok(conn)
    }

    /// An idle connection that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let Some((mut conn, since)) = self.idle.lock().await.pop() else {
                return self.connect().await;
            };
            let idle = since.elapsed();
            if idle > MAX_IDLE || conn.has_broken() {
                conn.abort().await;
                continue;
            }
            if idle > CHECK_AFTER && !conn.test_connected().await {
                conn.abort().await;
                continue;
            }
            return Ok(conn);
        }
    }

    pub async fn send(&self, msg: Message) -> Result<(), SendError> {
        let envelope = msg.envelope().clone();
        let bytes = msg.formatted();
        let mut conn = self.checkout().await?;
        match tokio::time::timeout(SEND_TIMEOUT, conn.send(&envelope, &bytes)).await {
            Ok(Ok(_)) => {
                self.idle.lock().await.push((conn, Instant::now()));
                Ok(())
            }
            Ok(Err(e)) => {
                // lettre has already aborted a connection that failed mid-command.
                if !conn.has_broken() {
                    self.idle.lock().await.push((conn, Instant::now()));
                }
                Err(classify(e))
            }
            Err(_) => {
                conn.abort().await;
                Err(SendError::Temporary(format!(
                    "no reply from {}:{} within {}s",
                    self.host,
                    self.port,
                    SEND_TIMEOUT.as_secs()
                )))
            }
        }
    }
}
