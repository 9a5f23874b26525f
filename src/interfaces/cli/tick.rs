//! `embudo tick [--now T]`: one step of the funnel (campaigns, rules, delivery) at T.

use super::args::{instant, rfc3339};
use super::open;
use crate::app::{AppError, Step, StepReport};
use crate::engine::campaigns::FireReport;
use chrono::{DateTime, Utc};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The clock for this pass (RFC 3339); default: the wall clock.
    #[arg(long, value_parser = instant)]
    now: Option<DateTime<Utc>>,
}

/// Exit 1 when the step ran but something needs a look: a rule skipped, an email
/// failed or bounced, a campaign that could not fire or left a lead out.
pub async fn run(config: &Path, args: Args) -> Result<i32, AppError> {
    let app = open::app_at(config, args.now).await?;
    let now = app.clock.now();
    let stop = tokio_util::sync::CancellationToken::new();
    crate::interfaces::daemon::cancel_on_signal(stop.clone());
    let report = app.step(Step::Everyone, now, &stop).await?;
    let campaign_trouble = print_campaigns(&report.campaigns);
    let StepReport {
        pass: Some(pass),
        delivery,
        ..
    } = report
    else {
        eprintln!("another tick is running; nothing done");
        return Ok(0);
    };
    let delivered = match &delivery {
        None => "delivery left to the running daemon".to_string(),
        Some(d) if d.paused => "sending is paused (embudo resume)".to_string(),
        Some(d) => format!(
            "sent {}, held {}, retry {}, failed {}, stale {}, expired {}, suppressed {}, bounced {}",
            d.sent, d.held, d.retried, d.failed, d.stale, d.expired, d.suppressed, d.bounced
        ),
    };
    println!(
        "tick at {}: {} leads evaluated, {} changed, {} stage move(s), {} email(s) queued; {delivered}",
        rfc3339(now),
        pass.leads,
        pass.changed,
        pass.moves,
        pass.queued,
    );
    for (e, n, lead) in pass.errors.values() {
        eprintln!("rule error: {e} ({n} lead(s), e.g. lead {lead})");
    }
    let d = delivery.unwrap_or_default();
    let clean = pass.errors.is_empty() && d.failed == 0 && d.bounced == 0 && !campaign_trouble;
    Ok(if clean { 0 } else { 1 })
}

/// One line per campaign firing; true when one could not fire or left a lead out.
fn print_campaigns(fired: &[FireReport]) -> bool {
    let mut trouble = false;
    for f in fired {
        match (&f.problem, &f.skipped) {
            (Some(p), _) => {
                trouble = true;
                println!("campaign {}: {p}", f.campaign)
            }
            (None, Some(why)) => println!("campaign {} [{}]: skipped, {why}", f.campaign, f.key),
            (None, None) => println!(
                "campaign {} [{}]: {} lead(s) in the audience, {} email(s) queued",
                f.campaign, f.key, f.audience, f.queued
            ),
        }
        for e in &f.errors {
            trouble = true;
            eprintln!("audience error (lead left out): {e}");
        }
    }
    trouble
}
