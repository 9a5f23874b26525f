//! Bad input gets a clear error naming the file and position, and nothing good is lost:
//! broken rules, broken CSV rows, broken config.

mod support;

use support::*;

const CONFIG: &str = "funnel: { stages: [interest, evaluation, customer] }\nsmtp: { url: file://./mail, from: \"Shop <shop@example.com>\" }\n";
const TEMPLATE: &str = "---\nsubject: \"Hola {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n<a href=\"{{ unsubscribe_url }}\">baja</a>\n";

fn mail_files(f: &Folder) -> usize {
    std::fs::read_dir(f.path().join("mail"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn broken_rules_are_reported_with_file_and_position_and_the_others_keep_running() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        ("templates/welcome.html", TEMPLATE),
        (
            "rules/10_welcome.rhai",
            "if lead.stage == \"interest\" { send(\"welcome\"); }\n",
        ),
        (
            "rules/20_syntax.rhai",
            "// a missing parenthesis\nif lead.stage == \"interest\" {\n    send(\"welcome\";\n}\n",
        ),
        (
            "rules/30_forever.rhai",
            "let n = 0;\nwhile true {\n    n += 1;\n}\n",
        ),
        (
            "rules/40_nowhere.rhai",
            "if lead.stage == \"interest\" {\n    move_to(\"limbo\");\n}\n",
        ),
        ("rules/50_tag.rhai", "tag(\"seen\");\n"),
        (
            "leads.csv",
            "email,name\nana@example.com,Ana\nbob@example.com,Bob\n",
        ),
    ]);
    f.run(&["import", "leads.csv"], 0);
    // The pass runs, and exits 1: rules were skipped.
    let out = f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("rules/20_syntax.rhai:3:"),
        "syntax error with its position:\n{err}"
    );
    assert!(
        err.contains("rules/30_forever.rhai:"),
        "endless loop:\n{err}"
    );
    // Stopped by its operation budget, or by its time budget on a loaded machine.
    let err_lower = err.to_lowercase();
    assert!(
        err_lower.contains("too many operations") || err_lower.contains("took longer than"),
        "{err}"
    );
    assert!(
        err.contains("rules/40_nowhere.rhai:2:5:"),
        "unknown stage with its position:\n{err}"
    );
    assert!(err.contains("unknown stage `limbo`"), "{err}");
    assert!(
        err.contains("(2 lead(s)"),
        "each error is reported once with the number of leads:\n{err}"
    );
    // The good rules ran for both leads: two welcomes went out, and the stage is unchanged.
    assert!(stdout(&out).contains("sent 2"), "{}", stdout(&out));
    assert_eq!(mail_files(&f), 2);

    // `check` reports the same problems without a database and exits 1, and finds the
    // unknown stage from its literal name before any lead meets it.
    let out = f.run(&["check"], 1);
    let o = stdout(&out);
    assert!(o.contains("rules/20_syntax.rhai:3:"), "{o}");
    // In the manner of rustc: the message, the place, the line and a caret under the name.
    assert!(
        o.contains(
            "error: unknown stage `limbo`\n --> rules/40_nowhere.rhai:2:13\n  |\n2 |     move_to(\"limbo\");\n  |             ^^^^^^^\n  = help: the funnel's stages are: interest, evaluation, customer\n"
        ),
        "{o}"
    );
}

