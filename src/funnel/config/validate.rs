//! The checks across keys and of ranges, after each section has deserialised: a value
//! that fails one is reported at its key and replaced by its default, so the rest of
//! the folder can still be checked.

use crate::domain::StageId;
use crate::domain::time::format_duration;
use crate::funnel::config::parse::Problems;
use crate::funnel::config::schema::{
    CRON_FORMS, Campaign, CronExpr, Defaults, Http, Limits, RawSmtp, Reports, Schedule, Smtp,
    Stages, default_connections, default_database, default_expire, default_from, default_locale,
    default_public_url, default_rate, default_retry, default_retry_after, default_smtp_url,
    default_stages, default_tick,
};
use crate::funnel::config::transport::{is_public_url, parse_transport, resolve_database};
use crate::funnel::diagnostic::did_you_mean;
use crate::funnel::locale::check_locale;
use crate::funnel::yaml::{Step, keys};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use std::path::Path;

/// The most sends `smtp.connections` may put under way at once: more is a flood no
/// relay accepts from one client, and as many emails that a crash could repeat.
const MAX_CONNECTIONS: usize = 64;

/// The range of `limits.rate_per_second`: below, the pacing gap overflows any timer;
/// above, no SMTP server keeps up.
const MIN_RATE: f64 = 0.01;
const MAX_RATE: f64 = 10_000.0;

/// At least one stage, none twice, and `initial` one of them.
pub(super) fn stages(p: &mut Problems, funnel: &mut Stages) {
    if funnel.list.is_empty() {
        p.add(
            &keys(&["funnel", "stages"]),
            "funnel.stages is empty",
            Some("list the stages in funnel order, e.g. [interest, evaluation, customer]".into()),
        );
        funnel.list = default_stages();
    }
    let mut seen: Vec<StageId> = Vec::new();
    for (i, s) in funnel.list.iter().enumerate() {
        if seen.contains(s) {
            let mut at = keys(&["funnel", "stages"]);
            at.push(Step::Index(i));
            p.add(&at, format!("funnel.stages lists `{s}` twice"), None);
        } else {
            seen.push(s.clone());
        }
    }
    funnel.list = seen;
    if let Some(initial) = &funnel.initial
        && !funnel.list.contains(initial)
    {
        let list = funnel.stage_list();
        let hint = match did_you_mean(initial.as_str(), funnel.list.iter().map(|s| s.as_str())) {
            Some(d) => format!("{d} (use one of: {list})"),
            None => format!("use one of: {list}"),
        };
        p.add(
            &keys(&["funnel", "initial"]),
            format!("funnel.initial `{initial}` is not one of the stages"),
            Some(hint),
        );
        funnel.initial = None;
    }
}

/// The database URL: `EMBUDO_DATABASE_URL` when set, else `database`, resolved
/// against `root`.
pub(super) fn database(
    p: &mut Problems,
    written: &str,
    db_override: Option<&str>,
    root: &Path,
) -> String {
    let fallback = || resolve_database(&default_database(), root).expect("valid");
    match db_override {
        Some(url) => resolve_database(url, root).unwrap_or_else(|m| {
            p.list.push(crate::funnel::config::ConfigError::Invalid {
                path: "EMBUDO_DATABASE_URL".into(),
                line: 1,
                col: 1,
                message: m,
                hint: Some("set EMBUDO_DATABASE_URL to sqlite://FILE, or unset it to use `database` from embudo.yaml".into()),
            });
            fallback()
        }),
        None => resolve_database(written, root).unwrap_or_else(|m| {
            p.add(
                &keys(&["database"]),
                m,
                Some("write sqlite://FILE (relative to this file's folder)".into()),
            );
            fallback()
        }),
    }
}

