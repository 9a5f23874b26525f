//! `embudo check`: the funnel folder's problems, all at once.

use crate::config::{Config, parse_yaml};
use crate::domain::{EmailAddress, Lead, LeadId, Value};
use crate::funnel::FunnelError;
use crate::rules::{Catalog, RuleSet};
use crate::templates::{RenderContext, Templates};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A sample lead for `check` and previews (`templates/_sample.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    attrs: BTreeMap<String, Scalar>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// The sample lead of a funnel folder: `templates/_sample.yaml`, else a made-up one.
pub fn sample_lead(cfg: &Config) -> Result<Lead, String> {
    let path = cfg.templates_dir().join("_sample.yaml");
    let shown = cfg.display_path(&path);
    let sample: Sample = match std::fs::read_to_string(&path) {
        Ok(src) => parse_yaml(&src).map_err(|e| format!("{shown}:{e}"))?,
        Err(_) => Sample {
            id: None,
            email: None,
            name: Some("Ana".into()),
            stage: None,
            tags: vec![],
            attrs: BTreeMap::new(),
            locale: None,
            timezone: None,
        },
    };
    let now = chrono::Utc::now();
    Ok(Lead {
        id: LeadId(sample.id.unwrap_or(1)),
        email: EmailAddress::parse(sample.email.as_deref().unwrap_or("ana@example.com"))
            .map_err(|e| format!("{shown}: email: {e}"))?,
        name: sample.name,
        stage: match sample.stage {
            Some(s) => cfg
                .funnel
                .stage(&s)
                .map_err(|e| format!("{shown}: stage: {e}"))?,
            None => cfg.funnel.initial().clone(),
        },
        tags: sample.tags.into_iter().collect(),
        attrs: sample
            .attrs
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::Bool(b) => Value::Bool(b),
                    Scalar::Int(i) => Value::Int(i),
                    Scalar::Float(f) => Value::Float(f),
                    Scalar::Str(s) => Value::infer(&s),
                };
                (k, v)
            })
            .collect(),
        locale: sample.locale,
        timezone: sample
            .timezone
            .map(|t| crate::config::parse_tz(&t).map_err(|e| format!("{shown}: timezone: {e}")))
            .transpose()?,
        created_at: now,
        stage_entered_at: now,
        unsubscribed_at: None,
    })
}

/// Every problem found in the folder of `config_path`; empty when all is well.
/// A configuration error is returned alone, as `Err`: nothing else can be checked.
pub fn check(config_path: &Path) -> Result<Vec<String>, FunnelError> {
    let cfg = Config::load(config_path)?;
    let mut problems = Vec::new();
    let (t, template_errors) = Templates::load_partial(&cfg.templates_dir(), &cfg.root);
    problems.extend(template_errors.iter().map(|e| e.to_string()));
    let catalog = Catalog {
        stages: cfg.funnel.stages.clone(),
        templates: t.ids(),
    };
    let (_, rule_errors) =
        RuleSet::load(&cfg.rules_dir(), &cfg.root, catalog).map_err(FunnelError::Rules)?;
    problems.extend(rule_errors.iter().map(|e| e.to_string()));
    {
        for c in &cfg.campaigns {
            // The audience is Rhai with the rules' read API: it must compile like a rule.
            let audience = match (&c.audience, &c.audience_file) {
                (Some(src), _) => Some((
                    format!(
                        "{} (campaign `{}` audience)",
                        cfg.display_path(&cfg.path),
                        c.id
                    ),
                    src.clone(),
                )),
                (None, Some(file)) => {
                    let path = cfg.root.join(file);
                    match std::fs::read_to_string(&path) {
                        Ok(src) => Some((cfg.display_path(&path), src)),
                        Err(e) => {
                            problems.push(format!(
                                "{}: campaign `{}`: audience_file {}: {e}",
                                cfg.display_path(&cfg.path),
                                c.id,
                                file.display()
                            ));
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            if let Some(source) = audience {
                let catalog = Catalog {
                    stages: cfg.funnel.stages.clone(),
                    templates: t.ids(),
                };
                let (_, errs) = RuleSet::compile(vec![source], catalog);
                problems.extend(errs.iter().map(|e| e.to_string()));
            }
            if !t.contains(c.template.as_str()) {
                problems.push(format!(
                    "{}: campaign `{}` names template `{}`, which templates/ does not have",
                    cfg.display_path(&cfg.path),
                    c.id,
                    c.template
                ));
            }
        }
        match sample_lead(&cfg) {
            Err(e) => problems.push(e),
            Ok(lead) => {
                let ctx = RenderContext {
                    unsubscribe_url: format!("{}/unsubscribe/SAMPLE", cfg.http.public_url),
                    now: chrono::Utc::now(),
                    campaign: None,
                };
                for id in t.ids() {
                    for locale in t.locales(&id) {
                        let mut l = lead.clone();
                        l.locale = if locale.is_empty() {
                            None
                        } else {
                            Some(locale)
                        };
                        if let Err(e) = t.render(&id, &l, &ctx) {
                            let msg = format!("{e} (rendered against the sample lead)");
                            if !problems.contains(&msg) {
                                problems.push(msg);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(problems)
}
