//! The way out: lettre's pooled async SMTP transport, or its file transport.

use crate::funnel::config::{Config, Tls, Transport};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls as LTls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How a send failed: the outbox decides from this whether to retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// A connection error, a timeout or a 4xx reply: try again later.
    #[error("temporary: {0}")]
    Temporary(String),
    /// The server could not be reached at all: try again later, and do not try the
    /// rest of the batch now (it would only fail the same way).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A 5xx reply. `code` is the SMTP reply code when the server gave one.
    #[error("permanent ({}): {message}", code.map(|c| c.to_string()).unwrap_or_else(|| "no code".into()))]
    Permanent { code: Option<u16>, message: String },
    /// 550/551/553 or an enhanced 5.1.x status: the address does not exist.
    #[error("hard bounce ({}): {message}", code.map(|c| c.to_string()).unwrap_or_else(|| "no code".into()))]
    HardBounce { code: Option<u16>, message: String },
}

#[derive(Clone)]
pub enum Mailer {
    File(AsyncFileTransport<Tokio1Executor>),
    /// `smtps://` (implicit TLS): lettre's pooled transport.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `smtp://`: our own TCP_NODELAY connections (see `direct.rs`).
    Direct(super::direct::DirectSmtp),
    /// Builds every message and hands it to nobody: `simulate`'s way out, so a dry run
    /// exercises the same rendering and checks as a real one.
    Dry,
}

impl Mailer {
    /// Builds the transport `smtp.url` names; a file folder is created if missing.
    pub fn from_config(cfg: &Config) -> Result<Mailer, String> {
        match &cfg.smtp.transport {
            Transport::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create mail folder {}: {e}", dir.display()))?;
                Ok(Mailer::File(AsyncFileTransport::<Tokio1Executor>::new(dir)))
            }
            Transport::Smtp {
                host,
                port,
                tls,
                plain_auth,
            } if *tls != Tls::Implicit => {
                let credentials = match &cfg.smtp.username {
                    Some(user) => Some(Credentials::new(
                        user.clone(),
                        cfg.smtp_password()?.unwrap_or_default(),
                    )),
                    None => None,
                };
                Ok(Mailer::Direct(super::direct::DirectSmtp::new(
                    host,
                    *port,
                    *tls,
                    credentials,
                    *plain_auth,
                )))
            }
            Transport::Smtp {
                host, port, tls, ..
            } => {
                let tls_params =
                    || TlsParameters::new(host.clone()).map_err(|e| format!("TLS for {host}: {e}"));
                let builder = match tls {
                    Tls::Implicit => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                            .tls(LTls::Wrapper(tls_params()?))
                    }
                    Tls::Required => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                            .tls(LTls::Required(tls_params()?))
                    }
                    Tls::Opportunistic => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                            .tls(LTls::Opportunistic(tls_params()?))
                    }
                    Tls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    }
                };
                let mut builder = builder
                    .port(*port)
                    .timeout(Some(Duration::from_secs(30)))
                    .pool_config(
                        PoolConfig::new()
                            .max_size(4)
                            .idle_timeout(Duration::from_secs(60)),
                    );
                if let Some(user) = &cfg.smtp.username {
                    let pass = cfg.smtp_password()?.unwrap_or_default();
                    builder = builder.credentials(Credentials::new(user.clone(), pass));
                }
                Ok(Mailer::Smtp(builder.build()))
            }
        }
    }

    /// Whether sends leave the machine in real time (and so are paced by the rate).
    pub fn is_real(&self) -> bool {
        !matches!(self, Mailer::Dry)
    }

    pub async fn send(&self, msg: Message) -> Result<(), SendError> {
        match self {
            Mailer::Dry => Ok(()),
            Mailer::File(t) => t
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Temporary(format!("writing the mail file: {e}"))),
            Mailer::Smtp(t) => t.send(msg).await.map(|_| ()).map_err(classify),
            Mailer::Direct(d) => d.send(msg).await,
        }
    }
}

pub(super) fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(u16::from);
    if e.is_permanent() {
        let message = e.to_string();
        if is_hard_bounce(code, &message) {
            SendError::HardBounce { code, message }
        } else {
            SendError::Permanent { code, message }
        }
    } else {
        SendError::Temporary(e.to_string())
    }
}

/// The contract's hard bounce: reply 550, 551 or 553, or an enhanced status 5.1.x
/// (bad destination mailbox or system) anywhere in the reply.
pub fn is_hard_bounce(code: Option<u16>, message: &str) -> bool {
    if matches!(code, Some(550 | 551 | 553)) {
        return true;
    }
    let b = message.as_bytes();
    (0..b.len().saturating_sub(4)).any(|i| {
        (i == 0 || !b[i - 1].is_ascii_digit())
            && &b[i..i + 4] == b"5.1."
            && b[i + 4].is_ascii_digit()
    })
}

#[cfg(test)]
mod tests {
    use super::is_hard_bounce;

    #[test]
    fn hard_bounces_are_550_551_553_or_an_enhanced_5_1_status() {
        assert!(is_hard_bounce(Some(550), "mailbox unavailable"));
        assert!(is_hard_bounce(Some(553), ""));
        assert!(is_hard_bounce(
            Some(554),
            "5.1.1 <x@y.z>: Recipient address rejected"
        ));
        assert!(!is_hard_bounce(Some(554), "5.7.1 message refused"));
        assert!(!is_hard_bounce(Some(552), "5.2.2 mailbox full"));
        assert!(!is_hard_bounce(Some(554), "15.1.2 not a status"));
    }
}
