//! The operator's controls: consent (`unsubscribe`, `forget`), the emergency stop
//! (`pause`, `resume`) and the outbox (`outbox list|retry|cancel`).

use crate::app::AppError;
use crate::domain::EmailAddress;
use crate::ingest::csv::BadRow;
use crate::store::{OutboxFilter, OutboxRow, OutboxState, Store, Suppression};
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::Path;

/// Unsubscribes one address; it need not be a lead yet (a list moved from another
/// tool). Returns whether a lead had that address.
pub async fn unsubscribe(
    store: &Store,
    email: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    Ok(store
        .suppress(email, Suppression::Unsubscribed, "unsubscribe", now)
        .await?
        .is_some())
}

/// Unsubscribes every address in the `email` column of a CSV (other columns are
/// ignored: exports from other tools carry many). Returns (done, bad rows).
pub async fn unsubscribe_file(
    store: &Store,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<(usize, Vec<BadRow>), AppError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read(path).map_err(|e| AppError::Usage(format!("cannot read {shown}: {e}")))?;
    // Spreadsheet exports in Spanish locales separate with `;`.
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = if first.iter().filter(|b| **b == b';').count()
        > first.iter().filter(|b| **b == b',').count()
    {
        b';'
    } else {
        b','
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_slice());
    let header = rdr
        .headers()
        .map_err(|e| AppError::Usage(format!("{shown}:1: {e}")))?
        .clone();
    // `email`, or what other tools call it: "Email Address" (Mailchimp), "E-mail"…
    let normal = |h: &str| {
        h.trim()
            .trim_start_matches('\u{feff}')
            .to_lowercase()
            .replace(['-', '_', ' '], "")
    };
    let col = header
        .iter()
        .position(|h| normal(h) == "email")
        .or_else(|| header.iter().position(|h| ["emailaddress", "correo", "correoelectronico", "correoelectrónico", "mail"].contains(&normal(h).as_str())))
        .ok_or_else(|| {
            let found: Vec<&str> = header.iter().collect();
            AppError::Usage(format!(
                "{shown}:1: no email column (found: {}); name the column with the addresses `email`",
                found.join(", ")
            ))
        })?;
    let (mut done, mut bad) = (0, Vec::new());
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                bad.push(BadRow {
                    line: e.position().map(|p| p.line()).unwrap_or(0),
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        match EmailAddress::parse(rec.get(col).unwrap_or("")) {
            Ok(email) => {
                unsubscribe(store, &email, now).await?;
                done += 1;
            }
            Err(message) => bad.push(BadRow { line, message }),
        }
    }
    Ok((done, bad))
}

/// The `outbox list` table.
pub fn outbox_table(rows: &[OutboxRow]) -> String {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut out = format!(
        "{:>6}  {:<28}  {:<18}  {:<10}  {:<20}  {:<20}  {:>3}  {}\n",
        "id", "lead", "template", "state", "requested", "next / ended", "try", "reason"
    );
    for r in rows {
        let template = if r.key.is_empty() {
            r.template.to_string()
        } else {
            format!("{} [{}]", r.template, r.key)
        };
        out.push_str(&format!(
            "{:>6}  {:<28}  {:<18}  {:<10}  {:<20}  {:<20}  {:>3}  {}\n",
            r.id,
            r.email,
            template,
            r.state,
            fmt(r.requested_at),
            r.at()
                .map(|t| if t.timestamp() == 0 {
                    "at once".to_string()
                } else {
                    fmt(t)
                })
                .unwrap_or_default(),
            r.attempts,
            r.reason.as_deref().unwrap_or_default()
        ));
    }
    out
}

/// Parses `--state` values.
pub fn states(names: &[String]) -> Result<Vec<OutboxState>, AppError> {
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(|n| {
            OutboxState::parse(n.trim()).ok_or_else(|| {
                let all: Vec<_> = OutboxState::ALL.iter().map(|s| s.as_str()).collect();
                AppError::Usage(format!(
                    "--state: no state `{n}`; the states are: {}",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

/// Resolves `--lead` to an id; a usage error if there is no such lead.
pub async fn filter(
    store: &Store,
    states: Vec<OutboxState>,
    template: Option<String>,
    lead: Option<&str>,
    campaign: Option<String>,
) -> Result<OutboxFilter, AppError> {
    let lead = match lead {
        None => None,
        Some(who) => Some(store.find_lead_id(who).await?.ok_or_else(|| {
            AppError::Usage(format!("no lead `{who}`; name a lead by its email or id"))
        })?),
    };
    Ok(OutboxFilter {
        states,
        template,
        lead,
        campaign,
    })
}
