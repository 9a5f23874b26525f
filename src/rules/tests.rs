//! Unit tests of every rule helper and action, through the public evaluation API.

use super::*;
use crate::domain::LoadedLead;
use crate::domain::{
    EmailAddress, Event, Lead, LeadId, SendRecord, StageId, TemplateName, Value, ValueMap,
};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const NOW: &str = "2026-03-02T10:00:00Z";

fn catalog() -> Catalog {
    Catalog {
        stages: ["interest", "evaluation", "customer"]
            .iter()
            .map(|s| StageId::parse(s).unwrap())
            .collect(),
        templates: [
            "edu-welcome",
            "edu-benefits",
            "eval-comparison",
            "cust-thanks",
            "repurchase",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    }
}

fn lead() -> LoadedLead {
    let now = t(NOW);
    LoadedLead {
        lead: Lead {
            id: LeadId(42),
            email: EmailAddress::parse("ana@example.com").unwrap(),
            name: Some("Ana".into()),
            stage: StageId::parse("interest").unwrap(),
            tags: ["school".to_string()].into_iter().collect(),
            attrs: [
                ("segment".to_string(), Value::Str("colegio".into())),
                ("orders".to_string(), Value::Int(2)),
            ]
            .into_iter()
            .collect(),
            locale: Some("es".into()),
            timezone: Some(chrono_tz::America::Mexico_City),
            created_at: now - TimeDelta::days(10),
            stage_entered_at: now - TimeDelta::days(4),
            unsubscribed_at: None,
        },
        events: vec![],
        older: Default::default(),
        sends: vec![],
    }
}

fn event(kind: &str, ago: TimeDelta) -> Event {
    Event {
        kind: kind.into(),
        at: t(NOW) - ago,
        props: ValueMap::new(),
    }
}

fn sent(template: &str, key: &str, ago: TimeDelta) -> SendRecord {
    SendRecord {
        template: TemplateName::parse(template).unwrap(),
        key: key.into(),
        requested_at: t(NOW) - ago,
    }
}

/// Compiles the rules (name, source) and evaluates `l` at NOW.
fn eval(rules: &[(&str, &str)], l: LoadedLead) -> Evaluation {
    let (set, errs) = RuleSet::compile(
        rules
            .iter()
            .map(|(n, s)| (format!("rules/{n}.rhai"), s.to_string()))
            .collect(),
        catalog(),
    );
    assert!(errs.is_empty(), "compile errors: {errs:?}");
    set.evaluate(l, t(NOW), Tz::UTC)
}

/// Evaluates one expression for the default lead: the rule `set("out", EXPR)`.
fn value_of(expr: &str, l: LoadedLead) -> Option<Value> {
    let ev = eval(&[("r", &format!("set(\"out\", {expr});"))], l);
    assert!(ev.errors.is_empty(), "{expr}: {:?}", ev.errors);
    ev.changes.after.attrs.get("out").cloned()
}

fn int(expr: &str, l: LoadedLead) -> i64 {
    match value_of(expr, l) {
        Some(Value::Int(i)) => i,
        other => panic!("{expr} gave {other:?}"),
    }
}

fn truth(expr: &str, l: LoadedLead) -> bool {
    match value_of(expr, l) {
        Some(Value::Bool(b)) => b,
        other => panic!("{expr} gave {other:?}"),
    }
}

fn string(expr: &str, l: LoadedLead) -> String {
    match value_of(expr, l) {
        Some(Value::Str(s)) => s,
        other => panic!("{expr} gave {other:?}"),
    }
}

#[test]
fn lead_fields_are_readable() {
    assert_eq!(int("lead.id", lead()), 42);
    assert_eq!(string("lead.email", lead()), "ana@example.com");
    assert_eq!(string("lead.name", lead()), "Ana");
    assert_eq!(string("lead.stage", lead()), "interest");
    assert!(truth("lead.tags.contains(\"school\")", lead()));
    assert!(!truth("lead.tags.contains(\"office\")", lead()));
    assert_eq!(string("lead.attrs.segment", lead()), "colegio");
    assert_eq!(int("lead.attrs.orders + 1", lead()), 3);
    assert!(truth("\"segment\" in lead.attrs", lead()));
    assert_eq!(string("lead.locale", lead()), "es");
    assert_eq!(string("lead.timezone", lead()), "America/Mexico_City");
    assert_eq!(int("days_since(lead.created_at)", lead()), 10);
    assert_eq!(int("days_since(lead.stage_entered_at)", lead()), 4);
    let mut l = lead();
    l.lead.name = None;
    assert_eq!(
        string("lead.name", l),
        "",
        "unknown optional fields are empty"
    );
}

#[test]
fn timestamps_and_durations_do_arithmetic_and_compare() {
    assert!(truth("now - lead.created_at > days(9)", lead()));
    assert!(truth("now - lead.created_at == days(10)", lead()));
    assert!(truth("now - lead.created_at < hours(241)", lead()));
    assert!(truth("lead.created_at + days(10) == now", lead()));
    assert!(truth("now - minutes(60) == now - hours(1)", lead()));
    assert!(truth("lead.created_at < now", lead()));
    assert_eq!(int("(now - lead.created_at).days", lead()), 10);
    assert_eq!(int("(days(1) + hours(12)).hours", lead()), 36);
    assert_eq!(string("now.to_string()", lead()), NOW);
    assert_eq!(string("(days(1) + hours(12)).to_string()", lead()), "1d12h");
}

#[test]
fn days_since_counts_whole_days_and_passes_unit_through() {
    let mut l = lead();
    l.sends = vec![sent("edu-welcome", "", TimeDelta::hours(71))];
    assert_eq!(
        int("days_since(last_sent(\"edu-welcome\"))", l.clone()),
        2,
        "71 hours is 2 whole days"
    );
    l.sends = vec![sent("edu-welcome", "", TimeDelta::hours(72))];
    assert_eq!(int("days_since(last_sent(\"edu-welcome\"))", l), 3);
    // Never sent: () in, () out, and () compares false with numbers.
    assert!(truth(
        "days_since(last_sent(\"edu-welcome\")) == ()",
        lead()
    ));
    assert!(!truth(
        "days_since(last_sent(\"edu-welcome\")) >= 3",
        lead()
    ));
    assert!(!truth("days_since(last_sent(\"edu-welcome\")) < 3", lead()));
    assert!(truth("days_since(last_sent(\"edu-welcome\")) != 3", lead()));
}

#[test]
fn local_gives_calendar_fields_in_the_leads_zone() {
    // 2026-03-02T10:00Z is a Monday; in Mexico City (UTC-6) it is 04:00.
    assert_eq!(int("local(now).hour", lead()), 4);
    assert_eq!(int("local(now).minute", lead()), 0);
    assert_eq!(int("local(now).weekday", lead()), 1);
    assert_eq!(int("local(now).day", lead()), 2);
    assert_eq!(int("local(now).month", lead()), 3);
    assert_eq!(int("local(now).year", lead()), 2026);
    // 02:00 UTC on Monday is still Sunday (7) in Mexico City.
    let (set, _) = RuleSet::compile(
        vec![(
            "rules/r.rhai".into(),
            "set(\"wd\", local(now).weekday);".into(),
        )],
        catalog(),
    );
    let ev = set.evaluate(lead(), t("2026-03-02T02:00:00Z"), Tz::UTC);
    assert_eq!(ev.changes.after.attrs.get("wd"), Some(&Value::Int(7)));
    // A lead without a zone uses the default zone.
    let mut l = lead();
    l.lead.timezone = None;
    let ev = set.evaluate(l, t(NOW), chrono_tz::Europe::Madrid);
    let (set2, _) = RuleSet::compile(
        vec![("rules/r.rhai".into(), "set(\"h\", local(now).hour);".into())],
        catalog(),
    );
    let mut l = lead();
    l.lead.timezone = None;
    let ev2 = set2.evaluate(l, t(NOW), chrono_tz::Europe::Madrid);
    assert_eq!(ev.changes.after.attrs.get("wd"), Some(&Value::Int(1)));
    assert_eq!(ev2.changes.after.attrs.get("h"), Some(&Value::Int(11)));
}

#[test]
fn event_helpers_count_and_look_back() {
    let mut l = lead();
    let mut view = event("page_view", TimeDelta::days(2));
    view.props
        .insert("url".into(), Value::Str("/mochilas".into()));
    l.events = vec![
        event("page_view", TimeDelta::days(10)),
        event("page_view", TimeDelta::days(6)),
        view,
        // In the future of `now`: ignored by every helper.
        event("page_view", -TimeDelta::hours(1)),
        event("quote_requested", -TimeDelta::hours(1)),
    ];
    assert!(truth("has_event(\"page_view\")", l.clone()));
    assert!(!truth("has_event(\"quote_requested\")", l.clone()));
    assert_eq!(int("count(\"page_view\")", l.clone()), 3);
    assert_eq!(int("count(\"page_view\", days(7))", l.clone()), 2);
    assert_eq!(int("count(\"purchase\", days(7))", l.clone()), 0);
    assert!(truth(
        "last_event(\"page_view\") == now - days(2)",
        l.clone()
    ));
    assert!(truth("last_event(\"purchase\") == ()", l.clone()));
    assert_eq!(
        string("last_event_props(\"page_view\").url", l.clone()),
        "/mochilas"
    );
    assert_eq!(int("last_event_props(\"purchase\").len()", l), 0);
}

#[test]
fn send_helpers_count_requests() {
    let mut l = lead();
    l.sends = vec![
        sent("edu-welcome", "", TimeDelta::days(8)),
        sent("repurchase", "2026-02", TimeDelta::days(5)),
        sent("edu-benefits", "", TimeDelta::days(1)),
    ];
    assert!(truth("sent(\"edu-welcome\")", l.clone()));
    assert!(!truth("sent(\"cust-thanks\")", l.clone()));
    assert!(truth("sent(\"repurchase\", \"2026-02\")", l.clone()));
    assert!(!truth("sent(\"repurchase\", \"2026-03\")", l.clone()));
    assert!(truth(
        "last_sent(\"edu-benefits\") == now - days(1)",
        l.clone()
    ));
    assert!(truth("last_sent(\"cust-thanks\") == ()", l.clone()));
    assert_eq!(int("sent_count(days(7))", l.clone()), 2);
    assert_eq!(int("sent_count(days(30))", l), 3);
}

#[test]
fn send_queues_once_per_template_and_key() {
    let ev = eval(
        &[(
            "a",
            "send(\"edu-welcome\"); send(\"edu-welcome\"); send(\"repurchase\", \"2026-03\"); send(\"repurchase\", \"2026-03\"); send(\"repurchase\", \"2026-04\");",
        )],
        lead(),
    );
    let keys: Vec<(&str, &str)> = ev
        .changes
        .sends
        .iter()
        .map(|s| (s.template.as_str(), s.key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("edu-welcome", ""),
            ("repurchase", "2026-03"),
            ("repurchase", "2026-04")
        ]
    );
    assert!(
        ev.changes
            .sends
            .iter()
            .all(|s| s.stage.as_str() == "interest" && s.rule == "a")
    );
    // Already requested before: nothing new.
    let mut l = lead();
    l.sends = vec![sent("edu-welcome", "", TimeDelta::days(30))];
    let ev = eval(&[("a", "send(\"edu-welcome\");")], l);
    assert!(ev.changes.sends.is_empty() && ev.actions.is_empty());
    // A send is visible to later reads in the same evaluation.
    let ev = eval(
        &[
            ("a", "send(\"edu-welcome\");"),
            ("b", "if sent(\"edu-welcome\") { tag(\"welcomed\"); }"),
        ],
        lead(),
    );
    assert!(ev.changes.after.tags.contains("welcomed"));
}

#[test]
fn move_to_reruns_the_rules_so_the_new_stage_gets_its_email() {
    let rules = [
        (
            "10_interest",
            "if lead.stage != \"interest\" { return; } if has_event(\"quote_requested\") { move_to(\"evaluation\"); return; } send(\"edu-welcome\");",
        ),
        (
            "20_eval",
            "if lead.stage == \"evaluation\" { send(\"eval-comparison\"); }",
        ),
    ];
    let mut l = lead();
    l.events = vec![event("quote_requested", TimeDelta::hours(1))];
    let ev = eval(&rules, l);
    assert_eq!(ev.changes.after.stage.as_str(), "evaluation");
    assert_eq!(ev.changes.after.stage_entered_at, t(NOW));
    assert_eq!(ev.changes.moves.len(), 1);
    assert_eq!(ev.changes.moves[0].2, "rule:10_interest");
    let sends: Vec<_> = ev
        .changes
        .sends
        .iter()
        .map(|s| (s.template.as_str(), s.stage.as_str()))
        .collect();
    assert_eq!(sends, [("eval-comparison", "evaluation")]);
    assert_eq!(
        ev.actions,
        [
            (
                "10_interest".to_string(),
                Action::MoveTo("evaluation".into())
            ),
            (
                "20_eval".to_string(),
                Action::Send {
                    template: "eval-comparison".into(),
                    key: None
                }
            ),
        ]
    );
}

#[test]
fn a_later_rule_sees_and_may_change_an_earlier_move() {
    let ev = eval(
        &[
            (
                "a",
                "if lead.stage == \"interest\" { move_to(\"evaluation\"); }",
            ),
            (
                "b",
                "if lead.stage == \"evaluation\" { move_to(\"customer\"); }",
            ),
        ],
        lead(),
    );
    assert_eq!(ev.changes.after.stage.as_str(), "customer");
    assert_eq!(ev.changes.moves.len(), 2);
    assert!(ev.errors.is_empty(), "{:?}", ev.errors);
}

#[test]
fn moving_forward_and_back_in_one_pass_is_reported_not_repeated_silently() {
    let ev = eval(
        &[
            (
                "a",
                "if lead.stage == \"interest\" { move_to(\"evaluation\"); }",
            ),
            (
                "b",
                "if lead.stage == \"evaluation\" { move_to(\"interest\"); }",
            ),
        ],
        lead(),
    );
    assert_eq!(ev.changes.after.stage.as_str(), "interest");
    assert_eq!(ev.errors.len(), 1, "{:?}", ev.errors);
    assert!(
        ev.errors[0]
            .message
            .contains("still changing after 3 passes")
    );
}

#[test]
fn a_stage_that_never_settles_is_an_error_after_three_passes() {
    let ev = eval(
        &[(
            "flip",
            "if lead.stage == \"interest\" { move_to(\"evaluation\"); } else { move_to(\"interest\"); }",
        )],
        lead(),
    );
    assert_eq!(ev.changes.moves.len(), 3);
    assert_eq!(ev.errors.len(), 1);
    assert!(
        ev.errors[0]
            .message
            .contains("still changing after 3 passes"),
        "{}",
        ev.errors[0]
    );
}

#[test]
fn a_second_move_in_one_rule_is_an_error_and_undoes_the_rule() {
    let ev = eval(
        &[(
            "twice",
            "tag(\"x\");\nmove_to(\"evaluation\");\n    move_to(\"customer\");",
        )],
        lead(),
    );
    assert_eq!(ev.changes.after.stage.as_str(), "interest");
    assert!(
        !ev.changes.after.tags.contains("x"),
        "the failed rule's actions are dropped"
    );
    assert_eq!(ev.errors.len(), 1);
    let e = &ev.errors[0];
    assert_eq!(
        (e.file.as_str(), e.line, e.col),
        ("rules/twice.rhai", 3, 5),
        "{e}"
    );
    assert!(e.message.contains("second move_to"), "{e}");
}

#[test]
fn unknown_stage_or_template_names_the_position_and_other_rules_run() {
    let ev = eval(
        &[
            ("a", "send(\"edu-welcome\");"),
            ("b", "tag(\"seen\");\n  move_to(\"nowhere\");"),
            ("c", "send(\"no-such-template\");"),
            ("d", "tag(\"last\");"),
        ],
        lead(),
    );
    assert_eq!(ev.errors.len(), 2, "{:?}", ev.errors);
    assert_eq!(
        ev.errors[0].to_string().split(": ").next().unwrap(),
        "rules/b.rhai:2:3"
    );
    assert!(
        ev.errors[0].message.contains("unknown stage `nowhere`"),
        "{}",
        ev.errors[0]
    );
    assert!(
        ev.errors[0]
            .message
            .contains("interest, evaluation, customer")
    );
    assert!(
        ev.errors[1].to_string().starts_with("rules/c.rhai:1:1: "),
        "{}",
        ev.errors[1]
    );
    assert!(
        ev.errors[1]
            .message
            .contains("unknown template `no-such-template`")
    );
    assert!(!ev.changes.after.tags.contains("seen"));
    assert!(ev.changes.after.tags.contains("last"));
    assert_eq!(ev.changes.sends.len(), 1);
}

#[test]
fn tag_untag_and_set_change_state_and_record_only_real_changes() {
    let ev = eval(
        &[(
            "a",
            "tag(\"hot\"); tag(\"school\"); untag(\"school\"); untag(\"absent\");
             set(\"score\", 7); set(\"ratio\", 0.5); set(\"vip\", true); set(\"seen_at\", now); set(\"segment\", \"colegio\"); set(\"orders\", ());",
        )],
        lead(),
    );
    let after = &ev.changes.after;
    assert!(after.tags.contains("hot") && !after.tags.contains("school"));
    assert_eq!(after.attrs.get("score"), Some(&Value::Int(7)));
    assert_eq!(after.attrs.get("ratio"), Some(&Value::Float(0.5)));
    assert_eq!(after.attrs.get("vip"), Some(&Value::Bool(true)));
    assert_eq!(after.attrs.get("seen_at"), Some(&Value::DateTime(t(NOW))));
    assert!(!after.attrs.contains_key("orders"), "set(k, ()) removes");
    let actions: Vec<_> = ev.actions.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(
        actions,
        [
            Action::Tag("hot".into()),
            Action::Untag("school".into()),
            Action::Set("score".into(), Some(Value::Int(7))),
            Action::Set("ratio".into(), Some(Value::Float(0.5))),
            Action::Set("vip".into(), Some(Value::Bool(true))),
            Action::Set("seen_at".into(), Some(Value::DateTime(t(NOW)))),
            Action::Set("orders".into(), None),
        ],
        "tag(school) on a tagged lead, untag(absent) and an unchanged set are not actions"
    );
}

#[test]
fn set_rejects_values_that_cannot_be_stored() {
    let ev = eval(&[("a", "set(\"list\", [1, 2]);")], lead());
    assert_eq!(ev.errors.len(), 1);
    assert!(
        ev.errors[0].message.contains("must be an integer"),
        "{}",
        ev.errors[0]
    );
}

#[test]
fn an_endless_loop_is_stopped_and_reported() {
    let ev = eval(
        &[("loop", "tag(\"x\");\nloop { }"), ("ok", "tag(\"ok\");")],
        lead(),
    );
    assert_eq!(ev.errors.len(), 1);
    assert!(
        ev.errors[0]
            .message
            .to_lowercase()
            .contains("too many operations: more than 200000 for this lead (runaway loop?)"),
        "{}",
        ev.errors[0]
    );
    assert_eq!(ev.errors[0].line, 2);
    assert!(ev.changes.after.tags.contains("ok") && !ev.changes.after.tags.contains("x"));
}

#[test]
fn syntax_errors_are_reported_at_compile_time_and_the_rule_is_left_out() {
    let (set, errs) = RuleSet::compile(
        vec![
            ("rules/good.rhai".into(), "tag(\"ok\");".into()),
            (
                "rules/bad.rhai".into(),
                "if lead.stage == \"interest\" {\n  send(\"edu-welcome\"\n}".into(),
            ),
            (
                "rules/typo.rhai".into(),
                "if laed.stage == \"x\" { }".into(),
            ),
        ],
        catalog(),
    );
    assert_eq!(set.rule_names(), ["good"]);
    assert_eq!(errs.len(), 2);
    assert_eq!((errs[0].file.as_str(), errs[0].line), ("rules/bad.rhai", 3));
    assert!(
        errs[1].to_string().starts_with("rules/typo.rhai:1:4: "),
        "{}",
        errs[1]
    );
    assert!(
        errs[1].message.contains("laed"),
        "undefined variables are compile errors: {}",
        errs[1]
    );
}

#[test]
fn the_sandbox_has_no_eval_no_import_and_bounded_sizes() {
    let (_, errs) = RuleSet::compile(
        vec![
            ("rules/e.rhai".into(), "eval(\"1\");".into()),
            ("rules/i.rhai".into(), "import \"x\" as y;".into()),
        ],
        catalog(),
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    let ev = eval(&[("big", "let s = \"x\"; loop { s += s; }")], lead());
    assert_eq!(ev.errors.len(), 1);
    let ev = eval(&[("deep", "fn f(n) { f(n + 1) } f(0);")], lead());
    assert_eq!(ev.errors.len(), 1);
    assert!(ev.errors[0].to_string().contains("rules/deep.rhai"));
}

#[test]
fn actions_are_not_folded_at_compile_time() {
    // With constant arguments an optimiser could run `send` once while compiling;
    // volatile registration keeps it a call per lead.
    let (set, _) = RuleSet::compile(
        vec![("rules/a.rhai".into(), "send(\"edu-welcome\");".into())],
        catalog(),
    );
    for _ in 0..2 {
        let ev = set.evaluate(lead(), t(NOW), Tz::UTC);
        assert_eq!(ev.changes.sends.len(), 1);
    }
}

#[test]
fn top_level_return_ends_a_rule_quietly() {
    let ev = eval(
        &[
            ("a", "if true { return; }\ntag(\"never\");"),
            ("b", "tag(\"b\");"),
        ],
        lead(),
    );
    assert!(ev.errors.is_empty(), "{:?}", ev.errors);
    assert!(!ev.changes.after.tags.contains("never") && ev.changes.after.tags.contains("b"));
}

#[test]
fn the_contract_example_rule_runs() {
    let rule = r#"
if lead.stage != "interest" { return; }
if !sent("edu-welcome") { send("edu-welcome"); return; }
if days_since(last_sent("edu-welcome")) >= 3 { send("edu-benefits"); }
if has_event("quote_requested") || count("page_view", days(7)) >= 5 { move_to("evaluation"); }
"#;
    let ev = eval(&[("interest", rule)], lead());
    assert_eq!(
        ev.actions,
        [(
            "interest".to_string(),
            Action::Send {
                template: "edu-welcome".into(),
                key: None
            }
        )]
    );
    let mut l = lead();
    l.sends = vec![sent("edu-welcome", "", TimeDelta::days(4))];
    l.events = (0..5)
        .map(|i| event("page_view", TimeDelta::hours(i + 1)))
        .collect();
    let ev = eval(&[("interest", rule)], l);
    let actions: Vec<_> = ev.actions.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(
        actions,
        [
            Action::Send {
                template: "edu-benefits".into(),
                key: None
            },
            Action::MoveTo("evaluation".into())
        ]
    );
}

#[test]
fn time_arithmetic_that_overflows_is_a_rule_error_not_a_panic() {
    for expr in [
        "days(1) * 9999999999",
        "now + days(999999999999)",
        "days(100000000000) + days(100000000000)",
        "now + days(1000000) * 1000",
        "days(10000000) * 1000",
        "1000 * days(10000000)",
        "days(10000000) * -1000",
        "days(10000000) + days(1)",
        "-days(10000000) - days(1)",
        "days(9223372036854775807)",
        "days(-9223372036854775807)",
        "hours(9223372036854775807)",
        "minutes(-9223372036854775807)",
        "days(1e300)",
        "hours(-1e300)",
        "minutes(1.0 / 0.0)",
        "days(1) * 9223372036854775807",
        "now + days(5000000)",
        "now - days(5000000)",
        "days(5000000) + now",
        "count(\"page_view\", days(10000000) * 1000)",
        "sent_count(days(10000000) * 1000)",
        "count(\"page_view\", days(-10000000) * 1000)",
        "days_since(now + days(5000000))",
        "local(now + days(3000000))",
        "days_until_anniversary(now + days(3000000))",
    ] {
        let ev = eval(
            &[
                ("r", &format!("tag(\"before\");\nlet x = {expr};")),
                ("ok", "tag(\"ok\");"),
            ],
            lead(),
        );
        assert_eq!(ev.errors.len(), 1, "{expr}: {:?}", ev.errors);
        let e = &ev.errors[0];
        assert!(e.message.contains("overflows"), "{expr}: {e}");
        assert_eq!(
            (e.file.as_str(), e.line),
            ("rules/r.rhai", 2),
            "{expr}: {e}"
        );
        assert!(e.col > 1, "{expr}: {e}");
        // The failed rule is undone; the next rule still runs.
        assert!(
            ev.changes.after.tags.contains("ok") && !ev.changes.after.tags.contains("before"),
            "{expr}"
        );
    }
}

#[test]
fn time_arithmetic_at_the_edges_of_its_range_still_works() {
    assert_eq!(int("(days(10000000) - days(1)).days", lead()), 9_999_999);
    assert_eq!(int("(days(-10000000) + days(1)).days", lead()), -9_999_999);
    assert_eq!(int("(days(1) * -3).hours", lead()), -72);
    assert_eq!(int("(-hours(36)).hours", lead()), -36);
    assert_eq!(int("days_since(now - days(700000))", lead()), 700_000);
    assert_eq!(int("count(\"page_view\", days(10000000))", lead()), 0);
    assert_eq!(int("count(\"page_view\", days(-5))", lead()), 0);
    assert_eq!(int("sent_count(days(10000000))", lead()), 0);
    assert_eq!(int("local(now + days(2000000)).year", lead()), 7501);
    assert_eq!(int("(hours(1.5) * 2).minutes", lead()), 180);
}

#[test]
fn an_audience_that_overflows_is_an_error_for_that_lead() {
    let (set, _) = RuleSet::compile(vec![], catalog());
    let a = set
        .compile_audience(
            "campaign x audience",
            "count(\"page_view\", days(10000000) * 1000) > 0",
        )
        .unwrap();
    let e = set
        .audience_matches(&a, lead(), t(NOW), Tz::UTC)
        .unwrap_err();
    assert!(e.message.contains("overflows"), "{e}");
    assert_eq!((e.line, e.col), (1, 35), "{e}");
}

/// A rule set with a helper that panics, as a bug in embudo would.
fn with_a_bug(rules: &[(&str, &str)]) -> RuleSet {
    let (mut set, errs) = RuleSet::compile(
        rules
            .iter()
            .map(|(n, s)| (format!("rules/{n}.rhai"), s.to_string()))
            .collect(),
        catalog(),
    );
    set.engine
        .register_fn("crash", || -> i64 { panic!("a bug in a helper") });
    // The rules were compiled before `crash` existed: compile them again.
    for (rule, (_, src)) in set.rules.iter_mut().zip(rules) {
        rule.ast = set
            .engine
            .compile_with_scope(&sandbox::compile_scope(), src)
            .unwrap();
    }
    assert!(errs.is_empty(), "{errs:?}");
    set
}

#[test]
fn a_panic_in_a_rule_abandons_that_leads_evaluation_only() {
    let set = with_a_bug(&[
        ("10_first", "tag(\"first\"); send(\"edu-welcome\");"),
        (
            "20_buggy",
            "if lead.id == 42 { crash(); }\ntag(\"second\");",
        ),
    ]);
    let ev = set.evaluate(lead(), t(NOW), Tz::UTC);
    assert_eq!(ev.errors.len(), 1, "{:?}", ev.errors);
    let e = &ev.errors[0];
    assert_eq!(e.file, "rules/20_buggy.rhai");
    assert!(e.message.contains("a bug in a helper"), "{e}");
    // Nothing of the lead: not even the first rule's actions.
    assert!(ev.changes.is_empty(), "{:?}", ev.changes);
    assert!(ev.actions.is_empty());

    // The next lead on the same thread is evaluated normally.
    let mut other = lead();
    other.lead.id = LeadId(43);
    let ev = set.evaluate(other, t(NOW), Tz::UTC);
    assert!(ev.errors.is_empty(), "{:?}", ev.errors);
    assert_eq!(ev.changes.sends.len(), 1);
    assert!(ev.changes.after.tags.contains("second"));
}

#[test]
fn a_panic_in_an_audience_leaves_that_lead_out() {
    let set = with_a_bug(&[]);
    let a = set
        .compile_audience("campaign x audience", "crash() > 0")
        .unwrap();
    let e = set
        .audience_matches(&a, lead(), t(NOW), Tz::UTC)
        .unwrap_err();
    assert!(e.message.contains("a bug in a helper"), "{e}");
    let ok = set
        .compile_audience("campaign x audience", "lead.id == 42")
        .unwrap();
    assert!(set.audience_matches(&ok, lead(), t(NOW), Tz::UTC).unwrap());
}

#[test]
fn a_rule_over_its_time_budget_is_stopped_with_a_clear_error() {
    let (mut set, errs) = RuleSet::compile(
        vec![
            (
                "rules/slow.rhai".into(),
                "tag(\"slow\");\nlet a = [];\nfor i in 0..500 { a.push(500 - i); }\nloop { a.sort(); a.reverse(); }".into(),
            ),
            ("rules/ok.rhai".into(), "tag(\"ok\");".into()),
        ],
        catalog(),
    );
    assert!(errs.is_empty());
    assert_eq!(set.time_budget, RULE_TIME_BUDGET);
    set.time_budget = std::time::Duration::from_millis(20);
    let started = std::time::Instant::now();
    let ev = set.evaluate(lead(), t(NOW), Tz::UTC);
    let took = started.elapsed();
    assert_eq!(ev.errors.len(), 1, "{:?}", ev.errors);
    let e = &ev.errors[0];
    assert_eq!(
        e.message, "rule took longer than 20 ms for this lead (runaway loop?)",
        "{e}"
    );
    assert!(e.is_runaway());
    assert_eq!((e.file.as_str(), e.line), ("rules/slow.rhai", 4), "{e}");
    assert!(ev.changes.after.tags.contains("ok") && !ev.changes.after.tags.contains("slow"));
    // Generous: the budget is 20 ms, a debug build on a busy machine is slow.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

#[test]
fn runaway_errors_count_once_per_file_wherever_they_stop() {
    let e = |line, col, message: &str| RuleError {
        file: "rules/x.rhai".into(),
        rule: "x".into(),
        line,
        col,
        message: message.into(),
    };
    let slow = "rule took longer than 50 ms for this lead (runaway loop?)";
    assert_eq!(e(3, 5, slow).summary_key(), e(4, 1, slow).summary_key());
    let other = "Runtime error: boom";
    assert_ne!(e(3, 5, other).summary_key(), e(4, 1, other).summary_key());
}

#[test]
fn literal_names_are_found_with_their_positions() {
    let src = "// move_to(\"commented\")\nif x { move_to(\"evaluation\"); }\n  send(\"edu-welcome\"); sent( \"a\", k); last_sent(\"b\"); resend(\"no\"); send(name);\n";
    let found = literal_names(src);
    assert_eq!(
        found,
        [
            ("stage", "evaluation".to_string(), 2, 16),
            ("template", "edu-welcome".to_string(), 3, 8),
            ("template", "a".to_string(), 3, 30),
            ("template", "b".to_string(), 3, 49),
        ]
    );
}

#[test]
fn counts_include_events_older_than_the_loaded_ones() {
    // Three page views loaded (the most recent), five older ones only counted, the
    // first of them 30 days ago.
    let mut l = lead();
    l.events = (0..3)
        .map(|i| event("page_view", TimeDelta::hours(i + 1)))
        .collect();
    l.older.insert(
        "page_view".into(),
        crate::domain::OlderEvents {
            count: 5,
            first_at: t(NOW) - TimeDelta::days(30),
        },
    );
    assert_eq!(int("count(\"page_view\")", l.clone()), 8);
    assert_eq!(int("count(\"page_view\", days(31))", l.clone()), 8);
    assert_eq!(int("count(\"page_view\", days(1))", l.clone()), 3);
    assert!(truth("has_event(\"page_view\")", l.clone()));
    assert_eq!(int("count(\"purchase\")", l), 0);
}

/// The horizon of a rule that reads `expr` (in `if EXPR {}`) for the default lead at
/// NOW (Mexico City: UTC-6, no daylight saving since 2022).
fn horizon_of(expr: &str, l: LoadedLead) -> Option<DateTime<Utc>> {
    let (mut set, errs) = RuleSet::compile(
        vec![("rules/r.rhai".into(), format!("if {expr} {{ }}"))],
        catalog(),
    );
    assert!(errs.is_empty(), "compile errors: {errs:?}");
    set.track_horizon = true;
    // Not the clock's verdict on a busy machine: the horizon is the point here.
    set.time_budget = std::time::Duration::from_secs(5);
    let ev = set.evaluate(l, t(NOW), Tz::UTC);
    assert!(ev.errors.is_empty(), "{expr}: {:?}", ev.errors);
    ev.horizon
}

#[test]
fn an_evaluation_reports_when_what_it_read_from_the_clock_can_next_change() {
    let mut l = lead();
    l.sends.push(sent("edu-welcome", "", TimeDelta::hours(50)));
    l.events.push(event("page_view", TimeDelta::days(5)));
    l.events.push(event("page_view", TimeDelta::days(2)));
    // Nothing read from the clock: never.
    assert_eq!(
        horizon_of(
            "lead.stage == \"interest\" && sent(\"edu-welcome\")",
            lead()
        ),
        None
    );
    assert_eq!(
        horizon_of("lead.created_at < lead.stage_entered_at", lead()),
        None
    );
    // now against a fixed instant: when they meet (equal is already another answer to
    // `==`), either way round, with arithmetic.
    assert_eq!(
        horizon_of("now > lead.created_at + days(12)", lead()),
        Some(t("2026-03-04T10:00:00Z"))
    );
    assert_eq!(
        horizon_of("lead.created_at - now < -days(10) - hours(3)", lead()),
        Some(t("2026-03-02T13:00:00Z"))
    );
    // Both sides moving alike: never (but for the arithmetic limits, centuries away).
    let far = |h: Option<DateTime<Utc>>| h.is_none_or(|h| h > t("2300-01-01T00:00:00Z"));
    assert!(far(horizon_of("now - days(1) < now", lead())));
    // days_since: the next whole day after the send (50 h ago: in 22 h).
    assert_eq!(
        horizon_of("days_since(last_sent(\"edu-welcome\")) >= 3", l.clone()),
        Some(t("2026-03-03T08:00:00Z"))
    );
    // Whole hours of a moving duration: the next hour.
    assert_eq!(
        horizon_of("(now - last_sent(\"edu-welcome\")).hours > 60", l.clone()),
        Some(t("2026-03-02T11:00:00Z"))
    );
    // The local hour (04:00 in Mexico City) changes at 05:00 local, 11:00 UTC; the
    // weekday at local midnight, 06:00 UTC.
    assert_eq!(
        horizon_of("local(now).hour == 4", lead()),
        Some(t("2026-03-02T11:00:00Z"))
    );
    assert_eq!(
        horizon_of("local(now).weekday == 1", lead()),
        Some(t("2026-03-03T06:00:00Z"))
    );
    // A fixed instant's local fields never change.
    assert_eq!(horizon_of("local(lead.created_at).hour == 4", lead()), None);
    // A window: when its oldest event leaves (5 days ago, in a 7-day window: in 2 days).
    assert_eq!(
        horizon_of("count(\"page_view\", days(7)) >= 2", l.clone()),
        Some(t("2026-03-04T10:00:00Z"))
    );
    assert_eq!(
        horizon_of("sent_count(days(3)) > 0", l.clone()),
        Some(t("2026-03-03T08:00:00Z"))
    );
    // The earliest of several, and text of a moving value at once.
    assert_eq!(
        horizon_of(
            "local(now).hour == 4 || days_since(last_sent(\"edu-welcome\")) > 0",
            l
        ),
        Some(t("2026-03-03T08:00:00Z").min(t("2026-03-02T11:00:00Z")))
    );
    assert_eq!(
        horizon_of("(\"\" + now).len() > 3", lead()),
        Some(t(NOW) + TimeDelta::nanoseconds(1))
    );
}

#[test]
fn the_daemon_does_not_track_horizons() {
    let ev = eval(&[("r", "if local(now).hour == 4 { }")], lead());
    assert_eq!(ev.horizon, None);
}
