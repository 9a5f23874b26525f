//! `embudo preview`: one template rendered for one lead (or the sample lead) by the
//! same code the sender uses, shown as text or written as an .eml file, or sent as a
//! test to an address of your choosing (no outbox row, no dedupe, nothing recorded).

use crate::app::{App, AppError};
use crate::delivery::signing::Signer;
use crate::delivery::{Draft, Mailer, loose_message_id};
use crate::domain::{EmailAddress, Lead};
use crate::funnel::Funnel;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;

/// Whom the preview is for.
pub enum Who {
    /// A lead in the database, by email or id.
    Lead(String),
    /// The folder's sample lead (templates/_sample.yaml); needs no database.
    Sample,
}

pub struct Preview {
    pub lead: Lead,
    pub draft: Draft,
    pub message: lettre::Message,
    funnel: Arc<Funnel>,
}

pub async fn preview(
    config_path: &Path,
    template: &str,
    who: Who,
    now: DateTime<Utc>,
) -> Result<Preview, AppError> {
    match who {
        Who::Sample => {
            let funnel = Arc::new(Funnel::load(config_path, now)?);
            let lead =
                crate::funnel::check::sample_lead(&funnel.config, now).map_err(AppError::Usage)?;
            // Without a database there is no stored key: the link is only for show.
            let key = std::env::var(&funnel.config.http.signing_key_env)
                .unwrap_or_else(|_| "preview".into());
            render(funnel, &Signer::new(key.as_bytes()), lead, template, now)
        }
        Who::Lead(who) => {
            let app = App::builder(config_path)
                .clock(crate::clock::Clock::Held(now))
                .build()
                .await?;
            preview_lead(&app, template, &who, now).await
        }
    }
}

/// The email `template` would be for the lead `who` (email or id) of this app, signed
/// with its key.
pub async fn preview_lead(
    app: &App,
    template: &str,
    who: &str,
    now: DateTime<Utc>,
) -> Result<Preview, AppError> {
    let Some(loaded) = app.lead(who, now).await? else {
        return Err(AppError::Usage(format!(
            "no lead `{who}`; name a lead by its email or id, or use --sample"
        )));
    };
    render(
        app.funnel(),
        app.deliverer.signer(),
        loaded.lead,
        template,
        now,
    )
}

fn render(
    funnel: Arc<Funnel>,
    signer: &Signer,
    lead: Lead,
    template: &str,
    now: DateTime<Utc>,
) -> Result<Preview, AppError> {
    if !funnel.templates.contains(template) {
        let known: Vec<String> = funnel.templates.ids().into_iter().collect();
        let known = known.join(", ");
        return Err(AppError::Usage(format!(
            "no template `{template}`; the folder has: {known}"
        )));
    }
    let draft = Draft::render(&funnel, signer, &lead, template, None, now)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    let message = draft
        .message(&funnel, &lead, &loose_message_id(&funnel), now)
        .map_err(AppError::Usage)?;
    Ok(Preview {
        lead,
        draft,
        message,
        funnel,
    })
}

impl Preview {
    /// Subject, headers that matter, the text part and the HTML part.
    pub fn show(&self) -> String {
        let r = &self.draft.rendered;
        let cfg = &self.funnel.config;
        let mut out = String::new();
        out.push_str(&format!("From: {}\n", cfg.smtp.from));
        match self.lead.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => out.push_str(&format!("To: {name} <{}>\n", self.lead.email)),
            None => out.push_str(&format!("To: {}\n", self.lead.email)),
        }
        out.push_str(&format!("Subject: {}\n", r.subject));
        out.push_str(&format!(
            "Template: {} ({}, locale {})\n",
            self.draft.template,
            if r.transactional {
                "transactional: no unsubscribe headers, exempt from caps and quiet hours"
            } else {
                "marketing"
            },
            self.lead.locale.as_deref().unwrap_or(&cfg.defaults.locale)
        ));
        if !r.transactional {
            out.push_str(&format!("Unsubscribe: {}\n", self.draft.unsubscribe_url));
        }
        out.push_str("\n--- text ---\n");
        out.push_str(r.text.trim_end());
        out.push_str("\n\n--- html ---\n");
        out.push_str(r.html.trim_end());
        out.push('\n');
        out
    }

    /// The whole MIME message, as an .eml file holds it.
    pub fn eml(&self) -> Vec<u8> {
        self.message.formatted()
    }

    /// Sends the preview to `to` instead of the lead (a test send), through the
    /// configured transport: the subject starts with `[test]`, the unsubscribe link is
    /// the test address's own (never the lead's), and pause and suppression hold as for
    /// any email.
    pub async fn send_to(
        &self,
        store: &crate::store::Store,
        to: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        if store.paused().await?.0 {
            return Err(AppError::Usage(
                "sending is paused (embudo pause); resume first (embudo resume)".into(),
            ));
        }
        let transactional = self.draft.rendered.transactional;
        let suppression = store.suppression(to).await?;
        if let Some(why) = crate::delivery::fate::blocked(suppression, false, transactional) {
            return Err(AppError::Usage(format!(
                "{to} is on the suppression list ({why}); a test send does not get around it"
            )));
        }
        let mut lead = self.lead.clone();
        lead.email = to.clone();
        let signer = Signer::new(b"a test send's link unsubscribes nobody");
        let mut draft = Draft::render(
            &self.funnel,
            &signer,
            &lead,
            &self.draft.template,
            None,
            now,
        )
        .map_err(|e| AppError::Usage(e.to_string()))?;
        draft.rendered.subject = format!("[test] {}", draft.rendered.subject);
        let msg = draft
            .message(&self.funnel, &lead, &loose_message_id(&self.funnel), now)
            .map_err(AppError::Usage)?;
        let mailer = Mailer::from_config(&self.funnel.config).map_err(AppError::Mailer)?;
        mailer
            .send(msg)
            .await
            .map_err(|e| AppError::Send(format!("test send to {to}: {e}")))
    }
}