#[test]
fn a_csv_with_bad_rows_imports_its_good_rows_and_names_the_bad_lines() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        ("templates/welcome.html", TEMPLATE),
        (
            "leads.csv",
            "email,name,stage,tags,timezone,created_at,attr.orders
ana@example.com,Ana,interest,school;vip,Europe/Madrid,2026-01-05T10:00:00Z,3
not-an-email,Nadie,interest,,,,
bob@example.com,Bob,limbo,,,,
carla@example.com,Carla,customer,,Mars/Olympus,,
dani@example.com,Dani,,,,yesterday,
eva@example.com,Eva
\"fran@example.com\",\"Fran, el de \"\"Ventas\"\"\",evaluation,,,,1
",
        ),
    ]);
    let out = f.run(&["import", "leads.csv"], 1);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(o.contains("2 lead(s) created"), "{o}");
    assert!(e.contains("5 bad row(s) skipped"), "{e}");
    assert!(
        e.contains("leads.csv:3: email: `not-an-email` is not an email address"),
        "{e}"
    );
    assert!(
        e.contains("leads.csv:4: stage: unknown stage `limbo`"),
        "{e}"
    );
    assert!(
        e.contains("leads.csv:5: timezone: unknown time zone `Mars/Olympus`"),
        "{e}"
    );
    assert!(e.contains("leads.csv:6: created_at:"), "{e}");
    assert!(e.contains("leads.csv:7: 2 fields, the header has 7"), "{e}");

    // Re-import: nothing lost, tags unioned, attrs merged, stage kept.
    f.write(
        "more.csv",
        "email,tags,stage,attr.city\nANA@example.com,office,customer,Sevilla\n",
    );
    let out = f.run(&["import", "more.csv"], 0);
    assert!(stdout(&out).contains("0 lead(s) created, 1 updated"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = f.lead("ana@example.com").await;
        assert_eq!(
            l.stage.as_str(),
            "interest",
            "an existing lead's stage moves only by rules or --update-stage"
        );
        assert_eq!(
            l.tags.iter().cloned().collect::<Vec<_>>(),
            ["office", "school", "vip"]
        );
        assert_eq!(l.attrs.get("orders"), Some(&embudo::domain::Value::Int(3)));
        assert_eq!(
            l.attrs.get("city"),
            Some(&embudo::domain::Value::Str("Sevilla".into()))
        );
        assert_eq!(l.created_at.to_rfc3339(), "2026-01-05T10:00:00+00:00");
        let l = f.lead("fran@example.com").await;
        assert_eq!(l.name.as_deref(), Some("Fran, el de \"Ventas\""));
        assert_eq!(l.stage.as_str(), "evaluation");
    });
    f.run(&["import", "more.csv", "--update-stage"], 0);
    rt.block_on(async {
        let store = f.store().await;
        let id = f.lead_id("ana@example.com").await;
        let h = store.stage_history(id).await.unwrap();
        assert_eq!(
            h.last().map(|h| (h.to.as_str(), h.cause.as_str())),
            Some(("customer", "import --update-stage"))
        );
    });

    // Events: unknown leads and bad times are named; good events are stored.
    f.write("events.csv", "email,kind,at,prop.url\nana@example.com,page_view,2026-03-01T10:00:00Z,/mochilas\nzoe@example.com,page_view,2026-03-01T10:00:00Z,\nana@example.com,page_view,ayer,\n");
    let out = f.run(&["import", "events.csv"], 1);
    assert!(stdout(&out).contains("1 event(s)"), "{}", stdout(&out));
    let e = stderr(&out);
    assert!(
        e.contains("events.csv:3: email: no lead `zoe@example.com`; import the leads first"),
        "{e}"
    );
    assert!(e.contains("events.csv:4: at:"), "{e}");

    // A header problem stops the import before anything is written, with exit 2.
    f.write("odd.csv", "email,phone\nx@example.com,123\n");
    let out = f.run(&["import", "odd.csv"], 2);
    assert!(
        stderr(&out).contains("odd.csv:1: unknown column `phone`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("attr.phone"));
}

#[test]
fn config_errors_name_the_file_line_and_a_fix_and_exit_2() {
    let f = Folder::with_files(&[(
        "embudo.yaml",
        "funnel:\n  stages: [interest, customer]\n  initial: lead\nschedule:\n  tick: \"0 */5 * * * *\"\n",
    )]);
    let out = f.run(&["tick"], 2);
    let e = stderr(&out);
    assert!(
        e.contains("embudo.yaml:3:3: funnel.initial `lead` is not one of the stages"),
        "{e}"
    );
    assert!(e.contains("hint: use one of: interest, customer"), "{e}");

    f.write(
        "embudo.yaml",
        "funnel:\n  stages: [interest]\nsmpt:\n  url: file://x\n",
    );
    let e = stderr(&f.run(&["check"], 2));
    assert!(
        e.contains("error: unknown field `smpt`")
            && e.contains(" --> embudo.yaml:3:1\n  |\n3 | smpt:\n  | ^^^^\n")
            && e.contains("= help: did you mean `smtp`?"),
        "{e}"
    );

    f.write("embudo.yaml", "funnel: [oops\n");
    let e = stderr(&f.run(&["tick"], 2));
    assert!(e.contains("embudo.yaml:"), "{e}");

    let e = stderr(&f.run(&["--config", "nowhere/embudo.yaml", "check"], 2));
    assert!(
        e.contains("cannot read nowhere/embudo.yaml") && e.contains("embudo init"),
        "{e}"
    );

    // Nothing stored is lost by a bad config: the database is never touched.
    assert!(!f.has_database());
}

#[test]
fn init_writes_the_demo_funnel_which_checks_clean_and_runs() {
    let f = Folder::with_files(&[]);
    f.run(&["init", "shop"], 0);
    let shop = f.path().join("shop");
    for p in [
        "embudo.yaml",
        "rules/10_interest.rhai",
        "templates/edu-welcome.html",
        "templates/_sample.yaml",
        "leads.csv",
        ".gitignore",
    ] {
        assert!(shop.join(p).is_file(), "{p} written");
    }
    // The starter is the repository root's demo, byte for byte.
    assert_eq!(
        std::fs::read(shop.join("embudo.yaml")).unwrap(),
        std::fs::read(repo().join("embudo.yaml")).unwrap()
    );
    let out = f.run(&["--config", "shop/embudo.yaml", "check"], 0);
    assert!(stdout(&out).contains("ok"));
    // A Monday morning in Madrid: on the machine's clock, at night everywhere the
    // demo's leads live, quiet hours would hold every email.
    f.run(
        &[
            "--config",
            "shop/embudo.yaml",
            "import",
            "shop/leads.csv",
            "--now",
            "2026-03-02T09:00:00Z",
        ],
        0,
    );
    let out = f.run(
        &[
            "--config",
            "shop/embudo.yaml",
            "tick",
            "--now",
            "2026-03-02T10:00:00Z",
        ],
        0,
    );
    assert!(stdout(&out).contains("sent"), "{}", stdout(&out));
    if !sqlite_only("the database file's path: EMBUDO_DATABASE_URL names the database") {
        assert!(
            shop.join("embudo.db").is_file(),
            "paths are relative to the config's folder"
        );
    }
    assert!(std::fs::read_dir(shop.join("outbox-mail")).unwrap().count() > 0);
    // A second init refuses to overwrite.
    let e = stderr(&f.run(&["init", "shop"], 2));
    assert!(e.contains("--force"), "{e}");
}

#[test]
fn check_renders_every_template_against_the_sample_lead() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        ("templates/welcome.html", TEMPLATE),
        (
            "templates/welcome.en.html",
            "---\nsubject: Hi\n---\n<p>Hi</p>\n\n<p>{{ lead.attrs.company }}</p>\n",
        ),
        ("templates/broken.html", "---\nsubject: x\n---\n{% if %}\n"),
        (
            "templates/_sample.yaml",
            "name: Ana\nattrs: { segment: school }\n",
        ),
    ]);
    let o = stdout(&f.run(&["check"], 1));
    assert!(
        o.contains("error: undefined value: `lead.attrs.company` is undefined\n --> templates/welcome.en.html:6:7\n  |\n6 | <p>{{ lead.attrs.company }}</p>\n  |       ^^^^^^^^^^^^^^^^^^\n"),
        "{o}"
    );
    assert!(o.contains(" --> templates/broken.html:4\n"), "{o}");
}

