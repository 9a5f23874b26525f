//! `embudo.yaml` → a typed, validated [`Config`].
//!
//! This module is also the only place that touches serde_yaml ([`parse_yaml`]): front
//! matter, sample leads and rule tests go through it, so replacing the deprecated crate
//! with a successor is a one-file change.

use crate::domain::{StageId, time::parse_duration};
use crate::funnel::diagnostic::did_you_mean;
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
    /// What to do about it, when known.
    pub hint: Option<String>,
}

/// Deserialises YAML, keeping the position of the first error.
pub fn parse_yaml<T: DeserializeOwned>(src: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(src).map_err(|e| yaml_error(src, &e))
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
    /// How hot reload treats this file.
    pub reload: Reload,
    /// The keys this file sets itself (`limits.quiet_hours`, `smtp.from`,
    /// `campaigns[back-to-school]`…), as opposed to defaults: hot reload refuses a
    /// change that drops one, since a half-saved file drops them all.
    pub set_keys: std::collections::BTreeSet<String>,
}

/// `reload: { allow_removals: true }`: a change that removes keys the running funnel
/// sets is taken anyway (without it, such a change is refused as a likely half-save).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    #[serde(default)]
    pub allow_removals: bool,
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
            let near = did_you_mean(stage, self.stages.iter().map(|s| s.as_str()))
                .map(|d| format!("{d} "))
                .unwrap_or_default();
            Err(format!(
                "unknown stage `{stage}`; {near}the funnel's stages are: {}",
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
/// accepted as minute-first, a 7th field is a year, and @daily-style nicknames work
/// ([`CRON_FORMS`]).
#[derive(Clone)]
pub struct CronExpr {
    pub source: String,
    pub cron: croner::Cron,
}

impl CronExpr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Optional)
            .build();
        let cron = parser
            .parse(s)
            .map_err(|e| format!("`{s}` is not a cron expression ({e}); {CRON_FORMS}"))?;
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
        let names = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
        match did_you_mean(s.trim(), names) {
            Some(d) => format!("unknown time zone `{s}`; {d} (an IANA name such as Europe/Madrid or America/Mexico_City)"),
            None => format!(
                "unknown time zone `{s}`; use an IANA name such as Europe/Madrid or America/Mexico_City"
            ),
        }
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
        /// `plain_auth=loopback`: the password may be sent over a connection without
        /// TLS; only accepted for a server on this machine.
        plain_auth: bool,
    },
}

