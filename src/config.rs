//! `embudo.yaml` → a typed, validated [`Config`].
//!
//! This module is also the only place that touches serde_yaml ([`parse_yaml`]): front
//! matter, sample leads and rule tests go through it, so replacing the deprecated crate
//! with a successor is a one-file change.

use crate::domain::{StageId, time::parse_duration};
use chrono::{NaiveDate, NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// A YAML problem with the position it was found at (1-based line and column).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Deserialises YAML, keeping the position of the first error.
pub fn parse_yaml<T: DeserializeOwned>(src: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(src).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let mut message = e.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        YamlError { line, col, message }
    })
}

/// A configuration error, pointing at the file and the line to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read {path}: {source}; run `embudo init DIR` to create a funnel folder, or pass --config FILE"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}{}", hint.as_deref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
        hint: Option<String>,
    },
}

/// The whole of `embudo.yaml`, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file read.
    pub path: PathBuf,
    /// Its folder: relative paths in the file (database, mail folder, rules/) start here.
    pub root: PathBuf,
    pub funnel: Funnel,
    /// The database URL after `EMBUDO_DATABASE_URL` and path resolution.
    pub database: String,
    pub schedule: Schedule,
    pub smtp: Smtp,
    pub limits: Limits,
    pub defaults: Defaults,
    pub http: Http,
    pub campaigns: Vec<Campaign>,
    /// Sample data `embudo run` imports into a database that has never had leads.
    pub seed: Seed,
}

/// Sample leads and events for a demo: imported once by `embudo run` into a database
/// that has never had a lead, so a fresh clone shows the funnel at work. Paths are
/// resolved against the config file's folder.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub leads: Option<PathBuf>,
    #[serde(default)]
    pub events: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Funnel {
    #[serde(default = "default_stages")]
    pub stages: Vec<StageId>,
    /// The stage of a lead imported without one; the first stage when omitted.
    #[serde(default)]
    pub initial: Option<StageId>,
}

impl Funnel {
    pub fn initial(&self) -> &StageId {
        self.initial.as_ref().unwrap_or(&self.stages[0])
    }
    pub fn has(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s.as_str() == stage)
    }
    /// Parses `stage` as one of this funnel's stages.
    pub fn stage(&self, stage: &str) -> Result<StageId, String> {
        if self.has(stage) {
            StageId::parse(stage)
        } else {
            Err(format!(
                "unknown stage `{stage}`; the funnel's stages are: {}",
                self.stage_list()
            ))
        }
    }
    pub fn stage_list(&self) -> String {
        self.stages
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for Funnel {
    fn default() -> Self {
        Funnel {
            stages: default_stages(),
            initial: None,
        }
    }
}

fn default_stages() -> Vec<StageId> {
    ["interest", "evaluation", "customer"]
        .iter()
        .map(|s| StageId::parse(s).expect("valid"))
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default = "default_tick")]
    pub tick: CronExpr,
    #[serde(default = "default_tz")]
    pub timezone: TimeZone,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            tick: default_tick(),
            timezone: default_tz(),
        }
    }
}

fn default_tick() -> CronExpr {
    CronExpr::parse("0 */5 * * * *").expect("valid")
}
fn default_tz() -> TimeZone {
    TimeZone(Tz::UTC)
}

/// A cron expression: 6 fields with seconds first (`0 */5 * * * *`); 5 fields are
/// accepted as minute-first.
#[derive(Clone)]
pub struct CronExpr {
    pub source: String,
    pub cron: croner::Cron,
}

impl CronExpr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build();
        let cron = parser.parse(s).map_err(|e| {
            format!("`{s}` is not a cron expression ({e}); write 6 fields, seconds first, e.g. \"0 */5 * * * *\"")
        })?;
        Ok(CronExpr {
            source: s.to_string(),
            cron,
        })
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.source)
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CronExpr::parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// An IANA time zone (`Europe/Madrid`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeZone(pub Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_tz(&s).map(TimeZone).map_err(D::Error::custom)
    }
}

/// Parses an IANA zone name with a hint on failure.
pub fn parse_tz(s: &str) -> Result<Tz, String> {
    s.trim().parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone `{s}`; use an IANA name such as Europe/Madrid or America/Mexico_City"
        )
    })
}

