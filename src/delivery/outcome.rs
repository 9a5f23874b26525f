//! How a send ended, in the terms the sender acts on: retry, give up, or suppress the
//! address. Both ways out (lettre's pooled transport and our direct connections) map
//! their errors through here, so a reply means the same thing whichever sent it.

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

/// The class of a lettre SMTP error: a 5xx reply is permanent (a hard bounce when it
/// names a missing mailbox), anything else is worth another try.
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
