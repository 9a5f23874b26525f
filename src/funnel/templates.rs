//! Email templates: `templates/<id>[.<locale>].html|txt` with YAML front matter,
//! rendered by minijinja with strict undefined.
//!
//! Files starting with `_` are not emails: `_sample.yaml` is the sample lead, and
//! `_*.html` are partials for `{% include %}` / `{% extends %}`.

use crate::domain::{Lead, Value};
use crate::funnel::locale::check_locale;
use crate::funnel::yaml;
use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A template problem, with the file and line to fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl From<&TemplateError> for crate::funnel::diagnostic::Diagnostic {
    fn from(e: &TemplateError) -> Self {
        crate::funnel::diagnostic::Diagnostic::new(&e.file, e.line, 0, &e.message)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    pub subject: String,
    /// Receipts: exempt from caps and quiet hours, never from suppression.
    #[serde(default)]
    pub transactional: bool,
    #[serde(default)]
    pub preheader: Option<String>,
}

/// One locale's files of a template.
#[derive(Debug, Clone)]
struct Variant {
    html: String,
    html_file: String,
    /// Lines before the body (front matter), added to body error lines.
    offset: usize,
    front: FrontMatter,
    txt: Option<(String, String)>,
}

/// An email ready to address: what a template rendered for one lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub transactional: bool,
}

/// What a template sees besides the lead.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    pub unsubscribe_url: String,
    pub now: chrono::DateTime<chrono::Utc>,
    pub campaign: Option<String>,
}

/// Every template of a funnel folder, compiled.
pub struct Templates {
    env: Environment<'static>,
    /// id → locale (lower-case, "" for the default file) → files.
    entries: BTreeMap<String, BTreeMap<String, Variant>>,
}

/// Splits `edu-welcome.es-MX` into (`edu-welcome`, `es-mx`).
fn split_locale(stem: &str) -> (&str, String) {
    if let Some((id, loc)) = stem.rsplit_once('.')
        && check_locale(loc).is_ok()
    {
        return (id, loc.to_ascii_lowercase());
    }
    (stem, String::new())
}

/// Splits front matter from a body; returns (yaml, body, lines before the body).
fn split_front_matter(src: &str) -> Option<(&str, &str, usize)> {
    let rest = src
        .strip_prefix("---\n")
        .or_else(|| src.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return Some((yaml, body, i + 2));
        }
        offset += line.len();
    }
    None
}