/// A duration written `90s`, `15m`, `36h`, `7d`, `2w`, `1d12h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span(pub TimeDelta);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Span).map_err(D::Error::custom)
    }
}

/// A local clock time `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockTime(pub NaiveTime);

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map(ClockTime)
            .map_err(|_| {
                D::Error::custom(format!(
                    "`{s}` is not a time of day; write HH:MM, e.g. \"21:00\""
                ))
            })
    }
}

/// Where email goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// lettre's file transport: one `.eml` file a message in this folder.
    File(PathBuf),
    Smtp {
        host: String,
        port: u16,
        tls: Tls,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// STARTTLS, refusing a server that does not offer it.
    Required,
    /// STARTTLS when offered.
    Opportunistic,
    None,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub url: String,
    pub transport: Transport,
    pub from: lettre::message::Mailbox,
    pub username: Option<String>,
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    #[serde(default = "default_smtp_url")]
    url: String,
    #[serde(default = "default_from")]
    from: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            url: default_smtp_url(),
            from: default_from(),
            username: None,
            password_env: None,
        }
    }
}

fn default_smtp_url() -> String {
    "file://./outbox-mail".into()
}
fn default_from() -> String {
    "embudo <embudo@localhost>".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Emails a second, across the daemon.
    #[serde(default = "default_rate")]
    pub rate_per_second: f64,
    /// Emails a day in the business time zone; none means unlimited.
    #[serde(default)]
    pub daily_capacity: Option<u32>,
    #[serde(default)]
    pub per_lead: Option<PerLead>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default = "default_expire")]
    pub expire_after: Span,
    #[serde(default = "default_retry")]
    pub retry_for: Span,
    /// The first retry's delay; each next one doubles, up to an hour.
    #[serde(default = "default_retry_after")]
    pub retry_after: Span,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_per_second: default_rate(),
            daily_capacity: None,
            per_lead: None,
            quiet_hours: None,
            expire_after: default_expire(),
            retry_for: default_retry(),
            retry_after: default_retry_after(),
        }
    }
}

fn default_rate() -> f64 {
    20.0
}
fn default_expire() -> Span {
    Span(TimeDelta::days(7))
}
fn default_retry() -> Span {
    Span(TimeDelta::days(3))
}
fn default_retry_after() -> Span {
    Span(TimeDelta::seconds(30))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerLead {
    pub max: u32,
    pub within: Span,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub from: ClockTime,
    pub to: ClockTime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_locale")]
    pub locale: String,
    /// The lead's zone when it has none; the business zone when omitted.
    #[serde(default)]
    pub timezone: Option<TimeZone>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            locale: default_locale(),
            timezone: None,
        }
    }
}

