//! Reading a funnel folder, once: embudo.yaml, then templates (their ids are names
//! rules may use), then rules against that catalog, then each campaign's audience.
//!
//! Every reader of a folder goes through [`Loaded::read`]: the daemon and commands
//! ([`Funnel::load`], strict), `embudo check` (which reports everything found),
//! `embudo test` (which runs what compiled) and hot reload (which checks and swaps
//! the very funnel it checked). Reading goes as far as it can: a bad config key takes
//! its default and a broken template or rule is left out, each problem kept beside
//! the funnel built from the rest.

use crate::funnel::config::{Config, ConfigError};
use crate::funnel::templates::{TemplateError, Templates};
use crate::funnel::{Funnel, FunnelError};
use crate::rules::{Audience, Catalog, RuleError, RuleSet};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a campaign's audience is written.
#[derive(Debug)]
pub enum AudienceSource {
    /// Inline in embudo.yaml (`audience: '…'`).
    Inline(String),
    /// In its own file (`audience_file:`), read.
    File { path: PathBuf, src: String },
    /// In its own file, which could not be read.
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A funnel folder as read: the funnel built from what loaded, and every problem.
pub struct Loaded {
    /// Config, compiled rules, templates and audiences: the broken parts left out.
    pub funnel: Funnel,
    /// Problems in embudo.yaml; each bad key took its default in `funnel.config`.
    pub config_problems: Vec<ConfigError>,
    /// Templates that did not compile (left out of `funnel.templates`).
    pub template_errors: Vec<TemplateError>,
    /// Rules in rules/ that did not compile (audiences' are in `funnel.rule_errors`).
    pub rule_errors: Vec<RuleError>,
    /// rules/ could not be read at all: no rule loaded.
    pub rules_unreadable: Option<std::io::Error>,
    /// Each campaign's audience as written, by the campaign's index in the config.
    pub audiences: Vec<(usize, AudienceSource)>,
}

impl Loaded {
    /// Reads the folder of `config_path`; only a config file that cannot be read at
    /// all is `Err`. `now` decides whether a cron still fires.
    pub fn read(config_path: &Path, now: DateTime<Utc>) -> Result<Loaded, ConfigError> {
        let (config, problems) = Config::load_all(config_path, now)?;
        Ok(Loaded::from_config(config, problems))
    }

    /// The rest of the folder of an already read `config` (with its problems).
    pub fn from_config(config: Config, config_problems: Vec<ConfigError>) -> Loaded {
        let (templates, template_errors) =
            Templates::load_partial(&config.templates_dir(), &config.root);
        let catalog = Catalog {
            stages: config.stages.list.clone(),
            templates: templates.ids(),
        };
        let (rules, rule_errors, rules_unreadable) =
            match RuleSet::load(&config.rules_dir(), &config.root, catalog.clone()) {
                Ok((rules, errors)) => (rules, errors, None),
                Err(e) => (RuleSet::compile(Vec::new(), catalog).0, Vec::new(), Some(e)),
            };
        let sources = audience_sources(&config);
        let (compiled, audience_errors) = compile_audiences(&config, &rules, &sources);
        let mut all_errors = rule_errors.clone();
        all_errors.extend(audience_errors);
        Loaded {
            funnel: Funnel {
                config,
                rules,
                templates,
                rule_errors: all_errors,
                audiences: compiled,
            },
            config_problems,
            template_errors,
            rule_errors,
            rules_unreadable,
            audiences: sources,
        }
    }

    /// The config's first problem, as `Config::load` reports it (with how many more
    /// `embudo check` lists); None when embudo.yaml is fine.
    pub fn config_error(&self) -> Option<ConfigError> {
        crate::funnel::config::first_problem(&self.config_problems)
    }

