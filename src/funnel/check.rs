//! `embudo check`: the funnel folder's problems, all at once, each with its place.

use crate::domain::Lead;
use crate::funnel::FunnelError;
use crate::funnel::config::{Campaign, Config, ConfigError};
use crate::funnel::diagnostic::Diagnostic;
use crate::funnel::leadspec::LeadSpec;
use crate::funnel::load::{AudienceSource, Loaded, inline_label};
use crate::funnel::templates::{RenderContext, Templates};
use crate::funnel::yaml::{self, Step, keys};
use crate::rules::{Catalog, RuleSet};
use chrono::{DateTime, Utc};
use std::path::Path;

/// The sample lead of a funnel folder: `templates/_sample.yaml`, else a made-up one,
/// as of `now`.
pub fn sample_lead(cfg: &Config, now: DateTime<Utc>) -> Result<Lead, String> {
    sample(cfg, now).map_err(|d| d.to_string())
}

fn sample(cfg: &Config, now: DateTime<Utc>) -> Result<Lead, Diagnostic> {
    let path = cfg.templates_dir().join("_sample.yaml");
    let shown = cfg.display_path(&path);
    let spec: LeadSpec = match std::fs::read_to_string(&path) {
        Ok(src) => {
            yaml::parse(&src).map_err(|e| Diagnostic::new(&shown, e.line, e.col, e.message))?
        }
        Err(_) => LeadSpec {
            name: Some("Ana".into()),
            email: Some("ana@example.com".into()),
            ..Default::default()
        },
    };
    spec.to_lead(cfg, now)
        .map_err(|e| Diagnostic::whole(&shown, e))
}

/// A configuration error as a diagnostic: `check` shows it like every other problem.
pub fn config_diagnostic(e: &ConfigError) -> Diagnostic {
    match e {
        ConfigError::Invalid {
            path,
            line,
            col,
            message,
            hint,
        } => {
            let mut d = Diagnostic::new(path.display().to_string(), *line, *col, message);
            if let Ok(src) = std::fs::read_to_string(path) {
                // Underline the key the position names.
                let word = src
                    .lines()
                    .nth(line.saturating_sub(1))
                    .map(|l| {
                        l.chars()
                            .skip(col.saturating_sub(1))
                            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                            .count()
                    })
                    .unwrap_or(1);
                d = d.with_source(src).with_len(word);
            }
            match hint {
                Some(h) => d.with_hint(h),
                None => d,
            }
        }
        ConfigError::Read { path, .. } => {
            Diagnostic::whole(path.display().to_string(), e.to_string())
        }
    }
}

/// What `check` found: the config's own problems, and the rest of the folder's.
#[derive(Debug)]
pub struct Checked {
    /// Problems in embudo.yaml (a configuration error: exit 2).
    pub config: Vec<Diagnostic>,
    /// Problems in rules, templates, campaigns' audiences and templates (exit 1).
    pub folder: Vec<Diagnostic>,
    /// Settings that work but probably not as meant (see [`warnings`]).
    pub warnings: Vec<Diagnostic>,
    /// Things worth knowing (see [`notes`]).
    pub notes: Vec<Diagnostic>,
    /// The config as read (a bad key at its default), for further checks such as
    /// `check --smtp`.
    pub settings: Config,
}

/// Every problem found in the folder of `config_path`, all at once; empty when all is
/// well. A config with problems is still used as far as it goes (a bad key takes its
/// default; an unreadable file gives every default), so rules and templates are
/// checked too. Only a config file or rules/ that cannot be read at all is `Err`.
pub fn check_all(config_path: &Path, now: DateTime<Utc>) -> Result<Checked, FunnelError> {
    let mut loaded = Loaded::read(config_path, now)?;
    if let Some(e) = loaded.rules_unreadable.take() {
        return Err(FunnelError::Rules(e));
    }
    let config: Vec<Diagnostic> = loaded
        .config_problems
        .iter()
        .map(config_diagnostic)
        .collect();
    let mut folder = check_folder(&loaded, now);
    let cfg = loaded.funnel.config;
    if !config.is_empty() && !cfg.set_keys.contains("funnel.stages") {
        // The stages are the defaults only because embudo.yaml did not load: stage
        // names in rules are judged once it does, not against stages nobody wrote.
        folder.retain(|d| !d.message.contains("unknown stage"));
    }
    Ok(Checked {
        config,
        folder,
        warnings: warnings(&cfg),
        notes: notes(&cfg),
        settings: cfg,
    })
}

