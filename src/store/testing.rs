//! Stores for unit tests: every backend this machine can offer, so a test of the
//! store interface runs against each. SQLite in memory always; PostgreSQL when
//! `EMBUDO_TEST_POSTGRES` names a server (`postgres://user@host:port`, as the test
//! command sets it), in a new database of its own.

use super::Store;

/// The server the test command started, if any.
pub fn postgres_server() -> Option<String> {
    std::env::var("EMBUDO_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A new, empty, migrated database on the test PostgreSQL server, if there is one.
pub async fn postgres() -> Option<Store> {
    let server = postgres_server()?;
    let url = new_postgres_database(&server).await;
    Some(Store::open_and_migrate(&url).await.unwrap())
}

/// Creates a database with a fresh name on `server`; returns its URL.
pub async fn new_postgres_database(server: &str) -> String {
    let name = format!("t_{:016x}", rand::random::<u64>());
    super::recreate_database(server, &name)
        .await
        .unwrap_or_else(|e| panic!("the test PostgreSQL server {server}: {e}"))
}

/// SQLite in memory, and PostgreSQL when the test command started one: a test of the
/// interface loops over these.
pub async fn stores() -> Vec<Store> {
    let mut out = vec![Store::open_and_migrate("sqlite::memory:").await.unwrap()];
    if let Some(pg) = postgres().await {
        out.push(pg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PostgreSQL run of the test command (EMBUDO_TEST_BACKEND=postgres) must test
    /// PostgreSQL, not quietly SQLite alone: its stores are both backends, each new.
    #[tokio::test]
    async fn the_stores_are_every_backend_the_test_command_offers() {
        let postgres_run = std::env::var("EMBUDO_TEST_BACKEND").as_deref() == Ok("postgres");
        assert!(
            !postgres_run || postgres_server().is_some(),
            "EMBUDO_TEST_BACKEND=postgres without EMBUDO_TEST_POSTGRES"
        );
        let engines: Vec<&str> = stores().await.iter().map(Store::engine).collect();
        let expected = if postgres_server().is_some() {
            vec!["sqlite", "postgres"]
        } else {
            vec!["sqlite"]
        };
        assert_eq!(engines, expected);
    }
}
