//! Campaign audiences: a Rhai expression (or file) with the rules' read API that says
//! whether a lead is in. Same engine, same sandbox, no actions.

use super::api::{Ctx, install_ctx, take_ctx};
use super::{RuleError, RuleSet, sandbox};
use crate::domain::LoadedLead;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rhai::{AST, Dynamic};
use std::panic::AssertUnwindSafe;

/// A compiled audience.
pub struct Audience {
    /// Where it is written: embudo.yaml (campaign `x` audience) or its file.
    pub file: String,
    ast: AST,
}

impl RuleSet {
    /// Compiles an audience with this rule set's engine.
    pub fn compile_audience(&self, file: &str, src: &str) -> Result<Audience, RuleError> {
        self.engine
            .compile_with_scope(&sandbox::compile_scope(), src)
            .map(|ast| Audience {
                file: file.to_string(),
                ast,
            })
            .map_err(|e| RuleError {
                file: file.to_string(),
                rule: file.to_string(),
                line: e.1.line().unwrap_or(1),
                col: e.1.position().unwrap_or(1),
                message: e.0.to_string(),
            })
    }

    /// Whether the lead is in the audience at `now`. An audience that does not give
    /// `true` or `false` is an error, not a silent "no"; so is one that overflows, runs
    /// away, or crashes (that lead is left out, the others are judged).
    pub fn audience_matches(
        &self,
        audience: &Audience,
        loaded: LoadedLead,
        now: DateTime<Utc>,
        default_tz: Tz,
    ) -> Result<bool, RuleError> {
        let lead = loaded.lead.id.0;
        sandbox::begin_lead(lead);
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            install_ctx(Ctx::new(
                loaded,
                now,
                default_tz,
                self.catalog.clone(),
                audience.file.clone(),
                true,
            ));
            let mut scope = sandbox::run_scope(now);
            sandbox::begin_rule(&audience.file, self.time_budget);
            let result = self
                .engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, &audience.ast);
            sandbox::end_rule();
            result
        }));
        take_ctx();
        sandbox::end_rule();
        let err = |line: usize, col: usize, message: String| RuleError {
            file: audience.file.clone(),
            rule: audience.file.clone(),
            line,
            col,
            message,
        };
        match run {
            Ok(Ok(v)) => v.as_bool().map_err(|t| {
                err(
                    1,
                    1,
                    format!("an audience must give true or false, not {t}"),
                )
            }),
            Ok(Err(e)) => Err(super::run_error(&audience.file, &audience.file, e)),
            Err(payload) => {
                let why = super::panic_message(payload.as_ref());
                tracing::error!(lead, file = %audience.file, panic = %why, "the audience crashed for this lead, which is left out");
                Err(err(
                    1,
                    1,
                    format!(
                        "internal error while the audience ran ({why}); this lead was left out"
                    ),
                ))
            }
        }
    }
}
