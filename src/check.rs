//! `embudo check`: the funnel folder's problems, all at once.

use crate::config::{Config, parse_yaml};
use crate::domain::Lead;
use crate::funnel::FunnelError;
use crate::leadspec::LeadSpec;
use crate::rules::{Catalog, RuleSet};
use crate::templates::{RenderContext, Templates};
use std::path::Path;

/// The sample lead of a funnel folder: `templates/_sample.yaml`, else a made-up one.
pub fn sample_lead(cfg: &Config) -> Result<Lead, String> {
    let path = cfg.templates_dir().join("_sample.yaml");
    let shown = cfg.display_path(&path);
    let spec: LeadSpec = match std::fs::read_to_string(&path) {
        Ok(src) => parse_yaml(&src).map_err(|e| format!("{shown}:{e}"))?,
        Err(_) => LeadSpec {
            name: Some("Ana".into()),
            email: Some("ana@example.com".into()),
            ..Default::default()
        },
    };
    spec.to_lead(cfg, chrono::Utc::now())
        .map_err(|e| format!("{shown}: {e}"))
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
    // Names written literally in rules must exist: a typo is found before a lead meets it.
    if let Ok(rd) = std::fs::read_dir(cfg.rules_dir()) {
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
            .collect();
        files.sort();
        for f in files {
            let Ok(src) = std::fs::read_to_string(&f) else {
                continue;
            };
            for (kind, name, line, col) in crate::rules::literal_names(&src) {
                let known = if kind == "stage" {
                    cfg.funnel.has(&name)
                } else {
                    t.contains(&name)
                };
                if !known {
                    let hint = if kind == "stage" {
                        format!("the funnel's stages are: {}", cfg.funnel.stage_list())
                    } else {
                        format!("add templates/{name}.html")
                    };
                    problems.push(format!(
                        "{}:{line}:{col}: unknown {kind} `{name}`; {hint}",
                        cfg.display_path(&f)
                    ));
                }
            }
        }
    }
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