/// `smtp:` with its URL and sender parsed.
pub(super) fn smtp(p: &mut Problems, raw: RawSmtp, root: &Path) -> Smtp {
    let transport = parse_transport(&raw.url, root).unwrap_or_else(|m| {
        p.add(
            &keys(&["smtp", "url"]),
            m,
            Some("write file://DIR, smtp://host:port[?tls=required|opportunistic|none] or smtps://host:port".into()),
        );
        parse_transport(&default_smtp_url(), root).expect("valid")
    });
    let from: lettre::message::Mailbox = raw.from.parse().unwrap_or_else(|e| {
        p.add(
            &keys(&["smtp", "from"]),
            format!("smtp.from `{}` is not a mailbox: {e}", raw.from),
            Some("write \"Name <address@domain>\"".into()),
        );
        default_from().parse().expect("valid")
    });
    let mut connections = raw.connections;
    if !(1..=MAX_CONNECTIONS).contains(&connections) {
        p.add(
            &keys(&["smtp", "connections"]),
            format!(
                "smtp.connections {connections} is out of range: between 1 and {MAX_CONNECTIONS}"
            ),
            Some("write how many connections the SMTP server accepts at once, e.g. 4".into()),
        );
        connections = default_connections();
    }
    Smtp {
        url: raw.url,
        transport,
        from,
        username: raw.username,
        password_env: raw.password_env,
        connections,
    }
}

/// A tick that never fires again is a mistake, not a pause.
pub(super) fn schedule(p: &mut Problems, schedule: &mut Schedule, now: DateTime<Utc>) {
    if let Some(m) = never_fires(&schedule.tick, schedule.timezone.0, now) {
        p.add(
            &keys(&["schedule", "tick"]),
            format!("schedule.tick {m}"),
            Some(CRON_FORMS.into()),
        );
        schedule.tick = default_tick();
    }
}

/// Every limit within the range that makes sense.
pub(super) fn limits(p: &mut Problems, limits: &mut Limits) {
    if !(MIN_RATE..=MAX_RATE).contains(&limits.rate_per_second) {
        p.add(
            &keys(&["limits", "rate_per_second"]),
            format!(
                "limits.rate_per_second {} is out of range: between {MIN_RATE} (one email every 100 seconds) and {MAX_RATE}",
                limits.rate_per_second
            ),
            Some("write the emails a second the SMTP server takes, e.g. 20".into()),
        );
        limits.rate_per_second = default_rate();
    }
    spans(p, limits);
    per_lead(p, limits);
    if limits.daily_capacity == Some(0) {
        p.add(
            &keys(&["limits", "daily_capacity"]),
            "limits.daily_capacity of 0 would hold every marketing email forever",
            Some("give the number of emails a day the business can serve, or remove the key for no limit".into()),
        );
        limits.daily_capacity = None;
    }
    if let Some(q) = &limits.quiet_hours
        && q.from.0 == q.to.0
    {
        p.add(
            &keys(&["limits", "quiet_hours"]),
            "limits.quiet_hours starts and ends at the same time, so it is never quiet",
            Some(
                "write the night, e.g. { from: \"21:00\", to: \"08:00\" }, or remove the key"
                    .into(),
            ),
        );
        limits.quiet_hours = None;
    }
}

/// `expire_after`, `retry_for` and `retry_after` within their ranges.
fn spans(p: &mut Problems, limits: &mut Limits) {
    for (key, span, min, max) in [
        (
            "expire_after",
            &mut limits.expire_after,
            TimeDelta::minutes(1),
            TimeDelta::days(365),
        ),
        (
            "retry_for",
            &mut limits.retry_for,
            TimeDelta::zero(),
            TimeDelta::days(365),
        ),
        (
            "retry_after",
            &mut limits.retry_after,
            TimeDelta::seconds(1),
            TimeDelta::days(1),
        ),
    ] {
        if span.0 < min || span.0 > max {
            p.add(
                &keys(&["limits", key]),
                format!(
                    "limits.{key} {} is out of range: between {} and {}",
                    format_duration(span.0),
                    format_duration(min),
                    format_duration(max)
                ),
                Some("write a duration such as 90s, 15m, 36h, 7d".into()),
            );
            *span = match key {
                "expire_after" => default_expire(),
                "retry_for" => default_retry(),
                _ => default_retry_after(),
            };
        }
    }
}

/// `per_lead`: at least one email in a positive window, within sane bounds.
fn per_lead(p: &mut Problems, limits: &mut Limits) {
    let Some(pl) = &limits.per_lead else {
        return;
    };
    let problem = if pl.max == 0 || pl.within.0 <= TimeDelta::zero() {
        Some("limits.per_lead needs max ≥ 1 and a positive `within`")
    } else if pl.max > 10_000 || pl.within.0 > TimeDelta::days(365) {
        Some("limits.per_lead is out of range: max at most 10000, within at most 365d")
    } else {
        None
    };
    if let Some(message) = problem {
        p.add(
            &keys(&["limits", "per_lead"]),
            message,
            Some("e.g. per_lead: { max: 3, within: 7d }".into()),
        );
        limits.per_lead = None;
    }
}

