//! An email rendered for one lead, before it has a Message-ID: the sender's and
//! `preview`'s, built by the same code so a preview shows what would leave.

use super::message;
use super::signing::Signer;
use crate::funnel::Funnel;
use crate::funnel::templates::RenderContext;
use chrono::{DateTime, Utc};

/// An email rendered for one lead, before it has a Message-ID: what the sender sends
/// and what `preview` shows, built by the same code.
pub struct Draft {
    pub template: String,
    pub rendered: crate::funnel::templates::Rendered,
    pub unsubscribe_url: String,
}

impl Draft {
    pub fn render(
        funnel: &Funnel,
        signer: &Signer,
        lead: &crate::domain::Lead,
        template: &str,
        campaign: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Draft, crate::funnel::templates::TemplateError> {
        let unsubscribe_url =
            signer.unsubscribe_url(&funnel.config.http.public_url, lead.id.0, &lead.email);
        let ctx = RenderContext {
            unsubscribe_url: unsubscribe_url.clone(),
            now,
            campaign,
        };
        let mut rendered = funnel.templates.render(template, lead, &ctx)?;
        // Marketing email counts opens and clicks; receipts are left alone.
        if !rendered.transactional {
            rendered.html = super::tracking::track(
                &rendered.html,
                signer,
                &funnel.config.http.public_url,
                &super::signing::unsubscribe_payload(lead.id.0, &lead.email),
                template,
                &unsubscribe_url,
            );
        }
        Ok(Draft {
            template: template.to_string(),
            rendered,
            unsubscribe_url,
        })
    }

    /// The MIME message with every header a marketing email must carry.
    pub fn message(
        &self,
        funnel: &Funnel,
        lead: &crate::domain::Lead,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<lettre::Message, String> {
        let cfg = &funnel.config;
        let headers = message::Headers {
            from: &cfg.smtp.from,
            message_id,
            unsubscribe_url: &self.unsubscribe_url,
            unsubscribe_mailto: cfg.http.unsubscribe_mailto.as_deref(),
            template: &self.template,
        };
        message::build(lead, &self.rendered, &headers, now)
    }
}
