//! One lead's evaluation: rules in file-name order, re-run while the stage changes.

use super::api::{Action, Ctx, install_ctx, take_ctx, with_ctx};
use super::{RuleError, RuleSet, sandbox};
use crate::domain::{LeadChanges, LoadedLead};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::panic::AssertUnwindSafe;

/// Passes over the rules for one lead: a stage change re-runs them, at most this often.
pub const MAX_PASSES: usize = 3;

/// What evaluating one lead produced.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub changes: LeadChanges,
    /// Every action that changed something, with the rule that asked for it.
    pub actions: Vec<(String, Action)>,
    /// Rules skipped for this lead, and a note if the stage never settled.
    pub errors: Vec<RuleError>,
    /// The first instant after `now` at which anything these rules read from the
    /// clock may read differently (see [`super::horizon`]); `None`: nothing they read
    /// changes with time alone. Meaningful when the evaluation changed nothing and
    /// had no error: until then, on the same data, it would change nothing again.
    /// Always `None` unless the rule set's `track_horizon` is on.
    pub horizon: Option<DateTime<Utc>>,
}

struct Snapshot {
    lead: crate::domain::Lead,
    sends: usize,
    actions: usize,
    new_sends: usize,
    moves: usize,
}

impl RuleSet {
    /// Runs every rule for one lead at `now`.
    pub fn evaluate(&self, loaded: LoadedLead, now: DateTime<Utc>, default_tz: Tz) -> Evaluation {
        self.evaluate_only(loaded, now, default_tz, None)
    }

    /// Runs the named rules (all when `only` is `None`) for one lead at `now`.
    ///
    /// A panic anywhere in it (a bug, never a rule's fault) ends this lead's evaluation
    /// only: it is logged with the lead and the rule, and nothing of the lead changes.
    pub fn evaluate_only(
        &self,
        loaded: LoadedLead,
        now: DateTime<Utc>,
        default_tz: Tz,
        only: Option<&[String]>,
    ) -> Evaluation {
        let before = loaded.lead.clone();
        sandbox::begin_lead(before.id.0);
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.run_rules(loaded, now, default_tz, only)
        }));
        sandbox::end_rule();
        match run {
            Ok(ev) => ev,
            Err(payload) => {
                let rule = take_ctx().map(|c| c.rule).unwrap_or_default();
                let file = self
                    .rules
                    .iter()
                    .find(|r| r.name == rule)
                    .map(|r| r.file.clone())
                    .unwrap_or_else(|| "rules".to_string());
                let why = super::panic_message(payload.as_ref());
                tracing::error!(lead = before.id.0, file = %file, rule = %rule, panic = %why, "the evaluation of this lead crashed and was abandoned (nothing of it is saved)");
                Evaluation {
                    changes: LeadChanges {
                        before: before.clone(),
                        after: before,
                        moves: Vec::new(),
                        sends: Vec::new(),
                    },
                    actions: Vec::new(),
                    horizon: None,
                    errors: vec![RuleError {
                        file,
                        rule,
                        line: 1,
                        col: 1,
                        message: format!(
                            "internal error while this rule ran ({why}); the lead's evaluation was abandoned and nothing of it saved"
                        ),
                    }],
                }
            }
        }
    }

    /// Installs the context of one lead's evaluation by these rules on this thread.
    fn install(&self, loaded: LoadedLead, now: DateTime<Utc>, default_tz: Tz) {
        let mut ctx = Ctx::new(
            loaded,
            now,
            default_tz,
            self.catalog.clone(),
            String::new(),
            false,
        );
        ctx.track = self.track_horizon;
        install_ctx(ctx);
    }

    fn run_rules(
        &self,
        loaded: LoadedLead,
        now: DateTime<Utc>,
        default_tz: Tz,
        only: Option<&[String]>,
    ) -> Evaluation {
        let before = loaded.lead.clone();
        self.install(loaded, now, default_tz);
        let selected: Vec<_> = self
            .rules
            .iter()
            .filter(|r| only.is_none_or(|names| names.iter().any(|n| n == &r.name)))
            .collect();
        let mut errors: Vec<RuleError> = Vec::new();
        for pass in 1..=MAX_PASSES {
            let moves_at_start = moves();
            for rule in &selected {
                let snap = snapshot(&rule.name);
                let mut scope = sandbox::run_scope(now);
                sandbox::begin_rule(&rule.file, self.time_budget);
                let result = self.engine.run_ast_with_scope(&mut scope, &rule.ast);
                sandbox::end_rule();
                if let Err(e) = result {
                    restore(snap);
                    let err = super::run_error(&rule.file, &rule.name, e);
                    if !errors.iter().any(|x| x.summary_key() == err.summary_key()) {
                        errors.push(err);
                    }
                }
            }
            // Any move re-runs the rules, even one undone later in the same pass: a
            // lead moved forward and back on every tick is a bug to report, not a
            // quiet reset of its `stage_entered_at`.
            if moves() == moves_at_start {
                break;
            }
            if pass == MAX_PASSES {
                let last = with_ctx(|c| Ok(c.moves.last().map(|m| m.2.clone())))
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let rule = last.trim_start_matches("rule:").to_string();
                let file = self
                    .rules
                    .iter()
                    .find(|r| r.name == rule)
                    .map(|r| r.file.clone())
                    .unwrap_or_default();
                errors.push(RuleError {
                    file,
                    rule,
                    line: 1,
                    col: 1,
                    message: format!(
                        "the stage was still changing after {MAX_PASSES} passes over the rules (last move by {last}); check for rules that move a lead back and forth"
                    ),
                });
            }
        }
        let ctx = take_ctx().expect("context installed above");
        Evaluation {
            changes: LeadChanges {
                before,
                after: ctx.lead,
                moves: ctx.moves,
                sends: ctx.new_sends,
            },
            actions: ctx.actions,
            errors,
            horizon: ctx.horizon,
        }
    }
}

fn moves() -> usize {
    with_ctx(|c| Ok(c.moves.len())).unwrap_or_default()
}

fn snapshot(rule: &str) -> Snapshot {
    with_ctx(|c| {
        c.rule = rule.to_string();
        c.moved_in_rule = false;
        Ok(Snapshot {
            lead: c.lead.clone(),
            sends: c.sends.len(),
            actions: c.actions.len(),
            new_sends: c.new_sends.len(),
            moves: c.moves.len(),
        })
    })
    .expect("context installed")
}

fn restore(s: Snapshot) {
    let _ = with_ctx(|c| {
        c.lead = s.lead;
        c.sends.truncate(s.sends);
        c.actions.truncate(s.actions);
        c.new_sends.truncate(s.new_sends);
        c.moves.truncate(s.moves);
        Ok(())
    });
}