/// Whether `host` names this machine (the only place a password may go in clear).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

    /// Validates the text of a config file that lives at `path`: the config, or its
    /// first problem (the message says how many more `embudo check` lists).
    pub fn from_str(
        src: &str,
        path: &Path,
        db_override: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let (config, problems) = Config::from_str_all(src, path, db_override);
        let more = problems.len().saturating_sub(1);
        match problems.into_iter().next() {
            None => Ok(config),
            Some(ConfigError::Invalid {
                path,
                line,
                col,
                message,
                hint,
            }) if more > 0 => {
                let note =
                    format!("{more} more problem(s) in this file: `embudo check` lists them all");
                Err(ConfigError::Invalid {
                    path,
                    line,
                    col,
                    message,
                    hint: Some(match hint {
                        Some(h) => format!("{h}\n  note: {note}"),
                        None => note,
                    }),
                })
            }
            Some(first) => Err(first),
        }
    }

    /// Reads `path`: the config and every problem in it. Each key is validated on its
    /// own; a key with a bad value is reported at its own line and column and takes
    /// its default, so the rest of the folder can still be checked (`embudo check`).
    pub fn load_all(path: &Path) -> Result<(Config, Vec<ConfigError>), ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let db_override = std::env::var("EMBUDO_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Config::from_str_all(&src, path, db_override.as_deref()))
    }

    /// The config written in `src` with every problem found in it (see [`load_all`]).
    pub fn from_str_all(
        src: &str,
        path: &Path,
        db_override: Option<&str>,
    ) -> (Config, Vec<ConfigError>) {
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
        let mut p = Problems {
            src,
            file: path,
            list: Vec::new(),
        };

        // The document: a syntax error leaves nothing to read, and every key its default.
        let doc: serde_yaml::Mapping = if src.trim().is_empty() {
            serde_yaml::Mapping::new()
        } else {
            match serde_yaml::from_str::<serde_yaml::Value>(src) {
                Ok(serde_yaml::Value::Mapping(m)) => m,
                Ok(serde_yaml::Value::Null) => serde_yaml::Mapping::new(),
                Ok(_) => {
                    p.add(
                        &[],
                        "embudo.yaml is not a mapping of keys",
                        Some("write keys such as `funnel:`, `smtp:`, `limits:` at the start of lines".into()),
                    );
                    serde_yaml::Mapping::new()
                }
                Err(e) => {
                    let e = yaml_error(src, &e);
                    p.push(e.line, e.col, e.message, e.hint);
                    serde_yaml::Mapping::new()
                }
            }
        };
        for k in doc.keys() {
            let name = key_text(k);
            if !TOP_KEYS.contains(&name.as_str()) {
                let list = TOP_KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                p.add(
                    &[Step::Key(name.clone())],
                    format!("unknown field `{name}`, expected one of {list}"),
                    Some(unknown_key_hint(&name, TOP_KEYS.iter().copied())),
                );
            }
        }
        let get = |key: &str| doc.get(key).filter(|v| !v.is_null()).cloned();
        fn section<T: DeserializeOwned>(
            p: &mut Problems,
            key: &str,
            v: Option<serde_yaml::Value>,
        ) -> Option<T> {
            lenient(p, vec![Step::Key(key.into())], v?)
        }
        let mut funnel: Funnel = section(&mut p, "funnel", get("funnel")).unwrap_or_default();
        let raw_database: String =
            section(&mut p, "database", get("database")).unwrap_or_else(default_database);
        let mut schedule: Schedule =
            section(&mut p, "schedule", get("schedule")).unwrap_or_default();
        let raw_smtp: RawSmtp = section(&mut p, "smtp", get("smtp")).unwrap_or_default();
        let mut limits: Limits = section(&mut p, "limits", get("limits")).unwrap_or_default();
        let mut defaults: Defaults =
            section(&mut p, "defaults", get("defaults")).unwrap_or_default();
        let mut http: Http = section(&mut p, "http", get("http")).unwrap_or_default();
        let raw_seed: Seed = section(&mut p, "seed", get("seed")).unwrap_or_default();
        let reload: Reload = section(&mut p, "reload", get("reload")).unwrap_or_default();
        let set_keys = set_keys(&doc);
        // Each campaign on its own: a broken one is left out, the others are checked.
        let mut campaigns: Vec<(usize, Campaign)> = Vec::new();
        match get("campaigns") {
            None => {}
            Some(serde_yaml::Value::Sequence(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let at = vec![Step::Key("campaigns".into()), Step::Index(i)];
                    if let Some(c) = lenient::<Campaign>(&mut p, at, item) {
                        campaigns.push((i, c));
                    }
                }
            }
            Some(_) => p.add(
                &keys(&["campaigns"]),
                "campaigns is not a list",
                Some("write one `- id: …` item a campaign".into()),
            ),
        }

        // Funnel.
        if funnel.stages.is_empty() {
            p.add(
                &keys(&["funnel", "stages"]),
                "funnel.stages is empty",
                Some(
                    "list the stages in funnel order, e.g. [interest, evaluation, customer]".into(),
                ),
            );
            funnel.stages = default_stages();
        }
        let mut seen: Vec<StageId> = Vec::new();
        for (i, s) in funnel.stages.iter().enumerate() {
            if seen.contains(s) {
                let mut at = keys(&["funnel", "stages"]);
                at.push(Step::Index(i));
                p.add(&at, format!("funnel.stages lists `{s}` twice"), None);
            } else {
                seen.push(s.clone());
            }
        }
        funnel.stages = seen;
        if let Some(initial) = &funnel.initial
            && !funnel.stages.contains(initial)
        {
            let list = funnel.stage_list();
            let hint =
                match did_you_mean(initial.as_str(), funnel.stages.iter().map(|s| s.as_str())) {
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

        // Database.
        let fallback_db = || resolve_database(&default_database(), &root).expect("valid");
        let database = match db_override {
            Some(url) => resolve_database(url, &root).unwrap_or_else(|m| {
                p.list.push(ConfigError::Invalid {
                    path: "EMBUDO_DATABASE_URL".into(),
                    line: 1,
                    col: 1,
                    message: m,
                    hint: Some("set EMBUDO_DATABASE_URL to sqlite://FILE, or unset it to use `database` from embudo.yaml".into()),
                });
                fallback_db()
            }),
            None => resolve_database(&raw_database, &root).unwrap_or_else(|m| {
                p.add(
                    &keys(&["database"]),
                    m,
                    Some("write sqlite://FILE (relative to this file's folder)".into()),
                );
                fallback_db()
            }),
        };

        // SMTP.
        let transport = parse_transport(&raw_smtp.url, &root).unwrap_or_else(|m| {
            p.add(
                &keys(&["smtp", "url"]),
                m,
                Some("write file://DIR, smtp://host:port[?tls=required|opportunistic|none] or smtps://host:port".into()),
            );
            parse_transport(&default_smtp_url(), &root).expect("valid")
        });
        let from: lettre::message::Mailbox = raw_smtp.from.parse().unwrap_or_else(|e| {
            p.add(
                &keys(&["smtp", "from"]),
                format!("smtp.from `{}` is not a mailbox: {e}", raw_smtp.from),
                Some("write \"Name <address@domain>\"".into()),
            );
            default_from().parse().expect("valid")
        });

        // Schedules: a cron that never fires again is a mistake, not a pause.
        let now = chrono::Utc::now();
        if let Some(m) = never_fires(&schedule.tick, schedule.timezone.0, now) {
            p.add(
                &keys(&["schedule", "tick"]),
                format!("schedule.tick {m}"),
                Some(CRON_FORMS.into()),
            );
            schedule.tick = default_tick();
        }

        // Limits.
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
                        crate::domain::time::format_duration(span.0),
                        crate::domain::time::format_duration(min),
                        crate::domain::time::format_duration(max)
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
        if let Some(pl) = &limits.per_lead {
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
        // HTTP: the public URL starts every link in every email.
        let url = http.public_url.trim_end_matches('/');
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/'))
            || url
                .chars()
                .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            p.add(
                &keys(&["http", "public_url"]),
                format!(
                    "http.public_url `{}` is not an http(s) URL",
                    http.public_url
                ),
                Some(
                    "write the address leads reach embudo at, e.g. https://shop.example/embudo"
                        .into(),
                ),
            );
            http.public_url = default_public_url();
        }

        // Defaults.
        if let Err(m) = crate::funnel::templates::check_locale(&defaults.locale) {
            p.add(
                &keys(&["defaults", "locale"]),
                m,
                Some("write a language code such as es, en or pt-BR".into()),
            );
            defaults.locale = default_locale();
        }

        // Campaigns: shape only; templates are checked against the templates folder.
        let mut kept: Vec<Campaign> = Vec::new();
        for (i, c) in campaigns {
            let at = |key: &str| {
                let mut v = vec![Step::Key("campaigns".into()), Step::Index(i)];
                if !key.is_empty() {
                    v.push(Step::Key(key.into()));
                }
                v
            };
            let before = p.list.len();
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
            if p.list.len() == before {
                kept.push(c);
            }
        }

        let seed = Seed {
            leads: raw_seed.leads.map(|p| root.join(p)),
            events: raw_seed.events.map(|p| root.join(p)),
        };
        let config = Config {
            path: path.to_path_buf(),
            root,
            funnel,
            database,
            schedule,
            smtp: Smtp {
                url: raw_smtp.url,
                transport,
                from,
                username: raw_smtp.username,
                password_env: raw_smtp.password_env,
            },
            limits,
            defaults,
            http,
            campaigns: kept,
            seed,
            reload,
            set_keys,
        };
        (config, p.list)
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

    /// Where the node at `path` is written in the config file (its key's line and
    /// column; the nearest enclosing key's when it is not written).
    pub fn position_at(&self, path: &[Step]) -> (usize, usize) {
        std::fs::read_to_string(&self.path)
            .map(|src| position_or_parent(&src, path))
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
    let mut plain_auth = false;
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
                Some(("plain_auth", "loopback")) if is_loopback(host) => plain_auth = true,
                Some(("plain_auth", "loopback")) => {
                    return Err(format!(
                        "smtp.url: plain_auth=loopback is only for a server on this machine (127.0.0.1, ::1, localhost), not `{host}`: elsewhere the password would cross the network in clear"
                    ));
                }
                _ => return Err(format!("smtp.url: unknown parameter `{pair}`")),
            }
        }
    }
    Ok(Transport::Smtp {
        host: host.to_string(),
        port,
        tls,
        plain_auth,
    })
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

/// The top-level keys of embudo.yaml.
/// The range of `limits.rate_per_second`: below, the pacing gap overflows any timer;
/// above, no SMTP server keeps up.
const MIN_RATE: f64 = 0.01;
const MAX_RATE: f64 = 10_000.0;

/// The keys a document sets, as dotted paths down to the leaves of the known
/// sections (`limits.per_lead`, `smtp.from`), and one entry per campaign by id.
fn set_keys(doc: &serde_yaml::Mapping) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (k, v) in doc {
        let top = key_text(k);
        if v.is_null() {
            continue;
        }
        match (top.as_str(), v) {
            ("campaigns", serde_yaml::Value::Sequence(items)) => {
                for item in items {
                    if let Some(id) = item.get("id").and_then(|i| i.as_str()) {
                        out.insert(format!("campaigns[{id}]"));
                    }
                }
            }
            (_, serde_yaml::Value::Mapping(m)) => {
                for (k2, v2) in m {
                    if !v2.is_null() {
                        out.insert(format!("{top}.{}", key_text(k2)));
                    }
                }
            }
            _ => {
                out.insert(top);
            }
        }
    }
    out
}

