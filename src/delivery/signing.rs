//! Signed tokens for links in emails (unsubscribe now; tracking later).
//!
//! A token carries its payload and an HMAC-SHA256 tag, so verifying one needs the key
//! and nothing from the database.

use crate::domain::EmailAddress;
use crate::funnel::config::Config;
use crate::store::{Store, StoreError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of the HMAC kept in a token: 128 bits.
const TAG_LEN: usize = 16;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    /// The key from `http.signing_key_env`, else one generated on first start and kept
    /// in the database (with a warning: links break if the database is replaced).
    pub async fn from_config(cfg: &Config, store: &Store) -> Result<Signer, StoreError> {
        if let Ok(k) = std::env::var(&cfg.http.signing_key_env)
            && !k.is_empty()
        {
            return Ok(Signer::new(k.as_bytes()));
        }
        let fresh: [u8; 32] = rand::random();
        let fresh = B64.encode(fresh);
        let key = store.setting_or_insert("signing_key", &fresh).await?;
        if key == fresh {
            tracing::warn!(
                env = %cfg.http.signing_key_env,
                "no signing key in the environment: generated one and stored it in the database; set {} to keep links valid across databases",
                cfg.http.signing_key_env
            );
        }
        Ok(Signer::new(key.as_bytes()))
    }

    fn tag(&self, purpose: &str, payload: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes()[..TAG_LEN].to_vec()
    }

    /// The Message-ID part that makes an outbox row's id unique to this key: the same
    /// for every attempt of the row (so a retry repeats its Message-ID and receivers can
    /// tell a duplicate) without a write before the send to remember it.
    pub fn message_nonce(&self, outbox_id: i64) -> String {
        self.tag("message-id", &outbox_id.to_string())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A token for `payload`, valid only for `purpose`.
    pub fn sign(&self, purpose: &str, payload: &str) -> String {
        format!(
            "{}.{}",
            B64.encode(payload),
            B64.encode(self.tag(purpose, payload))
        )
    }

    /// The payload of a token made by [`Signer::sign`] for `purpose`, if it is genuine.
    pub fn verify(&self, purpose: &str, token: &str) -> Option<String> {
        let (p, t) = token.split_once('.')?;
        let payload = String::from_utf8(B64.decode(p).ok()?).ok()?;
        let tag = B64.decode(t).ok()?;
        // The whole tag or nothing: a shortened one would be guessed in a few hundred
        // tries.
        if tag.len() != TAG_LEN {
            return None;
        }
        // Compared in constant time: how long a mismatch takes says nothing about how
        // many leading bytes of a forged tag were right.
        let genuine: bool = self.tag(purpose, &payload).ct_eq(&tag).into();
        genuine.then_some(payload)
    }

    /// The unsubscribe link of a lead. The token carries the lead's id and a short
    /// digest of its address: an id reused after `forget` does not match the old
    /// link's digest, so an old email can never unsubscribe someone else.
    pub fn unsubscribe_url(&self, public_url: &str, lead: i64, email: &EmailAddress) -> String {
        format!(
            "{}/unsubscribe/{}",
            public_url.trim_end_matches('/'),
            self.sign("unsubscribe", &unsubscribe_payload(lead, email))
        )
    }

    /// The (lead id, address digest) of a genuine unsubscribe token; the caller acts
    /// only if that lead's address still has that digest.
    pub fn verify_unsubscribe(&self, token: &str) -> Option<(i64, String)> {
        let payload = self.verify("unsubscribe", token)?;
        let (id, digest) = payload.split_once(':')?;
        Some((id.parse().ok()?, digest.to_string()))
    }
}

/// `id:digest`, the digest being the first 16 hex digits of the address's SHA-256.
pub fn unsubscribe_payload(lead: i64, email: &EmailAddress) -> String {
    format!("{lead}:{}", &email.digest()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_key_and_purpose() {
        let s = Signer::new(b"secret");
        let t = s.sign("unsubscribe", "42");
        assert_eq!(s.verify("unsubscribe", &t).as_deref(), Some("42"));
        assert_eq!(s.verify("click", &t), None);
        assert_eq!(Signer::new(b"other").verify("unsubscribe", &t), None);
        let forged = format!("{}.{}", B64.encode("43"), t.split_once('.').unwrap().1);
        assert_eq!(s.verify("unsubscribe", &forged), None);
        // A shortened tag is refused at every length, down to one byte.
        let (payload, tag) = t.split_once('.').unwrap();
        let bytes = B64.decode(tag).unwrap();
        for n in 1..bytes.len() {
            let short = format!("{payload}.{}", B64.encode(&bytes[..n]));
            assert_eq!(s.verify("unsubscribe", &short), None, "{n} bytes");
        }
        let ana = EmailAddress::parse("ana@example.com").unwrap();
        let url = s.unsubscribe_url("https://t.example/e/", 42, &ana);
        let token = url
            .strip_prefix("https://t.example/e/unsubscribe/")
            .unwrap();
        let (id, digest) = s.verify_unsubscribe(token).unwrap();
        assert_eq!(id, 42);
        assert!(ana.digest().starts_with(&digest));
        let bob = EmailAddress::parse("bob@example.com").unwrap();
        assert!(
            !bob.digest().starts_with(&digest),
            "a reused id does not match"
        );
    }
}
