//! `embudo.yaml` → a typed, validated [`Config`].
//!
//! Reading is lenient and in steps: each section is deserialised on its own
//! ([`parse`]), then checked across keys and ranges ([`validate`]); a bad key is
//! reported at its own line and column and takes its default, so `embudo check` lists
//! every problem at once. [`schema`] is the shape of the file, [`transport`] where
//! email and data go.

mod parse;
pub mod schema;
pub mod transport;
mod validate;

pub use schema::{
    CRON_FORMS, Campaign, CampaignSchedule, ClockTime, ConversionEnd, ConversionSpec, CronExpr,
    Defaults, Http, Limits, Missed, PerLead, QuietHours, Reload, Reports, Schedule, Seed, Smtp,
    Span, Stages, TimeZone, parse_tz,
};
pub use transport::{STARTTLS_HELP, Tls, Transport, is_loopback};

use crate::funnel::yaml::{self, Step};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::path::{Path, PathBuf};

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
    /// The `funnel:` section: the stages, in order.
    pub stages: Stages,
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
    /// What `report` and the dashboard measure beyond the stages.
    pub reports: Reports,
    /// The keys this file sets itself (`limits.quiet_hours`, `smtp.from`,
    /// `campaigns[back-to-school]`…), as opposed to defaults: hot reload refuses a
    /// change that drops one, since a half-saved file drops them all.
    pub set_keys: std::collections::BTreeSet<String>,
}

impl Config {
    /// The campaign with this id, or a message naming the ones there are.
    pub fn campaign(&self, id: &str) -> Result<&Campaign, String> {
        self.campaigns.iter().find(|c| c.id == id).ok_or_else(|| {
            let ids: Vec<&str> = self.campaigns.iter().map(|c| c.id.as_str()).collect();
            format!(
                "no campaign `{id}` in {}; the campaigns are: {}",
                self.display_path(&self.path),
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            )
        })
    }

    /// Reads and validates `path`; `EMBUDO_DATABASE_URL` overrides `database`: the
    /// config, or its first problem.
    pub fn load(path: &Path, now: DateTime<Utc>) -> Result<Config, ConfigError> {
        let (config, problems) = Config::load_all(path, now)?;
        match first_problem(&problems) {
            None => Ok(config),
            Some(e) => Err(e),
        }
    }

