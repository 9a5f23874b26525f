//! A parsed, normalised email address: the identity of a lead.
//!
//! Every email that enters embudo (CSV, CLI, HTTP) goes through [`EmailAddress::parse`],
//! so two spellings of one address (`Ana@Example.com `, `ana@example.com`) are one lead.

use std::fmt;

/// An email address that has been trimmed, lower-cased and checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// SHA-256 of the address, hex: how the suppression list keeps it, so a person
    /// erased with `forget` is still never mailed again.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Trims and lower-cases `raw`, then checks it is a deliverable-looking address.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() {
            return Err("empty email address".into());
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("`{s}` is not an email address: it has no `@`"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(format!("`{s}` is not an email address: bad local part"));
        }
        if domain.len() > 253
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!(
                "`{s}` is not an email address: bad domain `{domain}`"
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || local.contains('@') {
            return Err(format!("`{s}` is not an email address"));
        }
        // lettre's parser is the one that will address the message: agree with it.
        s.parse::<lettre::Address>()
            .map_err(|e| format!("`{s}` is not an email address: {e}"))?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let e = EmailAddress::parse("  Ana.Gomez@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ana.gomez@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@exa_mple.com",
            "ana@@example.com",
            "ana@.example.com",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
