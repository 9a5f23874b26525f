//! `embudo explain LEAD [--at T]`: each rule's decision for one lead and the sending
//! policy's verdict on each email, computed by the code the daemon runs and written
//! nowhere. For "why did (or didn't) she get that email?".

use crate::app::{App, AppError};
use crate::delivery::Fate;
use crate::store::Claimed;
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;

pub async fn explain(app: &App, who: &str, at: DateTime<Utc>) -> Result<String, AppError> {
    let funnel = app.funnel();
    let Some(id) = app.store.find_lead_id(who).await? else {
        return Err(AppError::Usage(format!(
            "no lead `{who}`; name a lead by its email or id"
        )));
    };
    let Some(loaded) = app.store.load_lead(id, at).await? else {
        return Err(AppError::Usage(format!("no lead `{who}`")));
    };
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let lead = loaded.lead.clone();
    let mut out = String::new();
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
    let tags: Vec<&str> = lead.tags.iter().map(String::as_str).collect();
    let attrs: Vec<String> = lead.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "  tags: {}",
        if tags.is_empty() {
            "none".into()
        } else {
            tags.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  attrs: {}",
        if attrs.is_empty() {
            "none".into()
        } else {
            attrs.join(", ")
        }
    );
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

    // The rules, exactly as a pass at `at` would run them.
    let f = funnel.clone();
    let tz = f.config.default_timezone();
    let ev = tokio::task::spawn_blocking(move || f.rules.evaluate(loaded, at, tz))
        .await
        .expect("rule evaluation does not panic");
    let _ = writeln!(out, "\nrules at {} (in file-name order):", rfc(at));
    let width = funnel
        .rules
        .rules
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0);
    for r in &funnel.rules.rules {
        let asked: Vec<String> = ev
            .actions
            .iter()
            .filter(|(rule, _)| rule == &r.name)
            .map(|(_, a)| crate::tools::ruletest::describe(a))
            .collect();
        let errors: Vec<String> = ev
            .errors
            .iter()
            .filter(|e| e.rule == r.name)
            .map(|e| format!("error, skipped: {e}"))
            .collect();
        let said = match (asked.is_empty(), errors.is_empty()) {
            (true, true) => "nothing to do".to_string(),
            _ => asked
                .into_iter()
                .chain(errors)
                .collect::<Vec<_>>()
                .join("; "),
        };
        let _ = writeln!(out, "  {:<width$}  {said}", r.name);
    }
    for e in ev
        .errors
        .iter()
        .filter(|e| !funnel.rules.rules.iter().any(|r| r.name == e.rule))
    {
        let _ = writeln!(out, "  {e}");
    }
    for e in &funnel.rule_errors {
        let _ = writeln!(out, "  (left out, does not compile) {e}");
    }
    for (from, to, cause) in &ev.changes.moves {
        let _ = writeln!(out, "  → would move {from} → {to} ({cause})");
    }

    // The policy's verdict on each email: asked for now, or already waiting.
    let _ = writeln!(
        out,
        "\nemails, and what the sender would do at {}:",
        rfc(at)
    );
    let after = ev.changes.after.stage.clone();
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
    let fates = app
        .deliverer
        .fates_now(&funnel, &claimed, at, after.as_str())
        .await?;
    for ((origin, row), fate) in rows.iter().zip(fates) {
        let verdict = match fate {
            Fate::Go(_) => "goes now".to_string(),
            Fate::Hold { reason, until } => format!("held until {}: {reason}", rfc(until)),
            Fate::End(state, why) => format!("{}: {why}", state.as_str()),
        };
        let key = if row.key.is_empty() {
            String::new()
        } else {
            format!(" [{}]", row.key)
        };
        let _ = writeln!(out, "  {}{key} ({origin}): {verdict}", row.template);
    }
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