impl Templates {
    /// Reads and compiles `dir`. Every problem is returned, not just the first.
    pub fn load(dir: &Path, display_root: &Path) -> Result<Templates, Vec<TemplateError>> {
        let (t, errors) = Templates::load_partial(dir, display_root);
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    /// Reads and compiles what it can of `dir`, with every problem found: for `check`,
    /// which renders the good templates even when others are broken.
    pub fn load_partial(dir: &Path, display_root: &Path) -> (Templates, Vec<TemplateError>) {
        let shown = |p: &Path| {
            p.strip_prefix(display_root)
                .unwrap_or(p)
                .display()
                .to_string()
        };
        let mut files: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                let (t, _) = Templates::from_sources_partial(Vec::new());
                return (
                    t,
                    vec![TemplateError {
                        file: shown(dir),
                        line: 0,
                        message: e.to_string(),
                    }],
                );
            }
        };
        files.sort();
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for p in files {
            match std::fs::read_to_string(&p) {
                Ok(s) => sources.push((shown(&p), s)),
                Err(e) => errors.push(TemplateError {
                    file: shown(&p),
                    line: 0,
                    message: e.to_string(),
                }),
            }
        }
        let (t, mut more) = Templates::from_sources_partial(sources);
        errors.append(&mut more);
        (t, errors)
    }

    /// Compiles templates given as (path under the folder, source).
    pub fn from_sources(sources: Vec<(String, String)>) -> Result<Templates, Vec<TemplateError>> {
        let (t, errors) = Templates::from_sources_partial(sources);
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    /// Compiles what it can; the broken templates are left out and reported.
    pub fn from_sources_partial(sources: Vec<(String, String)>) -> (Templates, Vec<TemplateError>) {
        let mut b = Builder::new();
        for (file, src) in sources {
            b.add(file, src);
        }
        b.finish()
    }

    pub fn ids(&self) -> BTreeSet<String> {
        self.entries.keys().cloned().collect()
    }

    /// Whether `id` is a receipt (`transactional: true` in its default file).
    pub fn is_transactional(&self, id: &str) -> bool {
        self.variant(id, None)
            .is_some_and(|v| v.front.transactional)
    }

    /// The locales `id` has files for ("" is the default file).
    pub fn locales(&self, id: &str) -> Vec<String> {
        self.entries
            .get(id)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// The files of `id` for `locale`: `xx-YY`, then `xx`, then the default.
    fn variant(&self, id: &str, locale: Option<&str>) -> Option<&Variant> {
        let v = self.entries.get(id)?;
        let loc = locale.unwrap_or("").to_ascii_lowercase();
        let lang = loc.split('-').next().unwrap_or("").to_string();
        v.get(&loc).or_else(|| v.get(&lang)).or_else(|| v.get(""))
    }

    /// Renders `id` for `lead` in the lead's locale. A panic while rendering (a bug,
    /// never the template's fault) is this render's error, not the caller's crash.
    pub fn render(
        &self,
        id: &str,
        lead: &Lead,
        ctx: &RenderContext,
    ) -> Result<Rendered, TemplateError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.render_unguarded(id, lead, ctx)
        }))
        .unwrap_or_else(|payload| {
            let why = crate::rules::panic_message(payload.as_ref());
            tracing::error!(lead = lead.id.0, template = id, panic = %why, "rendering crashed");
            Err(TemplateError {
                file: format!("templates/{id}.html"),
                line: 0,
                message: format!(
                    "internal error while rendering for lead {} ({why})",
                    lead.id.0
                ),
            })
        })
    }

    fn render_unguarded(
        &self,
        id: &str,
        lead: &Lead,
        ctx: &RenderContext,
    ) -> Result<Rendered, TemplateError> {
        let variant = self
            .variant(id, lead.locale.as_deref())
            .ok_or_else(|| TemplateError {
                file: format!("templates/{id}.html"),
                line: 0,
                message: format!("unknown template `{id}`"),
            })?;
        let value = context(id, lead, ctx);
        let run = |name: &str, file: &str, offset: usize| -> Result<String, TemplateError> {
            let t = self.env.get_template(name).map_err(|e| TemplateError {
                file: file.into(),
                line: 0,
                message: e.to_string(),
            })?;
            t.render(&value).map_err(|e| TemplateError {
                file: file.into(),
                line: e.line().map(|l| l + offset).unwrap_or(0),
                message: e
                    .detail()
                    .map(|d| format!("{}: {d}", e.kind()))
                    .unwrap_or_else(|| e.kind().to_string()),
            })
        };
        let file = &variant.html_file;
        let subject = run(&format!("{}#subject", variant.html), file, 1)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut html = run(&variant.html, file, variant.offset)?;
        let preheader = run(&format!("{}#preheader", variant.html), file, 1)?;
        let text = match &variant.txt {
            Some((name, txt_file)) => run(name, txt_file, 0)?,
            None => crate::funnel::plaintext::html_to_text(&html),
        };
        if !preheader.trim().is_empty() {
            html = format!(
                "<div style=\"display:none;max-height:0;overflow:hidden\">{}</div>\n{html}",
                escape_html(preheader.trim())
            );
        }
        Ok(Rendered {
            subject,
            html,
            text,
            transactional: variant.front.transactional,
        })
    }
}

/// Templates being compiled: each file added on its own, then text parts matched to
/// their HTML and every id checked for a default file.
struct Builder {
    env: Environment<'static>,
    entries: BTreeMap<String, BTreeMap<String, Variant>>,
    /// Text parts compiled: (id, locale, file), matched to their HTML at the end.
    texts: Vec<(String, String, String)>,
    errors: Vec<TemplateError>,
}

