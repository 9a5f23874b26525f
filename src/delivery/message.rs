//! Turning a rendered template into a MIME message with the headers a marketing email
//! must carry.

use crate::domain::Lead;
use crate::templates::Rendered;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

/// A Message-ID unique to one outbox row: kept across retries of that row.
pub fn new_message_id(outbox_id: i64, from: &Mailbox) -> String {
    let nonce: u64 = rand::random();
    format!("<{outbox_id}.{nonce:016x}@{}>", from.email.domain())
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
pub fn build(lead: &Lead, r: &Rendered, h: &Headers<'_>) -> Result<Message, String> {
    let to_addr: lettre::Address = lead
        .email
        .as_str()
        .parse()
        .map_err(|e| format!("recipient {}: {e}", lead.email))?;
    let to = Mailbox::new(lead.name.clone().filter(|n| !n.trim().is_empty()), to_addr);
    let mut b = Message::builder()
        .from(h.from.clone())
        .to(to)
        .subject(r.subject.clone())
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
