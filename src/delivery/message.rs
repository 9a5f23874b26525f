//! Turning a rendered template into a MIME message with the headers a marketing email
//! must carry.

use crate::domain::{Lead, one_line};
use crate::funnel::templates::Rendered;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

/// A Message-ID for an email that is no outbox row's (a preview, a test send).
pub fn new_message_id(outbox_id: i64, from: &Mailbox) -> String {
    let nonce: u64 = rand::random();
    format!("<{outbox_id}.{nonce:016x}@{}>", from.email.domain())
}

/// The Message-ID of an outbox row: derived from the row's id with the link-signing
/// key, so every attempt of the row carries the same one (unique across databases with
/// different keys) and nothing is written before the send.
pub fn row_message_id(outbox_id: i64, signer: &super::signing::Signer, from: &Mailbox) -> String {
    format!(
        "<{outbox_id}.{}@{}>",
        signer.message_nonce(outbox_id),
        from.email.domain()
    )
}

pub struct Headers<'a> {
    pub from: &'a Mailbox,
    pub message_id: &'a str,
    pub unsubscribe_url: &'a str,
    pub unsubscribe_mailto: Option<&'a str>,
    pub template: &'a str,
}

/// Builds the email; marketing email gets `List-Unsubscribe` and one-click
/// `List-Unsubscribe-Post` (RFC 8058), receipts do not.
pub fn build(
    lead: &Lead,
    r: &Rendered,
    h: &Headers<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Message, String> {
    let to_addr: lettre::Address = lead
        .email
        .as_str()
        .parse()
        .map_err(|e| format!("recipient {}: {e}", lead.email))?;
    let name = lead.name.as_deref().map(one_line).filter(|n| !n.is_empty());
    let to = Mailbox::new(name, to_addr);
    let mut b = Message::builder()
        .from(h.from.clone())
        .to(to)
        .subject(one_line(&r.subject))
        .date(now.into())
        .message_id(Some(h.message_id.to_string()))
        .raw_header(raw("X-Embudo-Template", h.template.to_string())?);
    if !r.transactional {
        let mut value = format!("<{}>", h.unsubscribe_url);
        if let Some(m) = h.unsubscribe_mailto {
            value.push_str(&format!(", <mailto:{m}?subject=unsubscribe>"));
        }
        b = b
            .raw_header(raw("List-Unsubscribe", value)?)
            .raw_header(raw(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            )?);
    }
    b.multipart(MultiPart::alternative_plain_html(
        r.text.clone(),
        r.html.clone(),
    ))
    .map_err(|e| format!("building the message: {e}"))
}

fn raw(name: &str, value: String) -> Result<HeaderValue, String> {
    let n =
        HeaderName::new_from_ascii(name.to_string()).map_err(|e| format!("header {name}: {e}"))?;
    Ok(HeaderValue::new(n, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, LeadId, StageId};

    #[test]
    fn a_line_break_in_a_name_or_subject_cannot_inject_a_header() {
        let now: chrono::DateTime<chrono::Utc> = "2026-03-02T10:00:00Z".parse().unwrap();
        let lead = Lead {
            id: LeadId(1),
            email: EmailAddress::parse("eve@example.com").unwrap(),
            name: Some("Eve\r\nBcc: evil@example.com".into()),
            stage: StageId::parse("interest").unwrap(),
            tags: Default::default(),
            attrs: Default::default(),
            locale: None,
            timezone: None,
            created_at: now,
            stage_entered_at: now,
            unsubscribed_at: None,
        };
        let r = Rendered {
            subject: "Hola\nBcc: evil@example.com".into(),
            html: "<p>x</p>".into(),
            text: "x".into(),
            transactional: false,
        };
        let from: Mailbox = "Shop <shop@example.com>".parse().unwrap();
        let h = Headers {
            from: &from,
            message_id: "<1.x@example.com>",
            unsubscribe_url: "https://x.example/u/t",
            unsubscribe_mailto: None,
            template: "hi",
        };
        let raw = String::from_utf8(build(&lead, &r, &h, now).unwrap().formatted()).unwrap();
        assert!(!raw.lines().any(|l| l.starts_with("Bcc:")), "{raw}");
        assert!(
            raw.contains("Date: Mon, 02 Mar 2026 10:00:00 +0000"),
            "the Date header follows the command's clock:\n{raw}"
        );
    }
}
