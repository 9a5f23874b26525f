//! Named settings (the signing key), the operator's pause switches, and the write
//! probe of `/healthz`.

use super::Result;
use chrono::{DateTime, Utc};

operations! {
    /// A tiny write that changes nothing lasting: whether the database takes writes
    /// now (for `/healthz`). It writes a row and commits, so a full disk shows.
    fn probe_write(&self, now: DateTime<Utc>) -> Result<()>;

    /// The value stored under `key`, if any.
    fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Stores `value` under `key` unless a value is there already; returns the stored one.
    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;

    /// The operator's emergency stop: all sending (`None`) or one campaign's.
    fn set_paused(&self, campaign: Option<&str>, paused: bool) -> Result<()>;

    /// Whether all sending is paused, and the campaigns paused one by one.
    fn paused(&self) -> Result<(bool, Vec<String>)>;
}

#[cfg(test)]
mod tests {
    use crate::store::testing::stores;
    use chrono::{TimeZone, Utc};

    #[tokio::test]
    async fn settings_keep_their_first_value() {
        for store in stores().await {
            let e = store.engine();
            assert_eq!(store.setting("signing_key").await.unwrap(), None, "{e}");
            let first = store.setting_or_insert("signing_key", "k1").await.unwrap();
            assert_eq!(first, "k1", "{e}");
            let again = store.setting_or_insert("signing_key", "k2").await.unwrap();
            assert_eq!(again, "k1", "{e}");
            assert_eq!(store.setting("signing_key").await.unwrap().unwrap(), "k1");
        }
    }

    #[tokio::test]
    async fn pausing_and_unpausing() {
        for store in stores().await {
            let e = store.engine();
            assert_eq!(store.paused().await.unwrap(), (false, vec![]), "{e}");
            store.set_paused(Some("spring-sale"), true).await.unwrap();
            store.set_paused(None, true).await.unwrap();
            store.set_paused(Some("Black-Friday"), true).await.unwrap();
            store.set_paused(Some("black_friday"), true).await.unwrap();
            store.set_paused(None, true).await.unwrap();
            // Byte order, as SQLite sorts: upper case before lower, `-` before `_`.
            let all = ["Black-Friday", "black_friday", "spring-sale"].map(String::from);
            assert_eq!(store.paused().await.unwrap(), (true, all.to_vec()), "{e}");
            store.set_paused(None, false).await.unwrap();
            store.set_paused(Some("black_friday"), false).await.unwrap();
            store.set_paused(Some("never-paused"), false).await.unwrap();
            let left = vec!["Black-Friday".to_string(), "spring-sale".to_string()];
            assert_eq!(store.paused().await.unwrap(), (false, left), "{e}");
        }
    }

    #[tokio::test]
    async fn the_write_probe_commits_a_row() {
        let now = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        for store in stores().await {
            store.probe_write(now).await.unwrap();
            store.probe_write(now).await.unwrap();
            let v = store.setting("healthz_probe").await.unwrap();
            assert_eq!(v.as_deref(), Some("1700000000123"), "{}", store.engine());
        }
    }
}