const TOP_KEYS: &[&str] = &[
    "funnel",
    "database",
    "schedule",
    "smtp",
    "limits",
    "defaults",
    "http",
    "campaigns",
    "seed",
    "reload",
];

/// How to let embudo talk to a server without STARTTLS (for errors and `check`).
pub const STARTTLS_HELP: &str = "smtp:// requires STARTTLS unless the URL says otherwise: for a local server without TLS write smtp://host:port?tls=none (never encrypt) or ?tls=opportunistic (encrypt when offered); `embudo check --smtp` shows what the server offers";

/// The cron forms embudo accepts, for every cron error's help line.
pub const CRON_FORMS: &str = "embudo reads 6 fields with seconds first (\"0 */5 * * * *\": sec min hour day month weekday), 5 fields with minute first (\"*/5 * * * *\"), or 7 fields with a year last (\"0 0 9 1 8 * 2027\"); @hourly, @daily, @weekly, @monthly and @yearly also work";

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

/// One step of a path into a YAML document: a mapping's key or a sequence's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path of mapping keys.
pub fn keys(ks: &[&str]) -> Vec<Step> {
    ks.iter().map(|k| Step::Key(k.to_string())).collect()
}

/// The problems found while loading, each placed at its own key.
struct Problems<'a> {
    src: &'a str,
    file: &'a Path,
    list: Vec<ConfigError>,
}