#[test]
fn an_event_for_an_unknown_lead_is_a_usage_error() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        ("templates/welcome.html", TEMPLATE),
    ]);
    let e = stderr(&f.run(&["event", "nobody@example.com", "purchase"], 2));
    assert!(e.contains("no lead `nobody@example.com`"), "{e}");
    let e = stderr(&f.run(&["event", "x@example.com", "bad kind"], 2));
    assert!(e.contains("event kind"), "{e}");
    let e = stderr(&f.run(&["tick", "--now", "tomorrow"], 2));
    assert!(e.contains("RFC 3339"), "{e}");
}

#[test]
fn a_multi_line_name_is_one_line_and_an_unterminated_quote_names_the_lines_it_swallowed() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        ("templates/welcome.html", TEMPLATE),
        ("rules/10_welcome.rhai", "send(\"welcome\");\n"),
        (
            "leads.csv",
            "email,name\neve@example.com,\"Eve\nBcc: evil@example.com\"\nann@example.com,Ann\n\"zed@example.com,Zed\nyan@example.com,Yan\n",
        ),
    ]);
    let out = f.run(&["import", "leads.csv"], 1);
    assert!(
        stdout(&out).contains("2 lead(s) created"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("leads.csv:5: 1 fields, the header has 2; an unterminated quote? this row runs to line 6, so lines 6–6"), "{}", stderr(&out));
    let out = f.run(&["tick"], 0);
    assert!(stdout(&out).contains("sent 2"), "{}", stdout(&out));
    for e in std::fs::read_dir(f.path().join("mail")).unwrap() {
        let raw = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let headers = raw
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{raw}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        rt.block_on(f.lead("eve@example.com")).name.as_deref(),
        Some("Eve Bcc: evil@example.com")
    );
    let e = stderr(&f.run(&["import", "missing.csv"], 2));
    assert!(e.contains("cannot read missing.csv"), "{e}");
}