impl Builder {
    fn new() -> Builder {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        Builder {
            env,
            entries: BTreeMap::new(),
            texts: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// One file of the folder: a partial (`_*.html|txt`), an email's HTML or its text.
    fn add(&mut self, file: String, src: String) {
        let name = Path::new(&file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((stem, ext)) = name.rsplit_once('.') else {
            return;
        };
        if name.starts_with('_') {
            if (ext == "html" || ext == "txt")
                && let Err(e) = self.env.add_template_owned(name.clone(), src)
            {
                self.errors.push(compile_error(&file, 0, e));
            }
            return;
        }
        let (id, locale) = split_locale(stem);
        if let Err(m) = crate::domain::ids::check_name("template", id) {
            self.errors.push(TemplateError {
                file,
                line: 1,
                message: m,
            });
            return;
        }
        match ext {
            "html" => self.add_html(id, locale, file, &src),
            "txt" => {
                let n = format!("{id}.{locale}.txt");
                match self.env.add_template_owned(n, src) {
                    Ok(()) => self.texts.push((id.to_string(), locale, file)),
                    Err(e) => self.errors.push(compile_error(&file, 0, e)),
                }
            }
            _ => {}
        }
    }

    /// An email's HTML file: front matter, then body, subject and preheader compiled.
    fn add_html(&mut self, id: &str, locale: String, file: String, src: &str) {
        let Some((front_yaml, body, offset)) = split_front_matter(src) else {
            self.errors.push(TemplateError {
                file,
                line: 1,
                message:
                    "no front matter: start the file with `---`, a line `subject: \"…\"`, and `---`"
                        .into(),
            });
            return;
        };
        let front: FrontMatter = match yaml::parse(front_yaml) {
            Ok(f) => f,
            Err(e) => {
                self.errors.push(TemplateError {
                    file,
                    line: e.line + 1,
                    message: format!("front matter: {}", e.message),
                });
                return;
            }
        };
        let html_name = format!("{id}.{locale}.html");
        let mut ok = true;
        for (n, s, off) in [
            (html_name.clone(), body.to_string(), offset),
            (format!("{html_name}#subject"), front.subject.clone(), 1),
            (
                format!("{html_name}#preheader"),
                front.preheader.clone().unwrap_or_default(),
                1,
            ),
        ] {
            if let Err(e) = self.env.add_template_owned(n, s) {
                self.errors.push(compile_error(&file, off, e));
                ok = false;
            }
        }
        if ok {
            self.entries.entry(id.to_string()).or_default().insert(
                locale,
                Variant {
                    html: html_name,
                    html_file: file,
                    offset,
                    front,
                    txt: None,
                },
            );
        }
    }

    /// Each text part joined to its HTML; then every template must have a default
    /// file to fall back on.
    fn finish(mut self) -> (Templates, Vec<TemplateError>) {
        for (id, locale, file) in std::mem::take(&mut self.texts) {
            match self.entries.get_mut(&id).and_then(|m| m.get_mut(&locale)) {
                Some(v) => v.txt = Some((format!("{id}.{locale}.txt"), file)),
                None => self.errors.push(TemplateError {
                    file,
                    line: 1,
                    message: format!(
                        "a text part without its HTML template; add templates/{id}{}.html",
                        if locale.is_empty() {
                            String::new()
                        } else {
                            format!(".{locale}")
                        }
                    ),
                }),
            }
        }
        for (id, variants) in &self.entries {
            if !variants.contains_key("") {
                let any = variants
                    .values()
                    .next()
                    .map(|v| v.html_file.clone())
                    .unwrap_or_default();
                self.errors.push(TemplateError {
                    file: any,
                    line: 1,
                    message: format!("template `{id}` has locale variants but no default templates/{id}.html to fall back on"),
                });
            }
        }
        let templates = Templates {
            env: self.env,
            entries: self.entries,
        };
        (templates, self.errors)
    }
}

/// A minijinja compile error at its line in `file` (`offset` lines before the body).
fn compile_error(file: &str, offset: usize, e: minijinja::Error) -> TemplateError {
    TemplateError {
        file: file.to_string(),
        line: e.line().map(|l| l + offset).unwrap_or(offset.max(1)),
        message: e
            .detail()
            .map(|d| format!("{}: {d}", e.kind()))
            .unwrap_or_else(|| e.kind().to_string()),
    }
}

/// The variables a template sees (see the contract's "Template front matter").
/// `unsubscribe_url` is ours and already safe in an attribute: it is not escaped.
fn context(id: &str, lead: &Lead, ctx: &RenderContext) -> minijinja::Value {
    let attrs: serde_json::Map<String, serde_json::Value> = lead
        .attrs
        .iter()
        .map(|(k, v)| (k.clone(), json_of(v)))
        .collect();
    let lead = serde_json::json!({
        "id": lead.id.0,
        "email": lead.email.as_str(),
        "name": lead.name.clone().unwrap_or_default(),
        "stage": lead.stage.as_str(),
        "tags": lead.tags.iter().collect::<Vec<_>>(),
        "attrs": attrs,
        "locale": lead.locale.clone().unwrap_or_default(),
        "timezone": lead.timezone.map(|t| t.name().to_string()).unwrap_or_default(),
    });
    minijinja::context! {
        lead => minijinja::value::Serde(lead),
        unsubscribe_url => minijinja::Value::from_safe_string(escape_html(&ctx.unsubscribe_url)),
        now => ctx.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        template => id,
        campaign => ctx.campaign.clone().unwrap_or_default(),
    }
}

fn json_of(v: &Value) -> serde_json::Value {
    match v {
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Bool(b) => (*b).into(),
        other => other.to_string().into(),
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The character references minijinja's HTML escaping writes, back to text: for
/// reading an `href` back out of rendered HTML (the text part goes through
/// [`crate::funnel::plaintext`], which decodes every reference).
pub(crate) fn decode_entities(s: &str) -> String {
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&euro;", "€")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, LeadId, StageId};

    fn lead(locale: Option<&str>) -> Lead {
        let now = "2026-06-01T12:00:00Z".parse().unwrap();
        Lead {
            id: LeadId(7),
            email: EmailAddress::parse("ana@example.com").unwrap(),
            name: Some("Ana".into()),
            stage: StageId::parse("interest").unwrap(),
            tags: ["school".to_string()].into_iter().collect(),
            attrs: [("segment".to_string(), Value::Str("colegio".into()))]
                .into_iter()
                .collect(),
            locale: locale.map(str::to_string),
            timezone: None,
            created_at: now,
            stage_entered_at: now,
            unsubscribed_at: None,
        }
    }

    fn set(files: &[(&str, &str)]) -> Result<Templates, Vec<TemplateError>> {
        Templates::from_sources(
            files
                .iter()
                .map(|(a, b)| (format!("templates/{a}"), b.to_string()))
                .collect(),
        )
    }

    fn ctx() -> RenderContext {
        RenderContext {
            unsubscribe_url: "https://x.example/u/t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn renders_subject_html_and_derived_text() {
        let t = set(&[(
            "hi.html",
            "---\nsubject: \"{{ lead.name }}, hola\"\n---\n<h1>Hola {{ lead.name }} &amp; co</h1>\n<p>Mira <a href=\"https://t.example/m\">mochilas</a>.</p><ul><li>uno</li><li>dos</li></ul>\n<p><a href=\"{{ unsubscribe_url }}\">Baja</a></p>",
        )])
        .unwrap();
        let r = t.render("hi", &lead(None), &ctx()).unwrap();
        assert_eq!(r.subject, "Ana, hola");
        assert!(r.html.contains("Hola Ana &amp; co"));
        assert_eq!(
            r.text,
            "Hola Ana & co\n\nMira mochilas (https://t.example/m).\n\n- uno\n- dos\n\nBaja (https://x.example/u/t)\n"
        );
    }

    #[test]
    fn locale_falls_back_from_region_to_language_to_default() {
        let t = set(&[
            ("hi.html", "---\nsubject: Hola\n---\nes"),
            ("hi.en.html", "---\nsubject: Hello\n---\nen"),
            ("hi.en-GB.html", "---\nsubject: Hello mate\n---\ngb"),
            ("hi.en.txt", "plain en"),
        ])
        .unwrap();
        assert_eq!(
            t.render("hi", &lead(Some("en-US")), &ctx())
                .unwrap()
                .subject,
            "Hello"
        );
        assert_eq!(
            t.render("hi", &lead(Some("en-US")), &ctx()).unwrap().text,
            "plain en"
        );
        assert_eq!(
            t.render("hi", &lead(Some("en-GB")), &ctx())
                .unwrap()
                .subject,
            "Hello mate"
        );
        assert_eq!(
            t.render("hi", &lead(Some("fr")), &ctx()).unwrap().subject,
            "Hola"
        );
        assert_eq!(t.render("hi", &lead(None), &ctx()).unwrap().subject, "Hola");
    }

    #[test]
    fn undefined_variables_are_errors_with_the_line() {
        let t = set(&[(
            "hi.html",
            "---\nsubject: Hola\n---\n<p>ok</p>\n<p>{{ lead.attrs.missing }}</p>",
        )])
        .unwrap();
        let e = t.render("hi", &lead(None), &ctx()).unwrap_err();
        assert_eq!(e.file, "templates/hi.html");
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("undefined"), "{e}");
        // `is defined` works under strict mode.
        let t = set(&[("hi.html", "---\nsubject: Hola\n---\n{% if lead.attrs.missing is defined %}x{% else %}y{% endif %}")]).unwrap();
        assert_eq!(t.render("hi", &lead(None), &ctx()).unwrap().html, "y");
    }

    #[test]
    fn missing_front_matter_or_subject_is_reported_per_file() {
        let errs = set(&[
            ("a.html", "<p>no front</p>"),
            ("b.html", "---\ntitle: x\n---\n"),
            ("c.html", "---\nsubject: ok\n---\n{% if %}"),
        ])
        .err()
        .unwrap();
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            all[0].starts_with("templates/a.html:1: no front matter"),
            "{all:?}"
        );
        assert!(
            all[1].starts_with("templates/b.html:2: front matter: unknown field `title`"),
            "{all:?}"
        );
        assert!(all[2].starts_with("templates/c.html:4:"), "{all:?}");
    }

    #[test]
    fn preheader_and_transactional_front_matter() {
        let t = set(&[("r.html", "---\nsubject: Recibo\ntransactional: true\npreheader: \"Gracias {{ lead.name }}\"\n---\n<p>x</p>")]).unwrap();
        let r = t.render("r", &lead(None), &ctx()).unwrap();
        assert!(r.transactional);
        assert!(r.html.starts_with(
            "<div style=\"display:none;max-height:0;overflow:hidden\">Gracias Ana</div>"
        ));
    }
}