fn default_locale() -> String {
    "en".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The address leads reach: unsubscribe and tracking links start with it.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    #[serde(default = "default_token_env")]
    pub token_env: String,
    #[serde(default = "default_signing_env")]
    pub signing_key_env: String,
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: default_listen(),
            public_url: default_public_url(),
            token_env: default_token_env(),
            signing_key_env: default_signing_env(),
            unsubscribe_mailto: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_token_env() -> String {
    "EMBUDO_API_TOKEN".into()
}
fn default_signing_env() -> String {
    "EMBUDO_SIGNING_KEY".into()
}

/// A scheduled campaign (see the contract's "Campaigns"). Parsed and validated now;
/// firing is the campaigns module's job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub schedule: CampaignSchedule,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub audience_file: Option<PathBuf>,
    pub template: crate::domain::TemplateName,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub start: Option<NaiveDate>,
    #[serde(default)]
    pub end: Option<NaiveDate>,
    #[serde(default)]
    pub deliver_at_local: Option<ClockTime>,
    #[serde(default)]
    pub spread: Option<Span>,
    #[serde(default)]
    pub missed: Missed,
    #[serde(default)]
    pub grace: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSchedule {
    pub cron: CronExpr,
    #[serde(default)]
    pub timezone: Option<TimeZone>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    #[default]
    Skip,
    CatchUp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    funnel: Funnel,
    #[serde(default = "default_database")]
    database: String,
    #[serde(default)]
    schedule: Schedule,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    http: Http,
    #[serde(default)]
    campaigns: Vec<Campaign>,
    #[serde(default)]
    seed: Seed,
}

fn default_database() -> String {
    "sqlite://embudo.db".into()
}

impl Config {
    /// Reads and validates `path`; `EMBUDO_DATABASE_URL` overrides `database`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let db_override = std::env::var("EMBUDO_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        Config::from_str(&src, path, db_override.as_deref())
    }

    /// Validates the text of a config file that lives at `path`.
    pub fn from_str(
        src: &str,
        path: &Path,
        db_override: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let root = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let invalid =
            |line: usize, col: usize, message: String, hint: Option<&str>| ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                col,
                message,
                hint: hint.map(str::to_string),
            };
        let raw: RawConfig = if src.trim().is_empty() {
            parse_yaml("{}").expect("empty config parses")
        } else {
            parse_yaml(src).map_err(|e| {
                let hint = if e.message.contains("unknown field") {
                    Some("check the spelling; the keys are listed in the README's config reference")
                } else {
                    None
                };
                invalid(e.line, e.col, e.message, hint)
            })?
        };
        let at = |key: &str| locate(src, key);

        // Funnel.
        if raw.funnel.stages.is_empty() {
            let (l, c) = at("stages");
            return Err(invalid(
                l,
                c,
                "funnel.stages is empty".into(),
                Some("list the stages in funnel order, e.g. [interest, evaluation, customer]"),
            ));
        }
        for (i, s) in raw.funnel.stages.iter().enumerate() {
            if raw.funnel.stages[..i].contains(s) {
                let (l, c) = at("stages");
                return Err(invalid(
                    l,
                    c,
                    format!("funnel.stages lists `{s}` twice"),
                    None,
                ));
            }
        }
        if let Some(initial) = &raw.funnel.initial
            && !raw.funnel.stages.contains(initial)
        {
            let (l, c) = at("initial");
            return Err(invalid(
                l,
                c,
                format!("funnel.initial `{initial}` is not one of the stages"),
                Some(&format!("use one of: {}", raw.funnel.stage_list())),
            ));
        }

        // Database.
        let database = match db_override {
            Some(url) => resolve_database(url, &root).map_err(|m| ConfigError::Invalid {
                path: "EMBUDO_DATABASE_URL".into(),
                line: 1,
                col: 1,
                message: m,
                hint: Some("set EMBUDO_DATABASE_URL to sqlite://FILE, or unset it to use `database` from embudo.yaml".into()),
            })?,
            None => resolve_database(&raw.database, &root).map_err(|m| {
                let (l, c) = at("database");
                invalid(l, c, m, Some("write sqlite://FILE (relative to this file's folder)"))
            })?,
        };

        // SMTP.
        let transport = parse_transport(&raw.smtp.url, &root).map_err(|m| {
            let (l, c) = at("url");
            invalid(l, c, m, Some("write file://DIR, smtp://host:port[?tls=required|opportunistic|none] or smtps://host:port"))
        })?;
        let from: lettre::message::Mailbox = raw.smtp.from.parse().map_err(|e| {
            let (l, c) = at("from");
            invalid(
                l,
                c,
                format!("smtp.from `{}` is not a mailbox: {e}", raw.smtp.from),
                Some("write \"Name <address@domain>\""),
            )
        })?;
        // Limits.
        if raw.limits.rate_per_second.is_nan() || raw.limits.rate_per_second <= 0.0 {
            let (l, c) = at("rate_per_second");
            return Err(invalid(
                l,
                c,
                "limits.rate_per_second must be greater than 0".into(),
                None,
            ));
        }
        if let Some(p) = &raw.limits.per_lead
            && (p.max == 0 || p.within.0 <= TimeDelta::zero())
        {
            let (l, c) = at("per_lead");
            return Err(invalid(
                l,
                c,
                "limits.per_lead needs max ≥ 1 and a positive `within`".into(),
                None,
            ));
        }

        if raw.limits.daily_capacity == Some(0) {
            let (l, c) = at("daily_capacity");
            return Err(invalid(
                l,
                c,
                "limits.daily_capacity of 0 would hold every marketing email forever".into(),
                Some(
                    "give the number of emails a day the business can serve, or remove the key for no limit",
                ),
            ));
        }
        if let Some(q) = &raw.limits.quiet_hours
            && q.from.0 == q.to.0
        {
            let (l, c) = at("quiet_hours");
            return Err(invalid(
                l,
                c,
                "limits.quiet_hours starts and ends at the same time, so it is never quiet".into(),
                Some("write the night, e.g. { from: \"21:00\", to: \"08:00\" }, or remove the key"),
            ));
        }
        // HTTP: the public URL starts every link in every email.
        let url = raw.http.public_url.trim_end_matches('/');
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/'))
            || url
                .chars()
                .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            let (l, c) = at("public_url");
            return Err(invalid(
                l,
                c,
                format!(
                    "http.public_url `{}` is not an http(s) URL",
                    raw.http.public_url
                ),
                Some("write the address leads reach embudo at, e.g. https://shop.example/embudo"),
            ));
        }

        // Defaults.
        crate::templates::check_locale(&raw.defaults.locale).map_err(|m| {
            let (l, c) = at("locale");
            invalid(l, c, m, None)
        })?;

        // Campaigns: shape only; templates are checked against the templates folder.
        for (i, c) in raw.campaigns.iter().enumerate() {
            let (l, col) = locate_nth(src, "id", c.id.as_str(), i);
            if raw.campaigns[..i].iter().any(|o| o.id == c.id) {
                return Err(invalid(
                    l,
                    col,
                    format!("campaign id `{}` is used twice", c.id),
                    None,
                ));
            }
            if c.audience.is_some() == c.audience_file.is_some() {
                return Err(invalid(
                    l,
                    col,
                    format!(
                        "campaign `{}` needs exactly one of `audience` or `audience_file`",
                        c.id
                    ),
                    None,
                ));
            }
            if let Some(key) = &c.key {
                if key.trim().is_empty() {
                    return Err(invalid(
                        l,
                        col,
                        format!(
                            "campaign `{}`: an empty key would make it fire once, ever",
                            c.id
                        ),
                        Some(
                            "leave `key` out for the default \"{date}\", or write e.g. \"{year}\"",
                        ),
                    ));
                }
                let mut rest = key.as_str();
                while let Some(open) = rest.find('{') {
                    let Some(close) = rest[open..].find('}') else {
                        return Err(invalid(
                            l,
                            col,
                            format!("campaign `{}`: key `{key}` has an unclosed `{{`", c.id),
                            None,
                        ));
                    };
                    let name = &rest[open + 1..open + close];
                    if !["year", "month", "day", "date"].contains(&name) {
                        return Err(invalid(
                            l,
                            col,
                            format!(
                                "campaign `{}`: key `{key}` has an unknown placeholder `{{{name}}}`",
                                c.id
                            ),
                            Some("the placeholders are {year} {month} {day} {date}"),
                        ));
                    }
                    rest = &rest[open + close + 1..];
                }
            }
            if let (Some(s), Some(e)) = (c.start, c.end)
                && e < s
            {
                return Err(invalid(
                    l,
                    col,
                    format!("campaign `{}` ends before it starts", c.id),
                    None,
                ));
            }
        }

        let seed = Seed {
            leads: raw.seed.leads.map(|p| root.join(p)),
            events: raw.seed.events.map(|p| root.join(p)),
        };
        Ok(Config {
            path: path.to_path_buf(),
            root,
            funnel: raw.funnel,
            database,
            schedule: raw.schedule,
            smtp: Smtp {
                url: raw.smtp.url,
                transport,
                from,
                username: raw.smtp.username,
                password_env: raw.smtp.password_env,
            },
            limits: raw.limits,
            defaults: raw.defaults,
            http: raw.http,
            campaigns: raw.campaigns,
            seed,
        })
    }

    /// The zone of a lead without one.
    pub fn default_timezone(&self) -> Tz {
        self.defaults.timezone.unwrap_or(self.schedule.timezone).0
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.root.join("rules")
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("templates")
    }

    /// The SMTP password, read from the environment variable the YAML names.
    pub fn smtp_password(&self) -> Result<Option<String>, String> {
        match &self.smtp.password_env {
            None => Ok(None),
            Some(var) => std::env::var(var)
                .map(Some)
                .map_err(|_| format!("smtp.password_env names `{var}`, which is not set; export it before starting embudo")),
        }
    }

    /// The path relative to the config's folder, for messages.
    /// Where `key: …value…` is written in the config file (best effort, for problems
    /// found after parsing); (1, 1) when not found.
    pub fn position_of(&self, key: &str, value: &str) -> (usize, usize) {
        std::fs::read_to_string(&self.path)
            .map(|src| locate_nth(&src, key, value, 0))
            .unwrap_or((1, 1))
    }

    pub fn display_path(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

fn resolve_database(url: &str, root: &Path) -> Result<String, String> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest == ":memory:" {
            return Ok(url.to_string());
        }
        let file = rest.trim_start_matches("//");
        let (file, query) = match file.split_once('?') {
            Some((f, q)) => (f, Some(q)),
            None => (file, None),
        };
        if file.is_empty() {
            return Err(format!("database `{url}` names no file"));
        }
        let p = Path::new(file);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        };
        let mut out = format!("sqlite://{}", full.display());
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Ok(out)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Err("PostgreSQL is not supported by this build yet; use sqlite://FILE".into())
    } else {
        Err(format!(
            "database `{url}` is neither sqlite:// nor postgres://"
        ))
    }
}