#[test]
fn a_template_that_fails_to_render_holds_its_email_until_fixed() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        (
            "templates/welcome.html",
            "---\nsubject: Hola\n---\n<p>{{ lead.attrs.segment }}</p>\n",
        ),
        ("rules/10_welcome.rhai", "send(\"welcome\");\n"),
        ("leads.csv", "email,name\nana@example.com,Ana\n"),
    ]);
    f.run(&["import", "leads.csv"], 0);
    let out = f.run(&["tick", "--now", "2026-03-02T10:00:00Z"], 0);
    assert!(
        stdout(&out).contains("sent 0, held 0, retry 1"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("templates/welcome.html:4: undefined value"),
        "{}",
        stderr(&out)
    );
    f.write("templates/welcome.html", TEMPLATE);
    let out = f.run(&["tick", "--now", "2026-03-02T11:00:00Z"], 0);
    assert!(stdout(&out).contains("sent 1"), "{}", stdout(&out));
    assert_eq!(mail_files(&f), 1);
}

#[test]
fn a_receipt_is_sent_even_after_the_lead_moved_on() {
    let f = Folder::with_files(&[
        ("embudo.yaml", CONFIG),
        (
            "templates/receipt.html",
            "---\nsubject: Recibo\ntransactional: true\n---\n<p>Gracias</p>\n",
        ),
        ("templates/welcome.html", TEMPLATE),
        (
            "rules/10_buy.rhai",
            "if lead.stage == \"interest\" && has_event(\"purchase\") { send(\"receipt\"); send(\"welcome\"); move_to(\"customer\"); }\n",
        ),
        ("leads.csv", "email,name\nana@example.com,Ana\n"),
    ]);
    f.run(&["import", "leads.csv"], 0);
    f.run(&["event", "ana@example.com", "purchase"], 0);
    let out = f.run(&["tick"], 0);
    assert!(
        stdout(&out).contains("sent 1, held 0, retry 0, failed 0, stale 1"),
        "the receipt goes, the marketing email is stale: {}",
        stdout(&out)
    );
}

