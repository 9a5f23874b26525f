//! The shape of `embudo.yaml`: one type a section, with its defaults and the values
//! that parse themselves (cron, time zone, duration, clock time).

use crate::domain::{StageId, time::parse_duration};
use crate::funnel::config::transport::Transport;
use crate::funnel::diagnostic::did_you_mean;
use chrono::{NaiveDate, NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::PathBuf;

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

/// The `funnel:` section: the stages a lead moves through, in order, and where an
/// imported lead starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stages {
    /// In funnel order; never empty once loaded.
    #[serde(rename = "stages", default = "default_stages")]
    pub list: Vec<StageId>,
    /// The stage of a lead imported without one; the first stage when omitted.
    #[serde(default)]
    pub initial: Option<StageId>,
}

impl Stages {
    pub fn initial(&self) -> &StageId {
        self.initial.as_ref().unwrap_or(&self.list[0])
    }
    pub fn has(&self, stage: &str) -> bool {
        self.list.iter().any(|s| s.as_str() == stage)
    }
    /// Parses `stage` as one of this funnel's stages.
    pub fn stage(&self, stage: &str) -> Result<StageId, String> {
        if self.has(stage) {
            StageId::parse(stage)
        } else {
            let near = did_you_mean(stage, self.list.iter().map(|s| s.as_str()))
                .map(|d| format!("{d} "))
                .unwrap_or_default();
            Err(format!(
                "unknown stage `{stage}`; {near}the funnel's stages are: {}",
                self.stage_list()
            ))
        }
    }
    pub fn stage_list(&self) -> String {
        self.list
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for Stages {
    fn default() -> Self {
        Stages {
            list: default_stages(),
            initial: None,
        }
    }
}

pub(super) fn default_stages() -> Vec<StageId> {
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

pub(super) fn default_tick() -> CronExpr {
    CronExpr::parse("0 */5 * * * *").expect("valid")
}
pub(super) fn default_tz() -> TimeZone {
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

#[derive(Debug, Clone)]
pub struct Smtp {
    pub url: String,
    pub transport: Transport,
    pub from: lettre::message::Mailbox,
    pub username: Option<String>,
    pub password_env: Option<String>,
    /// Sends under way at once, each on its own connection.
    pub connections: usize,
}

/// `smtp:` as written; [`Smtp`] once the URL and sender are parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    #[serde(default = "default_smtp_url")]
    pub url: String,
    #[serde(default = "default_from")]
    pub from: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_connections")]
    pub connections: usize,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            url: default_smtp_url(),
            from: default_from(),
            username: None,
            password_env: None,
            connections: default_connections(),
        }
    }
}

/// Four sends under way: what a small relay takes without complaint.
pub(super) fn default_connections() -> usize {
    4
}

pub(super) fn default_smtp_url() -> String {
    "file://./outbox-mail".into()
}
pub(super) fn default_from() -> String {
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

pub(super) fn default_rate() -> f64 {
    20.0
}
pub(super) fn default_expire() -> Span {
    Span(TimeDelta::days(7))
}
pub(super) fn default_retry() -> Span {
    Span(TimeDelta::days(3))
}
pub(super) fn default_retry_after() -> Span {
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

pub(super) fn default_locale() -> String {
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
    /// The dashboard at `/` without the API token (it shows counts, never an address).
    #[serde(default)]
    pub dashboard_public: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: default_listen(),
            public_url: default_public_url(),
            token_env: default_token_env(),
            signing_key_env: default_signing_env(),
            unsubscribe_mailto: None,
            dashboard_public: false,
        }
    }
}

pub(super) fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
pub(super) fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}
pub(super) fn default_token_env() -> String {
    "EMBUDO_API_TOKEN".into()
}
pub(super) fn default_signing_env() -> String {
    "EMBUDO_SIGNING_KEY".into()
}

/// The `reports:` section: what `embudo report` and the dashboard measure beyond the
/// stages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// How long after an email a move to a later stage counts for it.
    #[serde(default = "default_moved_within")]
    pub moved_within: Span,
    /// The event kind whose months and weeks are the buying windows.
    #[serde(default = "default_buying")]
    pub buying: String,
    #[serde(default)]
    pub conversions: Vec<ConversionSpec>,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            moved_within: default_moved_within(),
            buying: default_buying(),
            conversions: Vec::new(),
        }
    }
}

fn default_moved_within() -> Span {
    Span(chrono::TimeDelta::days(14))
}

fn default_buying() -> String {
    "purchase".into()
}

/// A conversion the funnel names: leads with a `from` who had a `to` within `within`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionSpec {
    pub name: String,
    pub from: ConversionEnd,
    pub to: ConversionEnd,
    #[serde(default = "default_conversion_within")]
    pub within: Span,
}

fn default_conversion_within() -> Span {
    Span(chrono::TimeDelta::days(30))
}

/// One end of a conversion as written: `stage:ID`, `event:KIND`, or a bare name (a
/// stage of the funnel if there is one by that name, else an event kind; the check
/// against the stages resolves it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionEnd(pub crate::store::Occurrence);

impl<'de> Deserialize<'de> for ConversionEnd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::store::Occurrence;
        let s = String::deserialize(d)?;
        let s = s.trim();
        let end = match s.split_once(':') {
            Some(("stage", id)) => Occurrence::Stage(id.trim().to_string()),
            Some(("event", kind)) => Occurrence::Event(kind.trim().to_string()),
            Some((other, _)) => {
                return Err(D::Error::custom(format!(
                    "`{other}:` is not a kind of conversion end; write `stage:ID`, `event:KIND` or a bare name"
                )));
            }
            // Bare: an event until the stages are known (see validate::reports).
            None => Occurrence::Event(s.to_string()),
        };
        if matches!(&end, Occurrence::Stage(x) | Occurrence::Event(x) if x.is_empty()) {
            return Err(D::Error::custom("a conversion end needs a name"));
        }
        Ok(ConversionEnd(end))
    }
}

impl std::fmt::Display for ConversionEnd {
    /// As the user can write it back: `stage:ID` or `event:KIND`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            crate::store::Occurrence::Stage(s) => write!(f, "stage:{s}"),
            crate::store::Occurrence::Event(k) => write!(f, "event:{k}"),
        }
    }
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

pub(super) fn default_database() -> String {
    "sqlite://embudo.db".into()
}
/// The cron forms embudo accepts, for every cron error's help line.
pub const CRON_FORMS: &str = "embudo reads 6 fields with seconds first (\"0 */5 * * * *\": sec min hour day month weekday), 5 fields with minute first (\"*/5 * * * *\"), or 7 fields with a year last (\"0 0 9 1 8 * 2027\"); @hourly, @daily, @weekly, @monthly and @yearly also work";