fn parse_transport(url: &str, root: &Path) -> Result<Transport, String> {
    if let Some(rest) = url.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("smtp.url `file://` names no folder".into());
        }
        let p = Path::new(rest);
        return Ok(Transport::File(if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        }));
    }
    let (implicit, rest) = if let Some(r) = url.strip_prefix("smtps://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("smtp://") {
        (false, r)
    } else {
        return Err(format!("smtp.url `{url}` has an unknown scheme"));
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest.trim_end_matches('/'), None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("smtp.url `{url}` has a bad port `{p}`"))?,
        ),
        None => (hostport, if implicit { 465 } else { 587 }),
    };
    if host.is_empty() {
        return Err(format!("smtp.url `{url}` names no host"));
    }
    let mut tls = if implicit {
        Tls::Implicit
    } else {
        Tls::Required
    };
    if let Some(q) = query {
        for pair in q.split('&') {
            match pair.split_once('=') {
                Some(("tls", v)) if !implicit => {
                    tls = match v {
                        "required" => Tls::Required,
                        "opportunistic" => Tls::Opportunistic,
                        "none" => Tls::None,
                        _ => {
                            return Err(format!(
                                "smtp.url: tls=`{v}` must be required, opportunistic or none"
                            ));
                        }
                    }
                }
                _ => return Err(format!("smtp.url: unknown parameter `{pair}`")),
            }
        }
    }
    Ok(Transport::Smtp {
        host: host.to_string(),
        port,
        tls,
    })
}