/// The public URL starts every link in every email.
pub(super) fn http(p: &mut Problems, http: &mut Http) {
    if !is_public_url(&http.public_url) {
        p.add(
            &keys(&["http", "public_url"]),
            format!(
                "http.public_url `{}` is not an http(s) URL",
                http.public_url
            ),
            Some(
                "write the address leads reach embudo at, e.g. https://shop.example/embudo".into(),
            ),
        );
        http.public_url = default_public_url();
    }
}

pub(super) fn defaults(p: &mut Problems, defaults: &mut Defaults) {
    if let Err(m) = check_locale(&defaults.locale) {
        p.add(
            &keys(&["defaults", "locale"]),
            m,
            Some("write a language code such as es, en or pt-BR".into()),
        );
        defaults.locale = default_locale();
    }
}

/// The named conversions: a bare end resolved to a stage when the funnel has one by
/// that name; a `stage:` end naming no stage, a repeated name, or a conversion from a
/// thing to itself is reported and left out.
pub(super) fn reports(p: &mut Problems, reports: &mut Reports, stages: &Stages) {
    if reports.moved_within.0 <= chrono::TimeDelta::zero() {
        p.add(
            &keys(&["reports", "moved_within"]),
            "reports.moved_within must be longer than zero",
            Some("write a span such as 14d".into()),
        );
        reports.moved_within = Reports::default().moved_within;
    }
    let mut kept: Vec<super::ConversionSpec> = Vec::new();
    for (i, mut c) in std::mem::take(&mut reports.conversions)
        .into_iter()
        .enumerate()
    {
        if conversion(p, i, &mut c, &kept, stages) {
            kept.push(c);
        }
    }
    reports.conversions = kept;
}

/// Checks conversion `i` beside the ones kept so far and resolves its bare ends; whether
/// it is sound.
fn conversion(
    p: &mut Problems,
    i: usize,
    c: &mut super::ConversionSpec,
    kept: &[super::ConversionSpec],
    stages: &Stages,
) -> bool {
    use crate::store::Occurrence;
    let is_stage = |s: &str| stages.list.iter().any(|x| x.as_str() == s);
    let at = |field: &str| {
        vec![
            Step::Key("reports".into()),
            Step::Key("conversions".into()),
            Step::Index(i),
            Step::Key(field.into()),
        ]
    };
    let mut ok = true;
    for (field, end) in [("from", &mut c.from), ("to", &mut c.to)] {
        match &end.0 {
            Occurrence::Event(name) if is_stage(name) => {
                end.0 = Occurrence::Stage(name.clone());
            }
            Occurrence::Stage(name) if !is_stage(name) => {
                let list: Vec<&str> = stages.list.iter().map(|s| s.as_str()).collect();
                p.add(
                    &at(field),
                    format!("reports.conversions[{i}].{field}: no stage `{name}` in the funnel"),
                    Some(format!("the stages are: {}", list.join(", "))),
                );
                ok = false;
            }
            _ => {}
        }
    }
    if c.name.trim().is_empty() {
        p.add(
            &at("name"),
            format!("reports.conversions[{i}] needs a name"),
            None,
        );
        ok = false;
    } else if kept.iter().any(|k| k.name == c.name) {
        p.add(
            &at("name"),
            format!("two conversions are named `{}`", c.name),
            Some("give each conversion a name of its own".into()),
        );
        ok = false;
    }
    if c.from == c.to {
        p.add(
            &at("to"),
            format!("conversion `{}` goes from `{}` to itself", c.name, c.from),
            None,
        );
        ok = false;
    }
    if c.within.0 <= chrono::TimeDelta::zero() {
        p.add(
            &at("within"),
            format!("conversion `{}`: within must be longer than zero", c.name),
            None,
        );
        ok = false;
    }
    ok
}

