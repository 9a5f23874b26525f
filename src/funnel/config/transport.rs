//! Where things go: `smtp.url` as a [`Transport`], `database` as a SQLite URL. Both
//! are resolved against the config file's folder, so a funnel folder works from any
//! working directory.

use std::path::{Path, PathBuf};
use url::Url;

/// Where email goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// lettre's file transport: one `.eml` file a message in this folder.
    File(PathBuf),
    Smtp {
        host: String,
        port: u16,
        tls: Tls,
        /// `plain_auth=loopback`: the password may be sent over a connection without
        /// TLS; only accepted for a server on this machine.
        plain_auth: bool,
    },
}

/// Whether `host` names this machine (the only place a password may go in clear).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// STARTTLS, refusing a server that does not offer it.
    Required,
    /// STARTTLS when offered.
    Opportunistic,
    None,
}
/// How to let embudo talk to a server without STARTTLS (for errors and `check`).
pub const STARTTLS_HELP: &str = "smtp:// requires STARTTLS unless the URL says otherwise: for a local server without TLS write smtp://host:port?tls=none (never encrypt) or ?tls=opportunistic (encrypt when offered); `embudo check --smtp` shows what the server offers";

/// A `postgres://` URL, checked: it parses, and a password never travels to another
/// machine unencrypted. To a remote host with a password, `sslmode` must be `require`,
/// `verify-ca` or `verify-full`, or absent (the store then requires TLS); to this
/// machine (localhost, a loopback address or a Unix socket) anything goes.
fn postgres_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| {
        format!(
            "database `{}` is not a valid URL: {e}",
            crate::store::redact_url(url)
        )
    })?;
    let local = crate::store::postgres_is_local(&parsed);
    let sslmode = parsed
        .query_pairs()
        .find(|(k, _)| k == "sslmode")
        .map(|(_, v)| v.into_owned());
    let weak = matches!(sslmode.as_deref(), Some("disable" | "allow" | "prefer"));
    if !local && parsed.password().is_some() && weak {
        return Err(format!(
            "database `{}` would send its password to a remote server unencrypted (sslmode={}); use sslmode=require (or verify-full) or leave sslmode out",
            crate::store::redact_url(url),
            sslmode.unwrap_or_default()
        ));
    }
    Ok(url.to_string())
}

/// The `sqlite:` URL of `url` with a relative file made absolute from `root`.
/// Hand-read rather than by `url`: `sqlite:relative.db` and `sqlite://./x.db` are
/// not URLs a URL parser keeps as written.
pub fn resolve_database(url: &str, root: &Path) -> Result<String, String> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest == ":memory:" {
            return Ok(url.to_string());
        }
        let file = rest.trim_start_matches("//");
        let (file, query) = match file.split_once('?') {
            Some((f, q)) => (f, Some(q)),
            None => (file, None),
        };
        if file.is_empty() {
            return Err(format!("database `{url}` names no file"));
        }
        let p = Path::new(file);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        };
        let mut out = format!("sqlite://{}", full.display());
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Ok(out)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres_url(url)
    } else {
        Err(format!(
            "database `{url}` is neither sqlite:// nor postgres://"
        ))
    }
}

/// `file://DIR` (relative to `root`), `smtp://host[:port][?tls=…&plain_auth=loopback]`
/// or `smtps://host[:port]`. The folder of `file://` is read as written (`./outbox`
/// is relative, which no URL parser keeps); the SMTP forms go through `url`.
pub(super) fn parse_transport(url: &str, root: &Path) -> Result<Transport, String> {
    if let Some(rest) = url.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("smtp.url `file://` names no folder".into());
        }
        let p = Path::new(rest);
        return Ok(Transport::File(if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        }));
    }
    let implicit = match url.split_once("://").map(|(s, _)| s) {
        Some("smtps") => true,
        Some("smtp") => false,
        _ => return Err(format!("smtp.url `{url}` has an unknown scheme")),
    };
    let parsed = smtp_url(url)?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    if host.is_empty() {
        return Err(format!("smtp.url `{url}` names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "smtp.url `{url}` carries a user or password; write them as smtp.username and smtp.password_env"
        ));
    }
    if !matches!(parsed.path(), "" | "/") || parsed.fragment().is_some() {
        return Err(format!(
            "smtp.url `{url}` has more than a host, a port and parameters"
        ));
    }
    let (tls, plain_auth) = smtp_parameters(parsed.query(), implicit, &host)?;
    Ok(Transport::Smtp {
        port: parsed.port().unwrap_or(if implicit { 465 } else { 587 }),
        host,
        tls,
        plain_auth,
    })
}

/// Parses an `smtp://` or `smtps://` URL, with the port's own message when it is bad.
fn smtp_url(url: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|e| match e {
        url::ParseError::InvalidPort => {
            let authority = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
            let port = authority
                .rsplit_once(':')
                .map(|(_, p)| p)
                .unwrap_or_default();
            format!("smtp.url `{url}` has a bad port `{port}`")
        }
        url::ParseError::EmptyHost => format!("smtp.url `{url}` names no host"),
        other => format!("smtp.url `{url}` is not a URL: {other}"),
    })
}

