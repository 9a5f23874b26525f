//! Hot reload: `embudo run` notices a change to embudo.yaml, rules/ or templates/ and
//! swaps the whole funnel, or rejects the change and keeps the last good version.
//!
//! Changes are found by polling a fingerprint (paths, sizes, modification times)
//! rather than by file-system notifications: polling works the same on every file
//! system (network mounts, containers, editors that replace files), and a change is
//! taken only once the files have stood still for a moment. A change that drops keys
//! the running file sets (quiet hours, `smtp.from`, a campaign…) is refused unless the
//! file says `reload: { allow_removals: true }`: an editor's half-save or a truncated
//! file looks exactly like that.

use crate::funnel::check::check_folder;
use crate::funnel::config::Config;
use crate::funnel::yaml::keys;
use crate::funnel::{Funnel, Loaded};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

/// A digest of everything a reload would read.
pub fn fingerprint(cfg: &Config) -> u64 {
    let mut h = DefaultHasher::new();
    stamp(&cfg.path, &mut h);
    for dir in [cfg.rules_dir(), cfg.templates_dir()] {
        walk(&dir, &mut h);
    }
    h.finish()
}

fn stamp(p: &Path, h: &mut DefaultHasher) {
    p.hash(h);
    if let Ok(m) = std::fs::metadata(p) {
        m.len().hash(h);
        m.modified().ok().hash(h);
    }
}

fn walk(dir: &Path, h: &mut DefaultHasher) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        dir.hash(h);
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, h);
        } else {
            stamp(&p, h);
        }
    }
}

/// Loads the folder again, once, and decides whether that funnel may replace
/// `running`: it must check clean (config, rules, names in rules, campaigns,
/// templates against the sample lead as of `now`) and keep every stage of `running`
/// that leads are in and every template of `running` that an unsent email needs.
/// Each problem is one line with its position.
pub async fn prepare(
    config_path: &Path,
    store: &Store,
    running: &Funnel,
    now: DateTime<Utc>,
) -> Result<Funnel, Vec<String>> {
    let loaded = Loaded::read(config_path, now).map_err(|e| vec![e.to_string()])?;
    // A half-saved file is refused as such first, before its consequences (rules
    // naming stages it no longer lists) are reported one by one.
    refuse_removals(&running.config, &loaded.funnel.config)?;
    if let Some(e) = loaded.config_error() {
        return Err(vec![e.to_string()]);
    }
    let problems = check_folder(&loaded, now);
    if !problems.is_empty() {
        return Err(problems.iter().map(|p| p.to_string()).collect());
    }
    let funnel = loaded.into_funnel().map_err(|e| vec![e.to_string()])?;
    if !funnel.rule_errors.is_empty() {
        return Err(funnel.rule_errors.iter().map(|e| e.to_string()).collect());
    }
    let problems = still_used(store, &funnel, Some(running))
        .await
        .map_err(|e| vec![e.to_string()])?;
    if problems.is_empty() {
        Ok(funnel)
    } else {
        Err(problems)
    }
}

/// Refuses a change that drops keys `running` sets, unless the new file allows it.
fn refuse_removals(running: &Config, new: &Config) -> Result<(), Vec<String>> {
    let removed = removed_keys(running, new);
    if removed.is_empty() || new.reload.allow_removals {
        return Ok(());
    }
    Err(vec![format!(
        "{}: the change removes {} that the running funnel sets; refused as a likely half-saved file. To remove them on purpose, add `reload: {{ allow_removals: true }}` to the file",
        new.display_path(&new.path),
        removed.join(", ")
    )])
}

/// Stages that leads are in, and templates that unsent emails need, which `funnel`
/// does not have. With `running`, only what `running` has counts (a reload may not
/// take it away); without, everything does (at start-up, where it is logged).
pub async fn still_used(
    store: &Store,
    funnel: &Funnel,
    running: Option<&Funnel>,
) -> Result<Vec<String>, crate::store::StoreError> {
    let shown = funnel.config.display_path(&funnel.config.path);
    let mut problems = Vec::new();
    for (stage, n) in store.stages_in_use().await? {
        let taken_away = running.is_none_or(|r| r.config.stages.has(&stage));
        if !funnel.config.stages.has(&stage) && taken_away {
            let (l, c) = funnel.config.position_at(&keys(&["funnel", "stages"]));
            problems.push(format!(
                "{shown}:{l}:{c}: stage `{stage}` is not in funnel.stages but {n} lead(s) are in it; keep it, or move them first (embudo import FILE --update-stage)"
            ));
        }
    }
    for (template, n) in store.pending_templates().await? {
        let taken_away = running.is_none_or(|r| r.templates.contains(&template));
        if !funnel.templates.contains(&template) && taken_away {
            problems.push(format!(
                "templates/{template}.html is missing but {n} unsent email(s) need it; keep it until they are sent, or cancel them (embudo outbox cancel --template {template})"
            ));
        }
    }
    Ok(problems)
}

/// Settings a running daemon cannot change: it keeps the old ones and says so.
/// The keys `running` sets that `new` no longer does.
pub fn removed_keys(running: &Config, new: &Config) -> Vec<String> {
    running
        .set_keys
        .difference(&new.set_keys)
        .filter(|k| k.as_str() != "reload.allow_removals")
        .cloned()
        .collect()
}

/// Puts back into `new` the settings only a restart can change (`database`,
/// `smtp.url`, `http.listen`), as `started` has them; returns the ones that differed.
pub fn keep_restart_settings(started: &Config, new: &mut Config) -> Vec<&'static str> {
    let changed = restart_required(started, new);
    new.database = started.database.clone();
    new.smtp.url = started.smtp.url.clone();
    new.smtp.transport = started.smtp.transport.clone();
    new.http.listen = started.http.listen.clone();
    changed
}

pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.database != new.database {
        out.push("database");
    }
    if old.smtp.url != new.smtp.url {
        out.push("smtp.url");
    }
    if old.http.listen != new.http.listen {
        out.push("http.listen");
    }
    out
}
