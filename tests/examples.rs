//! The shipped funnels stay correct: they check clean, import without bad rows, run
//! without rule errors, and the tienda example keeps using the whole rule API.

mod support;

use support::*;

#[test]
fn the_tienda_example_checks_imports_and_ticks_without_errors() {
    let f = Folder::copy_of("examples/tienda");
    assert!(stdout(&f.run(&["check"], 0)).contains("ok"));
    let o = stdout(&f.run(&["test"], 0));
    assert!(o.contains("test result: ok. 34 passed, 0 failed"), "{o}");
    let out = f.run(&["import", "leads.csv", "--now", "2026-03-01T08:00:00Z"], 0);
    assert!(
        stdout(&out).contains("50 lead(s) created"),
        "{}",
        stdout(&out)
    );
    let out = f.run(
        &["import", "events.csv", "--now", "2026-03-01T08:00:00Z"],
        0,
    );
    assert!(
        stderr(&out).is_empty() || !stderr(&out).contains("bad row"),
        "{}",
        stderr(&out)
    );
    for at in [
        "2026-03-01T09:00:00Z",
        "2026-03-04T10:00:00Z",
        "2026-03-16T10:00:00Z",
        "2026-04-27T10:00:00Z",
    ] {
        let out = f.run(&["tick", "--now", at], 0);
        assert!(
            !stderr(&out).contains("rule error"),
            "{at}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).contains("failed 0"), "{at}: {}", stdout(&out));
    }
}

#[test]
fn the_tienda_rules_use_every_part_of_the_rule_api() {
    let dir = repo().join("examples/tienda/rules");
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rhai") {
            all.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    let api = [
        "lead.id",
        "lead.email",
        "lead.name",
        "lead.stage",
        "lead.tags",
        "lead.attrs",
        "lead.locale",
        "lead.timezone",
        "lead.created_at",
        "lead.stage_entered_at",
        "now",
        "days(",
        "hours(",
        "minutes(",
        "days_since(",
        "local(",
        ".year",
        ".month",
        ".day",
        ".weekday",
        ".hour",
        ".minute",
        "has_event(",
        "count(",
        "last_event(",
        "last_event_props(",
        "sent(",
        "last_sent(",
        "sent_count(",
        "send(",
        "move_to(",
        "tag(",
        "untag(",
        "set(",
    ];
    let missing: Vec<_> = api.iter().filter(|a| !all.contains(*a)).collect();
    assert!(missing.is_empty(), "the example no longer uses {missing:?}");
    // The two-argument forms too.
    assert!(
        all.contains("sent(\"cust-repurchase\", key)"),
        "sent(template, key)"
    );
    assert!(
        all.contains("send(\"cust-repurchase\", key)"),
        "send(template, key)"
    );
    assert!(
        all.lines()
            .any(|l| l.contains("count(\"") && l.contains("days(")),
        "count(kind, within)"
    );
}

#[test]
fn the_root_demo_checks_clean() {
    let f = Folder::demo();
    assert!(stdout(&f.run(&["check"], 0)).contains("ok"));
}