#[test]
fn links_and_campaigns_are_checked_before_anything_runs() {
    let f = Folder::with_files(&[
        ("embudo.yaml", "http: { public_url: \"not a url\" }\n"),
        ("templates/welcome.html", TEMPLATE),
    ]);
    let e = stderr(&f.run(&["check"], 2));
    assert!(
        e.contains(
            "error: http.public_url `not a url` is not an http(s) URL\n --> embudo.yaml:1:9"
        ),
        "{e}"
    );

    let campaign = |key: &str, audience: &str| {
        format!(
            "campaigns:\n  - id: xmas\n    schedule: {{ cron: \"0 0 9 20 12 *\" }}\n    {audience}\n    template: welcome\n    key: \"{key}\"\n"
        )
    };
    f.write("embudo.yaml", &campaign("{yr}", "audience: 'true'"));
    let e = stderr(&f.run(&["check"], 2));
    assert!(
        e.contains("unknown placeholder `{yr}`") && e.contains("{year} {month} {day} {date}"),
        "{e}"
    );
    f.write(
        "embudo.yaml",
        &campaign("{year}", "audience: 'lead.stage =='"),
    );
    let o = stdout(&f.run(&["check"], 1));
    assert!(o.contains("campaign `xmas` audience"), "{o}");
    f.write(
        "embudo.yaml",
        &campaign("{year}", "audience_file: rules/audiences/none.rhai"),
    );
    let o = stdout(&f.run(&["check"], 1));
    assert!(o.contains("audience_file rules/audiences/none.rhai"), "{o}");
}

#[test]
fn check_warns_when_a_capped_email_could_expire_and_rejects_settings_that_do_nothing() {
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            "limits:\n  per_lead: { max: 3, within: 7d }\n  expire_after: 7d\n",
        ),
        ("templates/welcome.html", TEMPLATE),
    ]);
    // The contract's own example: allowed, with a warning that says why and what to do.
    let o = stdout(&f.run(&["check"], 0));
    assert!(
        o.contains("warning: limits.expire_after (7d) is not longer than per_lead.within (7d)")
            && o.contains(" --> embudo.yaml:3:3")
            && o.contains("make expire_after longer"),
        "{o}"
    );
    f.write("embudo.yaml", "limits: { daily_capacity: 0 }\n");
    let e = stderr(&f.run(&["check"], 2));
    assert!(
        e.contains("limits.daily_capacity of 0 would hold every marketing email forever"),
        "{e}"
    );
    f.write(
        "embudo.yaml",
        "limits: { quiet_hours: { from: \"21:00\", to: \"21:00\" } }\n",
    );
    let e = stderr(&f.run(&["check"], 2));
    assert!(e.contains("never quiet"), "{e}");
    f.write(
        "embudo.yaml",
        "smtp: { url: \"smtp://127.0.0.1:2525\", username: shop, password_env: EMBUDO_TEST_UNSET_PASSWORD }\n",
    );
    let o = stdout(&f.run(&["check"], 1));
    assert!(
        o.contains("EMBUDO_TEST_UNSET_PASSWORD") && o.contains("which is not set"),
        "{o}"
    );
}

/// A check's output for one config, exit 2 (a configuration error): stderr.
fn config_check(f: &Folder, yaml: &str) -> String {
    f.write("embudo.yaml", yaml);
    stderr(&f.run(&["check"], 2))
}