/// The campaigns whose shape is right; templates and audiences are checked against
/// the folder later.
pub(super) fn campaigns(
    p: &mut Problems,
    campaigns: Vec<(usize, Campaign)>,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Vec<Campaign> {
    let mut kept: Vec<Campaign> = Vec::new();
    for (i, c) in campaigns {
        let before = p.list.len();
        campaign(p, i, &c, &kept, schedule, now);
        if p.list.len() == before {
            kept.push(c);
        }
    }
    kept
}

/// The problems of campaign `c`, item `i` of the list, beside the ones kept so far.
fn campaign(
    p: &mut Problems,
    i: usize,
    c: &Campaign,
    kept: &[Campaign],
    schedule: &Schedule,
    now: DateTime<Utc>,
) {
    let at = |key: &str| {
        let mut v = vec![Step::Key("campaigns".into()), Step::Index(i)];
        if !key.is_empty() {
            v.push(Step::Key(key.into()));
        }
        v
    };
    if kept.iter().any(|o| o.id == c.id) {
        p.add(
            &at("id"),
            format!("campaign id `{}` is used twice", c.id),
            Some("give each campaign its own id".into()),
        );
    }
    if c.audience.is_some() == c.audience_file.is_some() {
        p.add(
            &at(""),
            format!(
                "campaign `{}` needs exactly one of `audience` or `audience_file`",
                c.id
            ),
            Some("write audience: 'lead.stage == \"customer\"' or audience_file: rules/audiences/NAME.rhai".into()),
        );
    }
    let tz = c.schedule.timezone.unwrap_or(schedule.timezone).0;
    if let Some(m) = never_fires(&c.schedule.cron, tz, now) {
        let mut place = at("schedule");
        place.push(Step::Key("cron".into()));
        p.add(
            &place,
            format!("campaign `{}`: cron {m}", c.id),
            Some(CRON_FORMS.into()),
        );
    }
    if let Some(key) = &c.key
        && let Err((m, h)) = check_key(key)
    {
        p.add(
            &at("key"),
            format!("campaign `{}`: {m}", c.id),
            Some(h.into()),
        );
    }
    if let (Some(s), Some(e)) = (c.start, c.end)
        && e < s
    {
        p.add(
            &at("end"),
            format!("campaign `{}` ends before it starts", c.id),
            Some("make `end` on or after `start`".into()),
        );
    }
}

/// None when `cron` fires again after `now` in `tz`; else why it does not.
fn never_fires(cron: &CronExpr, tz: Tz, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    match cron
        .cron
        .find_next_occurrence(&now.with_timezone(&tz), false)
    {
        Ok(_) => None,
        Err(_) => Some(format!(
            "`{}` never fires again: it has no time after {}",
            cron.source,
            now.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
        )),
    }
}

/// A campaign key's placeholders: an error message and a hint when one is wrong.
fn check_key(key: &str) -> Result<(), (String, &'static str)> {
    if key.trim().is_empty() {
        return Err((
            "an empty key would make it fire once, ever".into(),
            "leave `key` out for the default \"{date}\", or write e.g. \"{year}\"",
        ));
    }
    let mut rest = key;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err((
                format!("key `{key}` has an unclosed `{{`"),
                "close it: the placeholders are {year} {month} {day} {date}",
            ));
        };
        let name = &rest[open + 1..open + close];
        if !["year", "month", "day", "date"].contains(&name) {
            return Err((
                format!("key `{key}` has an unknown placeholder `{{{name}}}`"),
                "the placeholders are {year} {month} {day} {date}",
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cron_that_has_fired_for_the_last_time_is_caught_at_a_given_instant() {
        let in_2027 = CronExpr::parse("0 0 9 1 8 * 2027").unwrap();
        let before = "2026-06-01T00:00:00Z".parse().unwrap();
        let after = "2028-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(never_fires(&in_2027, Tz::UTC, before), None);
        let m = never_fires(&in_2027, Tz::UTC, after).unwrap();
        assert!(
            m.contains("never fires again") && m.contains("2028-01-01 00:00 UTC"),
            "{m}"
        );
    }

    #[test]
    fn campaign_keys_use_known_placeholders() {
        assert!(check_key("{year}-{month}").is_ok());
        assert!(check_key(" ").unwrap_err().0.contains("fire once"));
        assert!(check_key("{year").unwrap_err().0.contains("unclosed"));
        assert!(
            check_key("{week}")
                .unwrap_err()
                .0
                .contains("unknown placeholder `{week}`")
        );
    }
}