    /// Validates the text of a config file that lives at `path` (`now` decides
    /// whether a cron still fires): the config, or its first problem.
    pub fn from_str(
        src: &str,
        path: &Path,
        db_override: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Config, ConfigError> {
        let (config, problems) = Config::from_str_all(src, path, db_override, now);
        match first_problem(&problems) {
            None => Ok(config),
            Some(e) => Err(e),
        }
    }

    /// Reads `path`: the config and every problem in it. Each key is validated on its
    /// own; a key with a bad value is reported at its own line and column and takes
    /// its default, so the rest of the folder can still be checked (`embudo check`).
    pub fn load_all(
        path: &Path,
        now: DateTime<Utc>,
    ) -> Result<(Config, Vec<ConfigError>), ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let db_override = std::env::var("EMBUDO_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        Ok(Config::from_str_all(
            &src,
            path,
            db_override.as_deref(),
            now,
        ))
    }

    /// The config written in `src` with every problem found in it (see [`load_all`]).
    pub fn from_str_all(
        src: &str,
        path: &Path,
        db_override: Option<&str>,
        now: DateTime<Utc>,
    ) -> (Config, Vec<ConfigError>) {
        let root = folder_of(path);
        let mut p = parse::Problems {
            src,
            file: path,
            list: Vec::new(),
        };
        let mut w = parse::read(&mut p);
        validate::stages(&mut p, &mut w.stages);
        let database = validate::database(&mut p, &w.database, db_override, &root);
        let smtp = validate::smtp(&mut p, w.smtp, &root);
        validate::schedule(&mut p, &mut w.schedule, now);
        validate::limits(&mut p, &mut w.limits);
        validate::http(&mut p, &mut w.http);
        validate::defaults(&mut p, &mut w.defaults);
        validate::reports(&mut p, &mut w.reports, &w.stages);
        let campaigns = validate::campaigns(&mut p, w.campaigns, &w.schedule, now);
        let seed = Seed {
            leads: w.seed.leads.map(|p| root.join(p)),
            events: w.seed.events.map(|p| root.join(p)),
        };
        let config = Config {
            path: path.to_path_buf(),
            root,
            stages: w.stages,
            database,
            schedule: w.schedule,
            smtp,
            limits: w.limits,
            defaults: w.defaults,
            http: w.http,
            campaigns,
            seed,
            reload: w.reload,
            reports: w.reports,
            set_keys: w.set_keys,
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

    /// Where the node at `path` is written in the config file (its key's line and
    /// column; the nearest enclosing key's when it is not written).
    pub fn position_at(&self, path: &[Step]) -> (usize, usize) {
        std::fs::read_to_string(&self.path)
            .map(|src| yaml::position_or_parent(&src, path))
            .unwrap_or((1, 1))
    }

    /// The path relative to the config's folder, for messages.
    pub fn display_path(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

/// The first of `problems` as a command reports it: alone, with a note of how many
/// more `embudo check` lists. None when there are none.
pub fn first_problem(problems: &[ConfigError]) -> Option<ConfigError> {
    let more = problems.len().saturating_sub(1);
    match problems.first()? {
        ConfigError::Invalid {
            path,
            line,
            col,
            message,
            hint,
        } => {
            let note =
                format!("{more} more problem(s) in this file: `embudo check` lists them all");
            let hint = match hint {
                _ if more == 0 => hint.clone(),
                Some(h) => Some(format!("{h}\n  note: {note}")),
                None => Some(note),
            };
            Some(ConfigError::Invalid {
                path: path.clone(),
                line: *line,
                col: *col,
                message: message.clone(),
                hint,
            })
        }
        // Reading is not checking: a file that cannot be read is never in the list.
        ConfigError::Read { path, source } => Some(ConfigError::Read {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        }),
    }
}

/// The folder of the config file: relative paths in it start there.
fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// A fixed instant: whether a cron still fires depends on it.
    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn load(src: &str) -> Result<Config, ConfigError> {
        Config::from_str(src, Path::new("/srv/shop/embudo.yaml"), None, now())
    }

    #[test]
    fn an_empty_file_gets_every_default() {
        let c = load("").unwrap();
        assert_eq!(c.stages.stage_list(), "interest, evaluation, customer");
        assert_eq!(c.stages.initial().as_str(), "interest");
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
    fn smtp_connections_default_to_four_and_must_be_between_one_and_sixty_four() {
        assert_eq!(load("").unwrap().smtp.connections, 4);
        assert_eq!(
            load("smtp: { connections: 16 }\n")
                .unwrap()
                .smtp
                .connections,
            16
        );
        for n in [0, 65] {
            let err = load(&format!("smtp: {{ connections: {n} }}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("smtp.connections"), "{err}");
            assert!(err.contains("between 1 and 64"), "{err}");
        }
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
    fn every_bad_key_is_reported_at_its_line_and_takes_its_default() {
        let src = "limits:\n  expire_after: 7 days\n  retry_for: soon\n  daily_capacity: 10\n";
        let (c, problems) =
            Config::from_str_all(src, Path::new("/srv/shop/embudo.yaml"), None, now());
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("/srv/shop/embudo.yaml:2:3: limits.expire_after"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("/srv/shop/embudo.yaml:3:3: limits.retry_for"),
            "{shown:?}"
        );
        assert_eq!(c.limits.daily_capacity, Some(10));
        assert_eq!(c.limits.expire_after.0, TimeDelta::days(7));
        // A command reports the first, with how many more there are.
        let first = load(src).unwrap_err().to_string();
        assert!(
            first.contains("note: 1 more problem(s) in this file"),
            "{first}"
        );
        assert!(first.contains("limits.expire_after"), "{first}");
    }

    #[test]
    fn the_database_override_wins() {
        let c = Config::from_str(
            "database: sqlite://a.db\n",
            Path::new("x/embudo.yaml"),
            Some("sqlite:///tmp/b.db"),
            now(),
        )
        .unwrap();
        assert_eq!(c.database, "sqlite:///tmp/b.db");
    }
}