/// The problems of a loaded folder besides its config's own: templates, rules, the
/// names rules use, campaigns, the SMTP password, and every template rendered
/// against the sample lead as of `now`. Empty when all is well.
pub fn check_folder(loaded: &Loaded, now: DateTime<Utc>) -> Vec<Diagnostic> {
    let cfg = &loaded.funnel.config;
    let t = &loaded.funnel.templates;
    let mut problems: Vec<Diagnostic> = Vec::new();
    problems.extend(loaded.template_errors.iter().map(Diagnostic::from));
    problems.extend(loaded.rule_errors.iter().map(Diagnostic::from));
    problems.extend(literal_names(cfg, t));
    for (i, c) in cfg.campaigns.iter().enumerate() {
        let source = loaded
            .audiences
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, s)| s);
        problems.extend(campaign_problems(cfg, t, i, c, source));
    }
    if cfg.smtp.username.is_some()
        && let Err(e) = cfg.smtp_password()
    {
        let (l, c) = cfg.position_at(&keys(&["smtp", "password_env"]));
        problems.push(
            Diagnostic::new(cfg.display_path(&cfg.path), l, c, e)
                .with_hint("export the variable before `embudo run`, or remove smtp.username"),
        );
    }
    match sample(cfg, now) {
        Err(d) => problems.push(d),
        Ok(lead) => problems.extend(render_all(cfg, t, &lead, now)),
    }
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.to_string()));
    for p in &mut problems {
        attach_source(cfg, p);
    }
    problems
}

/// Gives a problem the text of its file, so its line is shown, and a column when the
/// message names something on that line.
fn attach_source(cfg: &Config, p: &mut Diagnostic) {
    if p.source.is_none()
        && p.line > 0
        && let Ok(src) = std::fs::read_to_string(cfg.root.join(&p.file))
    {
        p.source = Some(src);
    }
    point_at_the_name(p);
}

/// A campaign's problems: its audience (which must compile like a rule, only read,
/// and name stages and templates that exist) and its template.
fn campaign_problems(
    cfg: &Config,
    t: &Templates,
    i: usize,
    c: &Campaign,
    audience: Option<&AudienceSource>,
) -> Vec<Diagnostic> {
    let campaign_key = |key: &str| {
        vec![
            Step::Key("campaigns".into()),
            Step::Index(i),
            Step::Key(key.into()),
        ]
    };
    let mut problems = match audience {
        Some(AudienceSource::Inline(src)) => inline_audience_problems(cfg, t, c, src),
        Some(AudienceSource::File { path, src }) => {
            let shown = cfg.display_path(path);
            let (_, errs) = RuleSet::compile(vec![(shown.clone(), src.clone())], catalog(cfg, t));
            let mut out: Vec<Diagnostic> = errs.iter().map(Diagnostic::from).collect();
            let place = |line: usize, col: usize, message: String| {
                Diagnostic::new(shown.clone(), line, col, message)
            };
            out.extend(audience_problems(cfg, t, src, &c.id, &place));
            out
        }
        Some(AudienceSource::Unreadable { error, .. }) => {
            let (l, col) = cfg.position_at(&campaign_key("audience_file"));
            let file = c.audience_file.as_deref().unwrap_or(Path::new(""));
            vec![Diagnostic::new(
                cfg.display_path(&cfg.path),
                l,
                col,
                format!(
                    "campaign `{}`: audience_file {}: {error}",
                    c.id,
                    file.display()
                ),
            )]
        }
        None => Vec::new(),
    };
    if !t.contains(c.template.as_str()) {
        let (l, col) = cfg.position_at(&campaign_key("template"));
        problems.push(
            Diagnostic::new(
                cfg.display_path(&cfg.path),
                l,
                col,
                format!(
                    "campaign `{}` names template `{}`, which templates/ does not have",
                    c.id, c.template
                ),
            )
            .with_len("template".len())
            .with_hint(template_hint(t, c.template.as_str())),
        );
    }
    problems
}