impl Problems<'_> {
    /// A problem with the node at `at` (its key's line and column; the nearest
    /// enclosing key's when it is not written).
    fn add(&mut self, at: &[Step], message: impl Into<String>, hint: Option<String>) {
        let (line, col) = position_or_parent(self.src, at);
        self.push(line, col, message.into(), hint);
    }

    fn push(&mut self, line: usize, col: usize, message: String, hint: Option<String>) {
        self.list.push(ConfigError::Invalid {
            path: self.file.to_path_buf(),
            line,
            col,
            message,
            hint,
        });
    }
}

/// Deserialises `v` (found at `base`), reporting each bad key at its own place and
/// leaving it out (so it takes its default), until the rest deserialises; None when
/// the node itself is unusable.
fn lenient<T: DeserializeOwned>(
    p: &mut Problems,
    base: Vec<Step>,
    mut v: serde_yaml::Value,
) -> Option<T> {
    // Keys already reported and taken out: a required one then goes missing, which
    // is the same problem again.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    for _ in 0..64 {
        let e = match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut steps: Vec<Step> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                _ => None,
            })
            .collect();
        let message = e.inner().to_string();
        let named: Vec<String> = backticked(&message).into_iter().map(String::from).collect();
        let named: Vec<&str> = named.iter().map(String::as_str).collect();
        let mut hint = None;
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default().to_string();
            if steps.last() != Some(&Step::Key(name.clone())) {
                steps.push(Step::Key(name.clone()));
            }
            hint = Some(unknown_key_hint(&name, named.iter().skip(1).copied()));
        } else if message.starts_with("unknown variant `") {
            hint = named
                .first()
                .and_then(|n| did_you_mean(n, named.iter().skip(1).copied()))
                .or_else(|| Some(format!("write one of: {}", named[1..].join(", "))));
        } else if message.starts_with("missing field `") {
            hint = named.first().map(|n| format!("add `{n}:` here"));
        } else if let Some(want) = message
            .strip_prefix("invalid type: ")
            .and_then(|m| m.split_once(", expected "))
            .map(|(_, w)| w.to_string())
        {
            hint = Some(match want.as_str() {
                "f64" | "f32" => "write a number, e.g. 20 or 0.5".into(),
                w if w.starts_with('u') || w.starts_with('i') => {
                    "write a whole number, e.g. 3".into()
                }
                "a sequence" => "write a list, e.g. [a, b]".into(),
                "a string" => "write text (in quotes if it has `:` or `#`)".into(),
                "a boolean" => "write true or false".into(),
                w => format!("write {w} here"),
            });
        }
        let mut full = base.clone();
        full.extend(steps.iter().cloned());
        let (line, col) = position_or_parent(p.src, &full);
        let mut message = match message.split_once(" at line ") {
            Some((m, _)) => m.to_string(),
            None => message,
        };
        // "`10 days` is not a duration; write e.g. 7d": the second half is the help.
        if hint.is_none()
            && let Some((m, h)) = message.split_once("; ")
        {
            hint = Some(h.to_string());
            message = m.to_string();
        }
        if !message.starts_with("unknown field") {
            message = format!("{}: {message}", dotted(&full));
        }
        let again = named.first().is_some_and(|n| {
            let mut missing = steps.clone();
            missing.push(Step::Key(n.to_string()));
            removed.contains(&missing)
        }) && message.contains("missing field `");
        if !again {
            p.push(line, col, message, hint);
        }
        let cut = steps.iter().rposition(|s| matches!(s, Step::Key(_)))?;
        if !remove(&mut v, &steps[..=cut]) {
            return None;
        }
        removed.push(steps[..=cut].to_vec());
    }
    None
}