    /// The funnel, when the folder may run: a config without problems, every
    /// template compiled, rules/ and each audience file readable. Rules that do not
    /// compile are left out and stay in `rule_errors` (the others run).
    pub fn into_funnel(self) -> Result<Funnel, FunnelError> {
        if let Some(e) = self.config_error() {
            return Err(FunnelError::Config(e));
        }
        if !self.template_errors.is_empty() {
            return Err(FunnelError::Templates(self.template_errors));
        }
        if let Some(e) = self.rules_unreadable {
            return Err(FunnelError::Rules(e));
        }
        for (_, source) in self.audiences {
            if let AudienceSource::Unreadable { error, .. } = source {
                return Err(FunnelError::Rules(error));
            }
        }
        Ok(self.funnel)
    }
}

/// Each campaign's audience text, read from its file when it has one.
fn audience_sources(config: &Config) -> Vec<(usize, AudienceSource)> {
    let mut out = Vec::new();
    for (i, c) in config.campaigns.iter().enumerate() {
        let source = match (&c.audience, &c.audience_file) {
            (Some(src), _) => AudienceSource::Inline(src.clone()),
            (None, Some(f)) => {
                let path = config.root.join(f);
                match std::fs::read_to_string(&path) {
                    Ok(src) => AudienceSource::File { path, src },
                    Err(error) => AudienceSource::Unreadable { path, error },
                }
            }
            (None, None) => continue,
        };
        out.push((i, source));
    }
    out
}

/// The audiences that compile, by campaign id, and the errors of those that do not.
fn compile_audiences(
    config: &Config,
    rules: &RuleSet,
    sources: &[(usize, AudienceSource)],
) -> (HashMap<String, Audience>, Vec<RuleError>) {
    let mut compiled = HashMap::new();
    let mut errors = Vec::new();
    for (i, source) in sources {
        let c = &config.campaigns[*i];
        let (file, src) = match source {
            AudienceSource::Inline(src) => (inline_label(config, &c.id), src),
            AudienceSource::File { path, src } => (config.display_path(path), src),
            AudienceSource::Unreadable { .. } => continue,
        };
        match rules.compile_audience(&file, src) {
            Ok(a) => {
                compiled.insert(c.id.clone(), a);
            }
            Err(e) => errors.push(e),
        }
    }
    (compiled, errors)
}

/// How an audience written inline in embudo.yaml is named in messages.
pub fn inline_label(config: &Config, campaign: &str) -> String {
    format!(
        "{} (campaign `{campaign}` audience)",
        config.display_path(&config.path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    /// A folder with the given files (relative path, contents).
    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    const CONFIG: &str = "funnel: { stages: [interest, customer] }\ncampaigns:\n  - id: promo\n    schedule: { cron: \"0 0 9 * * *\" }\n    audience: 'lead.stage == \"customer\"'\n    template: hi\n  - id: file\n    schedule: { cron: \"0 0 9 * * *\" }\n    audience_file: rules/audiences/missing.rhai\n    template: hi\n";

    #[test]
    fn one_read_gathers_the_funnel_and_every_problem() {
        let dir = folder(&[
            (
                "embudo.yaml",
                &CONFIG.replace("funnel:", "limits: { rate_per_second: 0 }\nfunnel:"),
            ),
            ("templates/hi.html", "---\nsubject: Hola\n---\n<p>hola</p>"),
            ("templates/bad.html", "<p>no front matter</p>"),
            (
                "rules/10_ok.rhai",
                "if lead.stage == \"interest\" { send(\"hi\"); }",
            ),
            ("rules/20_broken.rhai", "if ( {"),
        ]);
        let loaded = Loaded::read(&dir.path().join("embudo.yaml"), now()).unwrap();
        assert_eq!(loaded.config_problems.len(), 1);
        let first = loaded.config_error().unwrap().to_string();
        assert!(first.contains("rate_per_second"), "{first}");
        assert_eq!(loaded.template_errors.len(), 1);
        assert_eq!(loaded.template_errors[0].file, "templates/bad.html");
        assert_eq!(loaded.rule_errors.len(), 1);
        assert_eq!(loaded.rule_errors[0].file, "rules/20_broken.rhai");
        // What loaded is there: the good rule and template, the inline audience.
        assert_eq!(loaded.funnel.rules.rules.len(), 1);
        assert!(loaded.funnel.templates.contains("hi"));
        assert!(loaded.funnel.audiences.contains_key("promo"));
        assert!(matches!(
            loaded.audiences.as_slice(),
            [
                (0, AudienceSource::Inline(_)),
                (1, AudienceSource::Unreadable { .. })
            ]
        ));
        // Not fit to run: the config's problem comes first.
        match loaded.into_funnel() {
            Err(FunnelError::Config(e)) => assert_eq!(e.to_string(), first),
            other => panic!("expected a config error, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_clean_folder_runs_and_an_unreadable_audience_file_stops_it() {
        let files = [
            ("embudo.yaml", CONFIG),
            ("templates/hi.html", "---\nsubject: Hola\n---\n<p>hola</p>"),
            ("rules/audiences/missing.rhai", "lead.stage == \"interest\""),
        ];
        let dir = folder(&files);
        let funnel = Funnel::load(&dir.path().join("embudo.yaml"), now()).unwrap();
        assert_eq!(funnel.audiences.len(), 2);
        assert!(funnel.rule_errors.is_empty());
        std::fs::remove_file(dir.path().join("rules/audiences/missing.rhai")).unwrap();
        let err = Funnel::load(&dir.path().join("embudo.yaml"), now()).err();
        assert!(matches!(err, Some(FunnelError::Rules(_))), "{err:?}");
    }
}