/// The problems of an audience written inline in embudo.yaml, placed where it is
/// written there (or in the audience's own text when that cannot be found).
fn inline_audience_problems(
    cfg: &Config,
    t: &Templates,
    c: &Campaign,
    src: &str,
) -> Vec<Diagnostic> {
    let label = inline_label(cfg, &c.id);
    let (_, errs) = RuleSet::compile(vec![(label.clone(), src.to_string())], catalog(cfg, t));
    // Positions inside the audience string, moved to where it is written.
    let at = inline_at(cfg, &c.id, src);
    let place = |line: usize, col: usize, message: String| match at {
        Some((l, c0)) => Diagnostic::new(
            cfg.display_path(&cfg.path),
            l + line.saturating_sub(1),
            if line <= 1 {
                c0 + col.saturating_sub(1)
            } else {
                col
            },
            message,
        ),
        None => Diagnostic::new(label.clone(), line, col, message).with_source(src.to_string()),
    };
    let mut out: Vec<Diagnostic> = errs
        .iter()
        .map(|e| {
            place(
                e.line,
                e.col,
                format!("campaign `{}` audience: {}", c.id, e.message),
            )
        })
        .collect();
    out.extend(audience_problems(cfg, t, src, &c.id, &place));
    out
}

/// The names an audience may use: the funnel's stages and templates.
fn catalog(cfg: &Config, t: &Templates) -> Catalog {
    Catalog {
        stages: cfg.stages.list.clone(),
        templates: t.ids(),
    }
}

/// Settings that work but probably not as meant: shown by `check`, which still passes.
pub fn warnings(cfg: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let file = cfg.display_path(&cfg.path);
    let src = std::fs::read_to_string(&cfg.path).unwrap_or_default();
    if let crate::funnel::config::Transport::Smtp {
        tls: tls @ (crate::funnel::config::Tls::None | crate::funnel::config::Tls::Opportunistic),
        plain_auth: false,
        ..
    } = cfg.smtp.transport
        && cfg.smtp.username.is_some()
    {
        let (l, c) = cfg.position_at(&keys(&["smtp", "url"]));
        out.push(
            Diagnostic::new(
                &file,
                l,
                c,
                format!(
                    "smtp.username is set but smtp.url says tls={}: embudo refuses to send the password over a connection without TLS, so {}",
                    if tls == crate::funnel::config::Tls::None { "none" } else { "opportunistic" },
                    if tls == crate::funnel::config::Tls::None {
                        "nothing will be sent"
                    } else {
                        "nothing will be sent to a server that does not offer STARTTLS"
                    }
                ),
            )
            .with_hint("use ?tls=required (the default); for a server on this machine only, add &plain_auth=loopback")
            .with_source(src.clone()),
        );
    }
    if let Some(p) = &cfg.limits.per_lead
        && cfg.limits.expire_after.0 <= p.within.0
    {
        let (l, c) = cfg.position_at(&keys(&["limits", "expire_after"]));
        out.push(
            Diagnostic::new(
                &file,
                l,
                c,
                format!(
                    "limits.expire_after ({}) is not longer than per_lead.within ({}): an email the per-lead cap holds, or one quiet hours delay after that, can expire before it goes",
                    crate::domain::time::format_duration(cfg.limits.expire_after.0),
                    crate::domain::time::format_duration(p.within.0)
                ),
            )
            .with_hint("make expire_after longer than per_lead.within, e.g. within: 7d and expire_after: 10d")
            .with_source(src.clone()),
        );
    }
    out
}

/// Things worth knowing about a setting that is fine as written: shown by `check`.
pub fn notes(cfg: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let crate::funnel::config::Transport::Smtp {
        tls: crate::funnel::config::Tls::Required,
        ..
    } = cfg.smtp.transport
        && cfg.smtp.url.starts_with("smtp://")
        && !cfg.smtp.url.contains("tls=")
    {
        let (l, c) = cfg.position_at(&keys(&["smtp", "url"]));
        out.push(
            Diagnostic::new(
                cfg.display_path(&cfg.path),
                l,
                c,
                format!(
                    "smtp.url `{}` has no ?tls=, so STARTTLS is required: embudo sends nothing to a server that does not offer it",
                    cfg.smtp.url
                ),
            )
            .with_hint(crate::funnel::config::STARTTLS_HELP)
            .with_source(std::fs::read_to_string(&cfg.path).unwrap_or_default()),
        );
    }
    out
}

/// Where an inline audience's text starts in embudo.yaml (1-based line and column),
/// when it is written on one line after `audience:`.
fn inline_at(cfg: &Config, campaign: &str, src: &str) -> Option<(usize, usize)> {
    let yaml = std::fs::read_to_string(&cfg.path).ok()?;
    let first = src.lines().next()?.trim();
    if first.is_empty() {
        return None;
    }
    let mut in_campaign = false;
    for (i, line) in yaml.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ");
        if let Some(id) = t.strip_prefix("id:") {
            in_campaign = id.trim().trim_matches(|c| c == '"' || c == '\'') == campaign;
        }
        if in_campaign
            && t.starts_with("audience:")
            && let Some(p) = line.find(first)
        {
            return Some((i + 1, line[..p].chars().count() + 1));
        }
    }
    None
}

