//! The PostgreSQL backend: a pool of connections to one server database, its
//! migrations (`migrations/postgres/`, the same tables and columns as SQLite's), and
//! the SQL of each concern of the [`Store`](crate::store::Store) interface, one file
//! per concern.
//!
//! **Why two kinds of write transaction.** SQLite has one writer at a time, and the
//! SQLite backend's read-then-write operations rely on it (`BEGIN IMMEDIATE`).
//! PostgreSQL lets writers run side by side, which is what several daemons on one
//! database need, but a read-then-write that was safe under one writer can race under
//! many. So an operation either takes [`PgStore::begin_write`], which holds the
//! database's write lock (a transaction-scoped advisory lock) and so keeps SQLite's
//! semantics exactly, or takes [`PgStore::begin`] and is written for concurrency
//! (row locks, `FOR UPDATE SKIP LOCKED`, `ON CONFLICT`), saying in a comment why it
//! cannot race.

mod campaigns;
mod consent;
pub(super) mod copy;
mod ingest;
mod leads;
mod leases;
mod operator;
mod outbox;
mod passes;
mod report;
mod settings;
mod timeline;

mod migrations;

use super::error::Class;
use super::{Result, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A PostgreSQL database; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub(super) struct PgStore {
    pool: PgPool,
}

/// A transaction on the pool: dropped uncommitted, it rolls back.
type Tx = Transaction<'static, Postgres>;

/// The advisory lock key `begin_write` takes: one writer at a time, as on SQLite.
const WRITE_LOCK: i64 = 0x656d_6275_646f; // "embudo"

/// Milliseconds since the epoch, the stored form of an instant.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of a stored millisecond count.
fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`). Does not
    /// migrate. A remote server without an `sslmode` is required to speak TLS.
    pub(super) async fn open(url: &str) -> Result<PgStore> {
        let open_err = |source| StoreError::Open {
            url: redact_url(url),
            source,
        };
        let mut opts = PgConnectOptions::from_str(url).map_err(open_err)?;
        let explicit_ssl = url::Url::parse(url)
            .map(|u| u.query_pairs().any(|(k, _)| k == "sslmode"))
            .unwrap_or(false);
        let local = url::Url::parse(url).is_ok_and(|u| postgres_is_local(&u));
        if !explicit_ssl && !local {
            opts = opts.ssl_mode(PgSslMode::Require);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Some(Duration::from_secs(600)))
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(PgStore { pool })
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction that holds the database's write lock until it ends: for
    /// read-then-write operations, which then see no other writer, as on SQLite.
    async fn begin_write(&self) -> Result<Tx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Begins a plain transaction, for operations written for concurrent writers.
    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a PostgreSQL URL's server is this machine: no host (a Unix socket),
/// `localhost`, a loopback address, or a `host=` parameter naming a socket folder.
pub fn postgres_is_local(url: &url::Url) -> bool {
    if url
        .query_pairs()
        .any(|(k, v)| k == "host" && v.starts_with('/'))
    {
        return true;
    }
    match url.host() {
        None => true,
        // A postgres:// URL is not a "special" URL: its host comes back as a name,
        // even when it is an address.
        Some(url::Host::Domain(d)) => {
            let d = d.trim_start_matches('[').trim_end_matches(']');
            d.is_empty()
                || d == "localhost"
                || d.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        }
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
    }
}

/// A database URL fit for an error message or a log: its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The class of a PostgreSQL error, by its SQLSTATE (never its message): a full disk,
/// a read-only server or transaction, a lock or serialization conflict, the server or
/// the connection failing, or the statement's own fault.
pub(super) fn class_of(db: &(dyn sqlx::error::DatabaseError + 'static)) -> Class {
    let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() else {
        return Class::Sql;
    };
    class_of_sqlstate(pg.code())
}

fn class_of_sqlstate(code: &str) -> Class {
    match code {
        "53100" => Class::Full,
        "25006" => Class::ReadOnly,
        "40001" | "40P01" | "55P03" | "57014" | "53300" => Class::Busy,
        c if c.starts_with("08") || c.starts_with("57P") || c.starts_with("58") => Class::Io,
        c if c.starts_with("XX") || c.starts_with("53") => Class::Io,
        _ => Class::Sql,
    }
}

/// Creates the database `name` on the server at `server` (`postgres://user@host:port`),
/// dropping a database of that name first, with whatever is still connected to it;
/// returns its URL. For throwaway databases: the test stores and the bench.
pub async fn recreate_database(server: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    let server = server.trim_end_matches('/');
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    let _ = admin.close().await;
    Ok(format!("{server}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        for (code, class) in [
            ("53100", Class::Full),
            ("25006", Class::ReadOnly),
            ("40001", Class::Busy),
            ("40P01", Class::Busy),
            ("55P03", Class::Busy),
            ("08006", Class::Io),
            ("57P01", Class::Io),
            ("58030", Class::Io),
            ("23505", Class::Sql),
            ("42601", Class::Sql),
        ] {
            assert_eq!(class_of_sqlstate(code), class, "{code}");
        }
    }

    #[test]
    fn loopback_servers_are_local() {
        for (u, local) in [
            ("postgres://u@127.0.0.1:5432/db", true),
            ("postgres://u@localhost/db", true),
            ("postgres://u@[::1]/db", true),
            ("postgres:///db?host=/run/postgresql", true),
            ("postgres://u@db.example/db", false),
            ("postgres://u@10.0.0.5/db", false),
        ] {
            assert_eq!(
                postgres_is_local(&url::Url::parse(u).unwrap()),
                local,
                "{u}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@db.example:5432/shop"),
            "postgres://u:***@db.example:5432/shop"
        );
        assert_eq!(redact_url("postgres://db/shop"), "postgres://db/shop");
    }
}