/// The `?tls=…&plain_auth=loopback` of an SMTP URL: the TLS mode and whether the
/// password may go in clear. `tls` is for `smtp://` only (`smtps://` is TLS).
fn smtp_parameters(query: Option<&str>, implicit: bool, host: &str) -> Result<(Tls, bool), String> {
    let mut tls = if implicit {
        Tls::Implicit
    } else {
        Tls::Required
    };
    let mut plain_auth = false;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("tls", v)) if !implicit => {
                tls = match v {
                    "required" => Tls::Required,
                    "opportunistic" => Tls::Opportunistic,
                    "none" => Tls::None,
                    _ => {
                        return Err(format!(
                            "smtp.url: tls=`{v}` must be required, opportunistic or none"
                        ));
                    }
                }
            }
            Some(("plain_auth", "loopback")) if is_loopback(host) => plain_auth = true,
            Some(("plain_auth", "loopback")) => {
                return Err(format!(
                    "smtp.url: plain_auth=loopback is only for a server on this machine (127.0.0.1, ::1, localhost), not `{host}`: elsewhere the password would cross the network in clear"
                ));
            }
            _ => return Err(format!("smtp.url: unknown parameter `{pair}`")),
        }
    }
    Ok((tls, plain_auth))
}

/// Whether `http.public_url` is an `http://` or `https://` URL with a host and
/// nothing after the path: every link in every email starts with it, and a query or
/// fragment would end up in the middle of those links.
pub(super) fn is_public_url(s: &str) -> bool {
    let s = s.trim_end_matches('/');
    // What `url` would quietly mend (spaces, a third slash, an upper-case scheme) is
    // refused as written.
    let plain = (s.starts_with("http://") || s.starts_with("https://"))
        && !s.contains(":///")
        && !s.chars().any(|c| c.is_whitespace() || c == '?' || c == '#');
    plain
        && Url::parse(s)
            .is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()) && u.query().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(host: &str, port: u16, tls: Tls, plain_auth: bool) -> Transport {
        Transport::Smtp {
            host: host.into(),
            port,
            tls,
            plain_auth,
        }
    }

    #[test]
    fn smtp_urls_parse() {
        let r = Path::new("/r");
        let ok = |u: &str| parse_transport(u, r).unwrap();
        assert_eq!(
            ok("smtp://mail.example:2525?tls=none"),
            smtp("mail.example", 2525, Tls::None, false)
        );
        assert_eq!(
            ok("smtps://mail.example"),
            smtp("mail.example", 465, Tls::Implicit, false)
        );
        assert_eq!(
            ok("smtp://mail.example/"),
            smtp("mail.example", 587, Tls::Required, false)
        );
        assert_eq!(
            ok("smtp://127.0.0.1:25?tls=opportunistic&plain_auth=loopback"),
            smtp("127.0.0.1", 25, Tls::Opportunistic, true)
        );
        assert_eq!(
            ok("smtp://[::1]:25?tls=none&plain_auth=loopback"),
            smtp("[::1]", 25, Tls::None, true)
        );
        assert_eq!(
            ok("file://./outbox-mail"),
            Transport::File("/r/./outbox-mail".into())
        );
        assert_eq!(ok("file:///var/mail"), Transport::File("/var/mail".into()));
    }

    #[test]
    fn bad_smtp_urls_say_what_is_wrong() {
        let r = Path::new("/r");
        let err = |u: &str| parse_transport(u, r).unwrap_err();
        assert_eq!(err("ftp://x"), "smtp.url `ftp://x` has an unknown scheme");
        assert_eq!(
            err("smtp://h:99999"),
            "smtp.url `smtp://h:99999` has a bad port `99999`"
        );
        assert_eq!(
            err("smtp://h:port"),
            "smtp.url `smtp://h:port` has a bad port `port`"
        );
        assert_eq!(err("smtp://"), "smtp.url `smtp://` names no host");
        assert_eq!(err("file://"), "smtp.url `file://` names no folder");
        assert_eq!(
            err("smtp://h:25?tls=maybe"),
            "smtp.url: tls=`maybe` must be required, opportunistic or none"
        );
        assert_eq!(
            err("smtps://h?tls=none"),
            "smtp.url: unknown parameter `tls=none`"
        );
        assert!(
            err("smtp://mail.example.com:25?tls=none&plain_auth=loopback")
                .contains("only for a server on this machine")
        );
        assert!(err("smtp://u:p@h").contains("smtp.username"));
    }

    #[test]
    fn public_urls_are_http_with_a_host() {
        for ok in [
            "https://shop.example/embudo",
            "http://127.0.0.1:8080",
            "https://x.example/",
        ] {
            assert!(is_public_url(ok), "{ok}");
        }
        for bad in [
            "",
            "http://",
            "https:///x",
            "ftp://x",
            "https://x/a b",
            "https://x/?a=1",
            "https://x/#f",
            "HTTP://x",
            "shop.example",
        ] {
            assert!(!is_public_url(bad), "{bad}");
        }
    }

    #[test]
    fn sqlite_paths_are_made_absolute_from_the_folder() {
        let r = Path::new("/srv/shop");
        assert_eq!(
            resolve_database("sqlite://embudo.db", r).unwrap(),
            "sqlite:///srv/shop/embudo.db"
        );
        assert_eq!(
            resolve_database("sqlite:///tmp/b.db?mode=rwc", r).unwrap(),
            "sqlite:///tmp/b.db?mode=rwc"
        );
        assert_eq!(
            resolve_database("sqlite::memory:", r).unwrap(),
            "sqlite::memory:"
        );
        assert_eq!(
            resolve_database("postgres://u:p@localhost/shop?sslmode=disable", r).unwrap(),
            "postgres://u:p@localhost/shop?sslmode=disable"
        );
        assert!(resolve_database("postgres://u:p@db.example/shop", r).is_ok());
        let err =
            resolve_database("postgres://u:secret@db.example/shop?sslmode=prefer", r).unwrap_err();
        assert!(
            err.contains("unencrypted") && !err.contains("secret"),
            "{err}"
        );
        assert!(
            resolve_database("mysql://x", r)
                .unwrap_err()
                .contains("neither")
        );
    }
}
