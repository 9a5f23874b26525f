//! `embudo explain LEAD [--at T]`: each rule's decision for one lead and the sending
//! policy's verdict on each email, computed by the code the daemon runs and written
//! nowhere. For "why did (or didn't) she get that email?".

use crate::app::{App, AppError};
use crate::delivery::Fate;
use crate::domain::{Lead, LeadId};
use crate::engine::pass;
use crate::funnel::Funnel;
use crate::rules::{Evaluation, RuleError};
use crate::store::{Claimed, LeadChanges, LoadedLead};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;
use std::sync::Arc;

pub async fn explain(app: &App, who: &str, at: DateTime<Utc>) -> Result<String, AppError> {
    let funnel = app.funnel();
    let Some(loaded) = app.lead(who, at).await? else {
        return Err(AppError::Usage(format!(
            "no lead `{who}`; name a lead by its email or id"
        )));
    };
    let id = loaded.lead.id;
    let mut out = String::new();
    describe_lead(&mut out, &funnel, &loaded, at);
    let ev = evaluate(&funnel, loaded, at).await;
    describe_rules(&mut out, &funnel, &ev, at);
    let _ = writeln!(
        out,
        "\nemails, and what the sender would do at {}:",
        rfc(at)
    );
    describe_emails(&mut out, app, &funnel, id, &ev, at).await?;
    if app.store.paused().await?.0 {
        let _ = writeln!(
            out,
            "  (sending is paused: nothing goes until `embudo resume`)"
        );
    }
    let _ = writeln!(
        out,
        "\nnothing was written: `embudo tick` or the daemon does it"
    );
    Ok(out)
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// "none" for an empty list, else its items joined.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Who the lead is now: stage, zone, locale, tags, attributes, history.
fn describe_lead(out: &mut String, funnel: &Funnel, loaded: &LoadedLead, at: DateTime<Utc>) {
    let lead = &loaded.lead;
    let _ = writeln!(
        out,
        "lead {} {}{}: stage `{}` since {}, zone {}, locale {}",
        lead.id,
        lead.email,
        lead.name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        lead.stage,
        rfc(lead.stage_entered_at),
        lead.timezone
            .map(|z| z.to_string())
            .unwrap_or_else(|| format!("{} (default)", funnel.config.default_timezone())),
        lead.locale
            .as_deref()
            .unwrap_or(&funnel.config.defaults.locale),
    );
    let tags: Vec<String> = lead.tags.iter().cloned().collect();
    let attrs: Vec<String> = lead.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(out, "  tags: {}", list_or_none(&tags));
    let _ = writeln!(out, "  attrs: {}", list_or_none(&attrs));
    let _ = writeln!(
        out,
        "  {} event(s) and {} email(s) asked for as of {}{}",
        loaded.events.len(),
        loaded.sends.len(),
        rfc(at),
        if lead.unsubscribed_at.is_some() {
            "; unsubscribed"
        } else {
            ""
        }
    );
}

/// The rules, exactly as a pass at `at` would run them (off the async workers, a
/// crash caught). An evaluation that crashed changes nothing and shows its error.
async fn evaluate(funnel: &Arc<Funnel>, loaded: LoadedLead, at: DateTime<Utc>) -> Evaluation {
    let lead = loaded.lead.clone();
    let outcome = pass::evaluate_off_thread(funnel, vec![loaded], at)
        .await
        .into_iter()
        .next();
    match outcome {
        Some(pass::Outcome::Done(ev)) => *ev,
        Some(pass::Outcome::Failed(_, e)) => unchanged(lead, vec![e]),
        None => unchanged(lead, Vec::new()),
    }
}

/// An evaluation that changed nothing, with these errors.
fn unchanged(lead: Lead, errors: Vec<RuleError>) -> Evaluation {
    Evaluation {
        changes: LeadChanges {
            before: lead.clone(),
            after: lead,
            moves: Vec::new(),
            sends: Vec::new(),
        },
        actions: Vec::new(),
        errors,
        horizon: None,
    }
}

/// Each rule's decision, in file-name order, then the errors and the moves.
fn describe_rules(out: &mut String, funnel: &Funnel, ev: &Evaluation, at: DateTime<Utc>) {
    let _ = writeln!(out, "\nrules at {} (in file-name order):", rfc(at));
    let rules = &funnel.rules.rules;
    let width = rules.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in rules {
        let asked = ev
            .actions
            .iter()
            .filter(|(rule, _)| rule == &r.name)
            .map(|(_, a)| crate::tools::ruletest::describe(a));
        let errors = ev
            .errors
            .iter()
            .filter(|e| e.rule == r.name)
            .map(|e| format!("error, skipped: {e}"));
        let said: Vec<String> = asked.chain(errors).collect();
        let said = if said.is_empty() {
            "nothing to do".to_string()
        } else {
            said.join("; ")
        };
        let _ = writeln!(out, "  {:<width$}  {said}", r.name);
    }
    for e in ev
        .errors
        .iter()
        .filter(|e| !rules.iter().any(|r| r.name == e.rule))
    {
        let _ = writeln!(out, "  {e}");
    }
    for e in &funnel.rule_errors {
        let _ = writeln!(out, "  (left out, does not compile) {e}");
    }
    for (from, to, cause) in &ev.changes.moves {
        let _ = writeln!(out, "  → would move {from} → {to} ({cause})");
    }
}

/// The policy's verdict on each email: asked for now, or already waiting; decided by
/// the sender's own decision, with the lead where this pass would leave it.
async fn describe_emails(
    out: &mut String,
    app: &App,
    funnel: &Arc<Funnel>,
    id: LeadId,
    ev: &Evaluation,
    at: DateTime<Utc>,
) -> Result<(), AppError> {
    let mut rows: Vec<(String, Claimed)> = ev
        .changes
        .sends
        .iter()
        .map(|s| {
            let row = Claimed {
                id: 0,
                lead_id: id,
                template: s.template.clone(),
                key: s.key.clone(),
                stage: s.stage.clone(),
                campaign: None,
                requested_at: at,
                released_at: None,
                attempts: 0,
                message_id: None,
            };
            (format!("new, asked by rule {}", s.rule), row)
        })
        .collect();
    for row in app.store.pending_of(id).await? {
        rows.push((format!("waiting since {}", rfc(row.requested_at)), row));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  none: no rule asks for one and none is waiting");
    }
    // Waiting rows first, as the sender claims the oldest first.
    rows.sort_by_key(|(_, r)| (r.id == 0, r.id));
    let claimed: Vec<Claimed> = rows.iter().map(|(_, r)| r.clone()).collect();
    let after = &ev.changes.after.stage;
    let fates = app.deliverer.fates_now(funnel, &claimed, at, after).await?;
    for ((origin, row), fate) in rows.iter().zip(fates) {
        let key = if row.key.is_empty() {
            String::new()
        } else {
            format!(" [{}]", row.key)
        };
        let verdict = verdict(fate, row);
        let _ = writeln!(out, "  {}{key} ({origin}): {verdict}", row.template);
    }
    Ok(())
}

/// A row's fate in words.
fn verdict(fate: Fate, row: &Claimed) -> String {
    match fate {
        Fate::Go(_) => "goes now".to_string(),
        Fate::Paused => {
            let campaign = row.campaign.as_deref().unwrap_or_default();
            format!(
                "waits: campaign `{campaign}` is paused (`embudo resume --campaign {campaign}`)"
            )
        }
        Fate::Hold { reason, until } => format!("held until {}: {reason}", rfc(until)),
        Fate::End(ending, why) => format!("{}: {why}", ending.state().as_str()),
    }
}
