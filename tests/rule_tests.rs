//! `embudo test`: rule tests pass, a broken expectation fails with a diff, a malformed
//! file is exit 2.

mod support;

use support::*;

#[test]
fn the_demo_rule_tests_pass_and_a_broken_expectation_shows_a_diff() {
    let f = Folder::demo();
    let out = f.run(&["test"], 0);
    let o = stdout(&out);
    assert!(
        o.contains("test rules/tests/interest.yaml: a new lead gets the welcome ... ok"),
        "{o}"
    );
    assert!(o.contains("test result: ok. 10 passed, 0 failed"), "{o}");

    f.write(
        "rules/tests/broken.yaml",
        "- name: wrong on purpose\n  now: 2026-03-02T10:00:00Z\n  lead: { stage: interest }\n  expect:\n    - send: edu-benefits\n    - tag: x\n",
    );
    let o = stdout(&f.run(&["test"], 1));
    assert!(
        o.contains("test rules/tests/broken.yaml: wrong on purpose ... FAILED"),
        "{o}"
    );
    assert!(
        o.contains("---- rules/tests/broken.yaml: wrong on purpose ----"),
        "{o}"
    );
    assert!(o.contains("  - send: edu-benefits\n"), "{o}");
    assert!(o.contains("  - tag: x\n"), "{o}");
    assert!(o.contains("  + send: edu-welcome\n"), "{o}");
    assert!(
        o.contains("test result: FAILED. 10 passed, 1 failed"),
        "{o}"
    );

    // Only the named tests.
    let o = stdout(&f.run(&["test", "new lead"], 0));
    assert!(o.contains("test result: ok. 1 passed, 0 failed"), "{o}");

    f.write(
        "rules/tests/bad.yaml",
        "- name: no clock\n  lead: { stage: interest }\n  expect: []\n",
    );
    let o = stdout(&f.run(&["test"], 2));
    assert!(
        o.contains("error: rules/tests/bad.yaml:1:3: .[0]: missing field `now`"),
        "{o}"
    );
}

#[test]
fn a_rule_that_does_not_compile_is_named_as_such_and_a_filter_matching_nothing_fails() {
    let f = Folder::demo();
    f.write(
        "rules/tests/only.yaml",
        "- name: only the interest rule\n  now: 2026-03-02T10:00:00Z\n  lead: { stage: interest }\n  rules: [10_interest]\n  expect:\n    - send: edu-welcome\n",
    );
    let good = std::fs::read_to_string(f.path().join("rules/10_interest.rhai")).unwrap();
    f.write("rules/10_interest.rhai", &format!("let x = ;\n{good}"));
    let o = stdout(&f.run(&["test", "only the interest rule"], 1));
    assert!(
        o.contains("test rules/tests/only.yaml: only the interest rule ... FAILED"),
        "{o}"
    );
    assert!(
        o.contains("rule `10_interest` does not compile: rules/10_interest.rhai:1:9:"),
        "{o}"
    );
    assert!(!o.contains("no rule `10_interest`"), "{o}");

    f.write("rules/10_interest.rhai", &good);
    f.run(&["test", "only the interest rule"], 0);
    let o = stdout(&f.run(&["test", "no such test"], 1));
    assert!(o.contains("error: no test matched `no such test`"), "{o}");
    assert!(o.contains("test result: FAILED. 0 passed, 0 failed"), "{o}");
}

#[test]
fn what_a_rule_prints_is_shown_under_its_test() {
    let f = Folder::demo();
    f.write(
        "rules/05_trace.rhai",
        "print(\"stage is \" + lead.stage);\ndebug(lead.tags);\n",
    );
    f.write(
        "rules/tests/trace.yaml",
        "- name: traced\n  now: 2026-03-02T10:00:00Z\n  lead: { stage: interest, tags: [vip] }\n  rules: [05_trace]\n  expect: []\n- name: traced and wrong\n  now: 2026-03-02T10:00:00Z\n  lead: { stage: evaluation }\n  rules: [05_trace]\n  expect:\n    - tag: x\n",
    );
    let o = stdout(&f.run(&["test", "traced"], 1));
    assert!(
        o.contains(
            "test rules/tests/trace.yaml: traced ... ok\n    rules/05_trace.rhai: stage is interest\n    rules/05_trace.rhai: [\"vip\"] (at line 2, position 1)\n"
        ),
        "{o}"
    );
    assert!(
        o.contains(
            "test rules/tests/trace.yaml: traced and wrong ... FAILED\n    rules/05_trace.rhai: stage is evaluation\n"
        ),
        "{o}"
    );
}