#[test]
fn a_bad_config_value_is_reported_at_its_own_key_with_help() {
    let f = Folder::with_files(&[("templates/welcome.html", TEMPLATE)]);
    // Flow style: the key inside the braces, not `limits:` or its first key.
    let e = config_check(&f, "limits: {rate_per_second: 5, expire_after: 10 days}\n");
    assert!(
        e.contains(
            "error: limits.expire_after: `10 days` is not a duration\n --> embudo.yaml:1:30\n  |\n1 | limits: {rate_per_second: 5, expire_after: 10 days}\n  |                              ^^^^^^^^^^^^\n  = help: write e.g. 90s, 15m, 36h, 7d, 2w or 1d12h\n"
        ),
        "{e}"
    );
    // Block style: its own line, not `rate_per_second` above it.
    let e = config_check(&f, "limits:\n  rate_per_second: 5\n  retry_for: 3y\n");
    assert!(
        e.contains("limits.retry_for: `3y` is not a duration\n --> embudo.yaml:3:3\n"),
        "{e}"
    );
    assert!(e.contains("= help: write e.g. 90s"), "{e}");
    // A misspelt zone points at `timezone`, not at `tick`, and names the near one.
    let e = config_check(
        &f,
        "schedule:\n  tick: \"0 */5 * * * *\"\n  timezone: Europe/Madird\n",
    );
    assert!(
        e.contains("schedule.timezone: unknown time zone `Europe/Madird`\n --> embudo.yaml:3:3\n"),
        "{e}"
    );
    assert!(e.contains("= help: did you mean `Europe/Madrid`?"), "{e}");
    let e = config_check(
        &f,
        "schedule: { tick: \"0 */5 * * * *\", timezone: Europe/Madird }\n",
    );
    assert!(e.contains(" --> embudo.yaml:1:36\n"), "{e}");
    // An unclosed quote: the line where it opens, not where the reader gave up.
    let e = config_check(
        &f,
        "funnel:\n  stages: [a, b]\nsmtp:\n  from: \"Shop <shop@example.com>\n  url: file://./mail\nlimits:\n  rate_per_second: 3\n",
    );
    assert!(
        e.contains("error: this double quote is not closed on its line")
            && e.contains(" --> embudo.yaml:4:9\n")
            && e.contains("= help: close the quote on line 4"),
        "{e}"
    );
    // Other commands name the same place.
    f.write(
        "embudo.yaml",
        "limits:\n  rate_per_second: 5\n  retry_for: 3y\n",
    );
    let e = stderr(&f.run(&["tick"], 2));
    assert!(e.contains("embudo.yaml:3:3: limits.retry_for"), "{e}");
}

#[test]
fn check_reports_every_problem_of_the_folder_at_once() {
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            "funnel:\n  stages: [interest, evaluation, customer]\n  initail: interest\nlimits:\n  expire_after: 10 days\n  rate_per_second: fast\nschedule: { timezone: Europe/Madird }\ncampaigns:\n  - id: xmas\n    schedule: { cron: \"0 0 9 20 12 *\" }\n    audience: 'true'\n    template: welcom\n",
        ),
        ("templates/welcome.html", TEMPLATE),
        ("rules/10_welcome.rhai", "send(\"welcom\");\n"),
        ("rules/20_broken.rhai", "if true {\n"),
    ]);
    let out = f.run(&["check"], 2);
    let (o, e) = (stdout(&out), stderr(&out));
    for want in [
        "unknown field `initail`",
        "did you mean `initial`?",
        "limits.expire_after",
        "limits.rate_per_second",
        "schedule.timezone",
    ] {
        assert!(e.contains(want), "{want} in\n{e}");
    }
    assert!(o.contains("rules/10_welcome.rhai:1:6"), "{o}");
    assert!(o.contains("rules/20_broken.rhai:"), "{o}");
    assert!(o.contains("campaign `xmas` names template `welcom`"), "{o}");
    assert!(o.contains("7 problem(s) found"), "{o}\n{e}");

    // A config that does not parse at all: its error, and the rules still checked
    // (against the default stages).
    f.write("embudo.yaml", "funnel: [oops\n");
    let out = f.run(&["check"], 2);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(e.contains("embudo.yaml:"), "{e}");
    assert!(o.contains("unknown template `welcom`"), "{o}");
    assert!(o.contains("rules/20_broken.rhai:"), "{o}");
}