/// A path as the user reads it: `limits.expire_after`, `campaigns[0].template`.
pub fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The words written `like this` in a message.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The help line of an unknown key: the nearest known one, else where keys are listed.
fn unknown_key_hint<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, known) {
        Some(d) => d,
        None => "check the spelling; the keys are listed in the README's config reference".into(),
    }
}

/// Removes the mapping entry at `path`; false when there is none.
fn remove(v: &mut serde_yaml::Value, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in parents {
        let next = match (s, cur) {
            (Step::Key(k), serde_yaml::Value::Mapping(m)) => m.get_mut(k.as_str()),
            (Step::Index(i), serde_yaml::Value::Sequence(s)) => s.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Step::Key(k), serde_yaml::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

fn key_text(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// The 1-based line and column where the node at `path` is written in `src`: a mapping
/// entry's key, a sequence's item; None when it is not written there. The YAML parser
/// itself walks the path, so block and flow style, quotes and comments all count.
pub fn position_in(src: &str, path: &[Step]) -> Option<(usize, usize)> {
    if path.is_empty() {
        return None;
    }
    let d = serde_yaml::Deserializer::from_str(src);
    let Err(e) = serde::de::DeserializeSeed::deserialize(Find(path), d) else {
        return None;
    };
    if !e.to_string().contains(FOUND) {
        return None;
    }
    e.location().map(|l| (l.line(), l.column()))
}

/// The position of `path`, else of the nearest enclosing node that is written; (1, 1)
/// when none is.
pub fn position_or_parent(src: &str, path: &[Step]) -> (usize, usize) {
    (1..=path.len())
        .rev()
        .find_map(|n| position_in(src, &path[..n]))
        .unwrap_or((1, 1))
}

/// The error that stops the walk where the node is: serde_yaml gives it the position
/// of the scalar or collection being read.
const FOUND: &str = "\u{1}found";

struct Find<'p>(&'p [Step]);

impl<'de> serde::de::DeserializeSeed<'de> for Find<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.0.is_empty() {
            d.deserialize_any(Here)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Find<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping or a sequence")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let Some(Step::Key(want)) = self.0.first() else {
            return Err(A::Error::custom("not here"));
        };
        let last = self.0.len() == 1;
        while let Some(hit) = m.next_key_seed(KeyIs { want, last })? {
            if hit {
                return m.next_value_seed(Find(&self.0[1..]));
            }
            m.next_value::<serde::de::IgnoredAny>()?;
        }
        Err(A::Error::custom("not here"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let Some(Step::Index(want)) = self.0.first() else {
            return Err(A::Error::custom("not here"));
        };
        for _ in 0..*want {
            if s.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Err(A::Error::custom("not here"));
            }
        }
        s.next_element_seed(Find(&self.0[1..]))?;
        Err(A::Error::custom("not here"))
    }
}

/// A mapping key: true when it is the wanted one; the wanted last key stops the walk
/// with its own position.
struct KeyIs<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.want, self.last) {
            (true, true) => Err(E::custom(FOUND)),
            (hit, _) => Ok(hit),
        }
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
}