/// An audience reads: actions are errors, and the stages and templates it names must
/// exist.
fn audience_problems(
    cfg: &Config,
    t: &Templates,
    src: &str,
    campaign: &str,
    place: &dyn Fn(usize, usize, String) -> Diagnostic,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (name, line, col) in crate::rules::action_calls(src) {
        out.push(
            place(
                line,
                col,
                format!(
                    "`{name}` in the audience of campaign `{campaign}`: an audience only reads"
                ),
            )
            .with_len(name.len())
            .with_hint("an audience gives true or false; the campaign itself sends its template"),
        );
    }
    out.extend(unknown_names(cfg, t, src, place));
    out
}

/// The stage and template names written literally in `src` that the folder lacks.
fn unknown_names(
    cfg: &Config,
    t: &Templates,
    src: &str,
    place: &dyn Fn(usize, usize, String) -> Diagnostic,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (kind, name, line, col) in crate::rules::literal_names(src) {
        let known = if kind == "stage" {
            cfg.stages.has(&name)
        } else {
            t.contains(&name)
        };
        if !known {
            let hint = if kind == "stage" {
                let stages = cfg.stages.list.iter().map(|s| s.as_str());
                match crate::funnel::diagnostic::did_you_mean(&name, stages) {
                    Some(d) => format!("the funnel's stages are: {}; {d}", cfg.stages.stage_list()),
                    None => format!("the funnel's stages are: {}", cfg.stages.stage_list()),
                }
            } else {
                template_hint(t, &name)
            };
            out.push(
                place(line, col, format!("unknown {kind} `{name}`"))
                    .with_len(name.chars().count() + 2)
                    .with_hint(hint),
            );
        }
    }
    out
}

/// The help for a template name templates/ lacks: the near one, else what to add.
fn template_hint(t: &Templates, name: &str) -> String {
    let ids = t.ids();
    match crate::funnel::diagnostic::did_you_mean(name, ids.iter().map(|s| s.as_str())) {
        Some(d) => format!("add templates/{name}.html, or {d}"),
        None => format!("add templates/{name}.html"),
    }
}

/// Stage and template names written literally in rules must exist: a typo is found
/// before a lead meets it.
fn literal_names(cfg: &Config, t: &Templates) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(cfg.rules_dir()) else {
        return out;
    };
    let mut files: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    for f in files {
        let Ok(src) = std::fs::read_to_string(&f) else {
            continue;
        };
        let shown = cfg.display_path(&f);
        let place = |line: usize, col: usize, message: String| {
            Diagnostic::new(shown.clone(), line, col, message)
        };
        out.extend(unknown_names(cfg, t, &src, &place));
    }
    out
}

/// Every template in every locale, rendered against the sample lead.
fn render_all(cfg: &Config, t: &Templates, lead: &Lead, now: DateTime<Utc>) -> Vec<Diagnostic> {
    let ctx = RenderContext {
        unsubscribe_url: format!("{}/unsubscribe/SAMPLE", cfg.http.public_url),
        now,
        campaign: None,
    };
    let sample = if cfg.templates_dir().join("_sample.yaml").exists() {
        "the sample lead (templates/_sample.yaml)"
    } else {
        "a made-up sample lead (write templates/_sample.yaml to choose one)"
    };
    let hint = format!(
        "rendered against {sample}; every variable must be defined, or tested with `is defined`"
    );
    let mut out = Vec::new();
    for id in t.ids() {
        for locale in t.locales(&id) {
            let mut l = lead.clone();
            l.locale = (!locale.is_empty()).then_some(locale);
            if let Err(e) = t.render(&id, &l, &ctx) {
                out.push(Diagnostic::from(&e).with_hint(hint.clone()));
            }
        }
    }
    out
}

/// A template error knows its line, not its column: when the message names something
/// in backticks (`lead.nmae` is undefined) that the line contains, point at it.
fn point_at_the_name(d: &mut Diagnostic) {
    if d.col > 0 || d.line == 0 {
        return;
    }
    let Some(line) = d.source.as_deref().and_then(|s| s.lines().nth(d.line - 1)) else {
        return;
    };
    let name = d.message.split('`').nth(1).filter(|n| !n.is_empty());
    if let Some(name) = name
        && let Some(at) = line.find(name)
    {
        d.col = line[..at].chars().count() + 1;
        d.len = name.chars().count();
    }
}