#[test]
fn a_cron_that_never_fires_again_is_an_error_that_names_the_forms() {
    let f = Folder::with_files(&[("templates/welcome.html", TEMPLATE)]);
    let e = config_check(&f, "schedule: {tick: \"0 */5 * * * * 2020\"}\n");
    assert!(
        e.contains("error: schedule.tick `0 */5 * * * * 2020` never fires again")
            && e.contains(" --> embudo.yaml:1:12\n"),
        "{e}"
    );
    assert!(
        e.contains("6 fields with seconds first")
            && e.contains("5 fields with minute first")
            && e.contains("7 fields with a year last"),
        "{e}"
    );
    // Loading for any other command refuses it too.
    let e = stderr(&f.run(&["tick"], 2));
    assert!(e.contains("never fires again"), "{e}");

    let e = config_check(
        &f,
        "campaigns:\n  - id: old\n    schedule: { cron: \"0 0 9 1 8 * 2021\" }\n    audience: 'true'\n    template: welcome\n",
    );
    assert!(
        e.contains("campaign `old`: cron `0 0 9 1 8 * 2021` never fires again")
            && e.contains(" --> embudo.yaml:3:17\n"),
        "{e}"
    );
    // A bad cron names the forms too; a 7-field cron with a future year is fine.
    let e = config_check(&f, "schedule: {tick: \"every 5 minutes\"}\n");
    assert!(
        e.contains("is not a cron expression") && e.contains("6 fields with seconds first"),
        "{e}"
    );
    f.write(
        "embudo.yaml",
        "schedule: {tick: \"0 */5 * * * * 2025-2099\"}\n",
    );
    f.run(&["check"], 0);
}

#[test]
fn an_unknown_template_or_stage_name_suggests_the_near_one() {
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            "funnel: { stages: [interest, evaluation, customer] }\ncampaigns:\n  - id: x\n    schedule: { cron: \"0 0 9 1 8 *\" }\n    audience: 'lead.stage == \"custmer\"'\n    template: edu-welcom\n",
        ),
        ("templates/edu-welcome.html", TEMPLATE),
        (
            "rules/10_interest.rhai",
            "send(\"edu-welcom\");\nmove_to(\"evalution\");\nsend(\"zzz\");\n",
        ),
    ]);
    let o = stdout(&f.run(&["check"], 1));
    assert!(
        o.contains("error: unknown template `edu-welcom`\n --> rules/10_interest.rhai:1:6\n")
            && o.contains("= help: add templates/edu-welcom.html, or did you mean `edu-welcome`?"),
        "{o}"
    );
    assert!(
        o.contains("error: unknown stage `evalution`\n --> rules/10_interest.rhai:2:9\n")
            && o.contains("= help: the funnel's stages are: interest, evaluation, customer; did you mean `evaluation`?"),
        "{o}"
    );
    assert!(o.contains("did you mean `customer`?"), "{o}");
    assert!(
        o.contains("campaign `x` names template `edu-welcom`")
            && o.contains(" --> embudo.yaml:6:5\n"),
        "{o}"
    );
    // Far from every name: no guess.
    assert!(o.contains("error: unknown template `zzz`"), "{o}");
    assert!(o.contains("= help: add templates/zzz.html\n"), "{o}");

    f.write(
        "embudo.yaml",
        "funnel:\n  stages: [interest, evaluation, customer]\n  initial: intrest\n",
    );
    let e = stderr(&f.run(&["check"], 2));
    assert!(
        e.contains("funnel.initial `intrest` is not one of the stages\n --> embudo.yaml:3:3")
            && e.contains("= help: did you mean `interest`?"),
        "{e}"
    );
}