/// The 1-based line and column of the first `key:` in `src` (best effort: for errors
/// found after parsing, when serde no longer knows the position).
fn locate(src: &str, key: &str) -> (usize, usize) {
    locate_nth(src, key, "", 0)
}

fn locate_nth(src: &str, key: &str, value: &str, nth: usize) -> (usize, usize) {
    let needle = format!("{key}:");
    let mut seen = 0;
    for (i, line) in src.lines().enumerate() {
        let mut from = 0;
        while let Some(pos) = line[from..].find(&needle) {
            let col = from + pos;
            let before_ok = col == 0
                || !line.as_bytes()[col - 1].is_ascii_alphanumeric()
                    && line.as_bytes()[col - 1] != b'_';
            if before_ok && line[col..].contains(value) {
                if seen == nth {
                    return (i + 1, col + 1);
                }
                seen += 1;
            }
            from = col + needle.len();
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Result<Config, ConfigError> {
        Config::from_str(src, Path::new("/srv/shop/embudo.yaml"), None)
    }

    #[test]
    fn an_empty_file_gets_every_default() {
        let c = load("").unwrap();
        assert_eq!(c.funnel.stage_list(), "interest, evaluation, customer");
        assert_eq!(c.funnel.initial().as_str(), "interest");
        assert_eq!(c.database, "sqlite:///srv/shop/embudo.db");
        assert_eq!(
            c.smtp.transport,
            Transport::File("/srv/shop/./outbox-mail".into())
        );
        assert_eq!(c.limits.expire_after.0, TimeDelta::days(7));
    }

    #[test]
    fn the_contract_example_parses() {
        let src = r#"
funnel:
  stages: [interest, evaluation, customer]
  initial: interest
database: sqlite://embudo.db
schedule: { tick: "0 */5 * * * *", timezone: Europe/Madrid }
smtp:
  url: file://./outbox-mail
  from: "Tienda Sol <hola@tienda.example>"
  password_env: EMBUDO_SMTP_PASSWORD
  username: hola
limits: { rate_per_second: 20, daily_capacity: 2000, per_lead: { max: 3, within: 7d },
          quiet_hours: { from: "21:00", to: "08:00" }, expire_after: 7d, retry_for: 3d }
defaults: { locale: es, timezone: Europe/Madrid }
http: { listen: "127.0.0.1:8080", public_url: "https://tienda.example/embudo",
        token_env: EMBUDO_API_TOKEN, signing_key_env: EMBUDO_SIGNING_KEY,
        unsubscribe_mailto: "baja@tienda.example" }
campaigns:
  - id: back-to-school
    schedule: { cron: "0 0 9 1 8 *", timezone: Europe/Madrid }
    audience: 'lead.stage == "customer" && lead.tags.contains("school")'
    template: back-to-school
    key: "{year}"
    start: 2026-01-01
    end: 2030-12-31
    deliver_at_local: "09:00"
    spread: 6h
    missed: catch_up
    grace: 2d
"#;
        let c = load(src).unwrap();
        assert_eq!(c.schedule.timezone.0, chrono_tz::Europe::Madrid);
        assert_eq!(c.limits.daily_capacity, Some(2000));
        assert_eq!(c.campaigns[0].missed, Missed::CatchUp);
        assert_eq!(
            c.limits.per_lead.as_ref().unwrap().within.0,
            TimeDelta::days(7)
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_line_and_column() {
        let err = load("funnel:\n  stages: [a, b]\n  initail: a\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/srv/shop/embudo.yaml:3:3:"), "{err}");
        assert!(err.contains("unknown field `initail`"), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }

    #[test]
    fn bad_values_name_the_line_and_say_what_to_write() {
        let err = load("schedule:\n  tick: \"every five minutes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("embudo.yaml:2:"), "{err}");
        assert!(err.contains("not a cron expression"), "{err}");

        let err = load("schedule: { timezone: Europe/Madird }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown time zone `Europe/Madird`"), "{err}");

        let err = load("limits:\n  expire_after: 7 days\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2:") && err.contains("e.g. 90s"), "{err}");

        let err = load("funnel:\n  stages: [a, b]\n  initial: c\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3:3: funnel.initial `c` is not one of the stages"),
            "{err}"
        );
        assert!(err.contains("use one of: a, b"), "{err}");

        let err = load("smtp:\n  url: ftp://x\n").unwrap_err().to_string();
        assert!(
            err.contains(":2:3:") && err.contains("unknown scheme"),
            "{err}"
        );
    }

    #[test]
    fn smtp_urls_parse() {
        let r = Path::new("/r");
        assert_eq!(
            parse_transport("smtp://mail.example:2525?tls=none", r).unwrap(),
            Transport::Smtp {
                host: "mail.example".into(),
                port: 2525,
                tls: Tls::None
            }
        );
        assert_eq!(
            parse_transport("smtps://mail.example", r).unwrap(),
            Transport::Smtp {
                host: "mail.example".into(),
                port: 465,
                tls: Tls::Implicit
            }
        );
        assert!(parse_transport("smtp://h:25?tls=maybe", r).is_err());
    }

    #[test]
    fn the_database_override_wins() {
        let c = Config::from_str(
            "database: sqlite://a.db\n",
            Path::new("x/embudo.yaml"),
            Some("sqlite:///tmp/b.db"),
        )
        .unwrap();
        assert_eq!(c.database, "sqlite:///tmp/b.db");
    }
}