/// Any node: stops the walk with the node's position.
struct Here;

impl<'de> serde::de::Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(FOUND))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(FOUND))
    }
}

/// A serde_yaml error with its position. An unclosed quote makes the parser read on
/// to the next quote or the end of the file and complain there: point at the quote
/// that opened instead.
fn yaml_error(src: &str, e: &serde_yaml::Error) -> YamlError {
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    // "… at line 9 column 1, while scanning a quoted scalar at line 4 column 9": the
    // positions are shown by the diagnostic itself.
    let mut message = String::new();
    for (i, part) in e.to_string().split(" at line ").enumerate() {
        if i == 0 {
            message.push_str(part);
        } else if i > 1 {
            // A context mark (where the flow sequence or quote began): keep it.
            message.push_str(" at line ");
            message.push_str(part);
        } else {
            let rest = part
                .split_once(" column ")
                .map(|(_, r)| r.trim_start_matches(|c: char| c.is_ascii_digit()))
                .unwrap_or("");
            message.push_str(rest);
        }
    }
    let about_quotes = message.contains("quoted scalar");
    if let Some((ql, qc, quote)) =
        unclosed_quote(src, line).filter(|(ql, _, _)| *ql < line || about_quotes)
    {
        return YamlError {
            line: ql,
            col: qc,
            message: format!(
                "this {quote} is not closed on its line, so the YAML reader took the lines after it as part of the text (then: {message}, at line {line})"
            ),
            hint: Some(format!(
                "close the quote on line {ql}: a value in quotes ends with the same quote"
            )),
        };
    }
    let tab = src
        .lines()
        .nth(line.saturating_sub(1))
        .is_some_and(|l| l.contains('\t'));
    let hint = if tab {
        "indent with spaces: YAML does not allow tabs for indentation".to_string()
    } else if message.contains("expected ',' or '}'") || message.contains("expected ',' or ']'") {
        "inside { } and [ ], items are separated by commas and every quote and bracket is closed: check this line and the one before".to_string()
    } else {
        "check the YAML around here: indentation with spaces, a space after each `key:`, closed quotes and brackets".to_string()
    };
    YamlError {
        line,
        col,
        message,
        hint: Some(hint),
    }
}

/// The first quote at or before line `upto` that opens a value and is not closed on
/// its line: (line, column, "double quote" or "single quote").
fn unclosed_quote(src: &str, upto: usize) -> Option<(usize, usize, &'static str)> {
    for (i, line) in src.lines().enumerate().take(upto) {
        let mut open: Option<(char, usize)> = None;
        let mut prev = ' ';
        let mut chars = line.char_indices().peekable();
        let mut col = 0;
        while let Some((_, c)) = chars.next() {
            col += 1;
            match open {
                Some(('"', _)) if c == '\\' => {
                    chars.next();
                    col += 1;
                }
                Some((q, _)) if c == q => {
                    if q == '\'' && chars.peek().map(|x| x.1) == Some('\'') {
                        chars.next();
                        col += 1;
                    } else {
                        open = None;
                    }
                }
                Some(_) => {}
                None if c == '#' && prev.is_whitespace() => break,
                None if (c == '"' || c == '\'')
                    && (prev.is_whitespace() || "[{,:-".contains(prev)) =>
                {
                    // A quote starts a value only after `: `, `- `, a flow bracket or a
                    // comma (or at the start of the line).
                    let before = line[..line.char_indices().nth(col - 1).map(|x| x.0).unwrap_or(0)]
                        .trim_end();
                    if before.is_empty()
                        || before.ends_with(':')
                        || before.ends_with('-')
                        || before.ends_with('[')
                        || before.ends_with('{')
                        || before.ends_with(',')
                    {
                        open = Some((c, col));
                    }
                }
                None => {}
            }
            prev = c;
        }
        if let Some((q, at)) = open {
            let what = if q == '"' {
                "double quote"
            } else {
                "single quote"
            };
            return Some((i + 1, at, what));
        }
    }
    None
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
                tls: Tls::None,
                plain_auth: false,
            }
        );
        assert_eq!(
            parse_transport("smtps://mail.example", r).unwrap(),
            Transport::Smtp {
                host: "mail.example".into(),
                port: 465,
                tls: Tls::Implicit,
                plain_auth: false,
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
