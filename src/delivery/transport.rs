//! The way out: lettre's pooled async SMTP transport, or its file transport.

use crate::funnel::config::{Config, Tls, Transport};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls as LTls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

use super::outcome::{SendError, classify};

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
                            .max_size(cfg.smtp.connections as u32)
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
