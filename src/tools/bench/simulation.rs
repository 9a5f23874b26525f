//! `simulate` of the demo funnel, at a 1-hour step, with the leads' events falling
//! during the simulated time: the target is a year of 10,000 leads in a minute.

use super::measure::Stopwatch;
use super::setup::{self, Limits};
use super::{BenchError, Options, Row, SEED, Target, data, expect, shown, t0};
use crate::tools::simulate::{Options as SimOptions, simulate};
use chrono::TimeDelta;
use std::time::Duration;

/// Events a lead does during the simulation, on average.
const EVENTS_PER_LEAD: usize = 3;

pub async fn run(opts: &Options) -> Result<Vec<Row>, BenchError> {
    let dir = opts.work.join("simulate");
    let yaml = setup::funnel(&dir, "file://./outbox-mail", Limits::Demo)?;
    let (leads, events) = (dir.join("leads.csv"), dir.join("events.csv"));
    let n = opts.sim_leads;
    let span = TimeDelta::days(opts.sim_days);
    let io = |e| BenchError::io("write the simulation's CSV files", e);
    data::write_leads(&leads, n, t0(), SEED).map_err(io)?;
    data::write_events(&events, n * EVENTS_PER_LEAD, n, t0() + span, span, SEED + 2).map_err(io)?;
    let sim = SimOptions {
        from: t0(),
        to: t0() + span,
        step: Some(TimeDelta::hours(1)),
        leads: Some(leads),
        events: Some(events),
    };
    let watch = Stopwatch::start();
    let result = simulate(&yaml, &sim).await?;
    let cost = watch.stop();
    let s = format!("simulate {} days at a 1-hour step", opts.sim_days);
    let steps = opts.sim_days as usize * 24;
    expect(&s, result.leads == n && result.passes >= steps, || {
        format!(
            "{} leads and {} passes, not {n} and {steps}",
            result.leads, result.passes
        )
    })?;
    expect(
        &s,
        result.bad_rows.is_empty() && result.rule_errors.is_empty(),
        || {
            format!(
                "bad rows {:?}, rule errors {:?}",
                result.bad_rows, result.rule_errors
            )
        },
    )?;
    let target = if n >= 10_000 && opts.sim_days >= 365 {
        Target::Time(Duration::from_secs(60))
    } else {
        Target::None
    };
    let sent = result
        .emails
        .iter()
        .filter_map(|t| t.states.get("sent"))
        .sum::<i64>();
    let note = format!(
        "{} passes, {} event reactions, {sent} emails sent",
        result.passes, result.event_reactions
    );
    Ok(vec![shown(
        Row::new(s, n, "leads", cost).target(target).note(note),
    )])
}
