//! `embudo simulate`: the example's 120 days against hand-worked expectations, twice,
//! byte-identical, and never a row or an email in the real database or mail folder.

mod support;

use support::*;

const SPAN: [&str; 4] = [
    "--from",
    "2026-03-01T00:00:00Z",
    "--to",
    "2026-06-29T00:00:00Z",
];

fn simulate(f: &Folder, extra: &[&str]) -> (String, String) {
    let mut args = vec!["simulate"];
    args.extend(SPAN);
    args.extend(extra);
    let out = f.run(&args, 0);
    (stdout(&out), stderr(&out))
}

fn lines_of<'a>(csv: &'a str, email: &str) -> Vec<&'a str> {
    csv.lines().filter(|l| l.contains(email)).collect()
}

/// Worked by hand from examples/tienda/rules and its sending policy, with a daily step
/// at midnight UTC from 1 March: each email is asked for at the instant the rules allow
/// it (the last column), and goes at once, or, when that instant falls in the quiet
/// hours (21:00–08:00 in Madrid), at 08:00 Madrid: 07:00 UTC in winter, 06:00 UTC
/// after the change to summer time on 29 March.
#[test]
fn the_tienda_example_over_120_days_matches_the_hand_worked_timeline() {
    let f = Folder::copy_of("examples/tienda");
    let args = [
        "--step",
        "1d",
        "--leads",
        "leads.csv",
        "--events",
        "events.csv",
        "--format",
        "csv",
    ];
    let (first, summary) = simulate(&f, &args);
    let (second, _) = simulate(&f, &args);
    assert_eq!(first, second, "two runs of the same inputs differ");
    assert!(
        first.starts_with("at,lead,email,action,what,key,state,by,detail,requested_at\n"),
        "{first}"
    );

    // Jorge (interest since 22 Feb) asks for a quote on 3 March at 10:12 (11:12 in
    // Madrid): he moves to evaluation at once and gets the comparison in the same pass;
    // the price list is asked for at the first tick 48 h later and goes at 08:00. With no
    // visit in his first 60 days of evaluation he goes back to education (benefits at
    // once: the welcome is 60 days old), and the guide 7 days after the benefits.
    assert_eq!(
        lines_of(&first, "jorge.ruiz@"),
        [
            "2026-03-01T07:00:00Z,2,jorge.ruiz@example.com,send,edu-welcome,,sent,rule:40_education,,2026-03-01T00:00:00Z",
            "2026-03-03T10:12:00Z,2,jorge.ruiz@example.com,move,interest → evaluation,,moved,rule:20_qualify,,2026-03-03T10:12:00Z",
            "2026-03-03T10:12:00Z,2,jorge.ruiz@example.com,send,eval-comparison,,sent,rule:50_evaluation,,2026-03-03T10:12:00Z",
            "2026-03-06T07:00:00Z,2,jorge.ruiz@example.com,send,eval-price,,sent,rule:50_evaluation,,2026-03-06T00:00:00Z",
            "2026-05-03T00:00:00Z,2,jorge.ruiz@example.com,move,evaluation → interest,,moved,rule:30_regression,,2026-05-03T00:00:00Z",
            "2026-05-03T06:00:00Z,2,jorge.ruiz@example.com,send,edu-benefits,,sent,rule:40_education,,2026-05-03T00:00:00Z",
            "2026-05-10T06:00:00Z,2,jorge.ruiz@example.com,send,edu-guide,,sent,rule:40_education,,2026-05-10T00:00:00Z",
        ]
    );
    // Lucía gets the welcome, the benefits 3 days after it was asked for, then her fifth
    // page view in a week (9 March, 08:55 UTC, 09:55 in Madrid) qualifies her and the
    // comparison goes at once; the guide she would have had on 11 March is never asked
    // for. She too goes cold after 60 days, and gets the guide on return.
    assert_eq!(
        lines_of(&first, "lucia.martin@"),
        [
            "2026-03-01T07:00:00Z,1,lucia.martin@example.es,send,edu-welcome,,sent,rule:40_education,,2026-03-01T00:00:00Z",
            "2026-03-04T07:00:00Z,1,lucia.martin@example.es,send,edu-benefits,,sent,rule:40_education,,2026-03-04T00:00:00Z",
            "2026-03-09T08:55:00Z,1,lucia.martin@example.es,move,interest → evaluation,,moved,rule:20_qualify,,2026-03-09T08:55:00Z",
            "2026-03-09T08:55:00Z,1,lucia.martin@example.es,send,eval-comparison,,sent,rule:50_evaluation,,2026-03-09T08:55:00Z",
            "2026-03-12T07:00:00Z,1,lucia.martin@example.es,send,eval-price,,sent,rule:50_evaluation,,2026-03-12T00:00:00Z",
            "2026-05-09T00:00:00Z,1,lucia.martin@example.es,move,evaluation → interest,,moved,rule:30_regression,,2026-05-09T00:00:00Z",
            "2026-05-09T06:00:00Z,1,lucia.martin@example.es,send,edu-guide,,sent,rule:40_education,,2026-05-09T00:00:00Z",
            // Her birthday (14 May): the campaign fires at 09:00 in Madrid (07:00 UTC in
            // summer) and her own 09:00 is the same instant.
            "2026-05-14T07:00:00Z,1,lucia.martin@example.es,send,cust-birthday,2026-05-14,sent,campaign:birthday,,2026-05-14T07:00:00Z",
        ]
    );
    // Marta, an imported customer (no thanks: she bought before embudo knew her), buys
    // again on 18 March: the repurchase reminder waits 30 days and then for the 25th,
    // once a month, and goes at 08:00 her time.
    assert_eq!(
        lines_of(&first, "marta.gil@"),
        [
            // Paper bought on 18 March at 09:10 UTC: at the 10:00 firing on 17 April only
            // 29 whole days have passed, on the 18th 30 have: the consumable reminder.
            "2026-04-18T08:00:00Z,41,marta.gil@example.es,send,cust-consumable,2026-04-18,sent,campaign:consumable-reminder,,2026-04-18T08:00:00Z",
            "2026-04-25T06:00:00Z,41,marta.gil@example.es,send,cust-repurchase,2026-04,sent,rule:70_repurchase,,2026-04-25T00:00:00Z",
            "2026-05-25T06:00:00Z,41,marta.gil@example.es,send,cust-repurchase,2026-05,sent,rule:70_repurchase,,2026-05-25T00:00:00Z",
            "2026-06-25T06:00:00Z,41,marta.gil@example.es,send,cust-repurchase,2026-06,sent,rule:70_repurchase,,2026-06-25T00:00:00Z",
        ]
    );
    // The funnel at the end goes to stderr with CSV, so stdout stays one table.
    assert!(
        summary.contains("funnel at 2026-06-29T00:00:00Z"),
        "{summary}"
    );
    assert!(!summary.contains("rule error"), "{summary}");

    // Never the real database, never the mail folder.
    assert!(!f.has_database());
    let mail = f.path().join("outbox-mail");
    assert!(
        !mail.exists() || std::fs::read_dir(&mail).unwrap().next().is_none(),
        "simulate wrote mail"
    );
}

#[test]
fn json_output_carries_the_funnel_and_the_table_reads_in_local_time() {
    let f = Folder::copy_of("examples/tienda");
    let base = [
        "--step",
        "1d",
        "--leads",
        "leads.csv",
        "--events",
        "events.csv",
    ];
    let (json, _) = simulate(&f, &[&base[..], &["--format", "json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["leads"], 50);
    assert_eq!(v["passes"], 121);
    let stages: Vec<&str> = v["funnel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["interest", "evaluation", "customer"]);
    let total: u64 = v["funnel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["leads"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 50);
    // Everyone who reached evaluation came from interest or started there.
    let interest = &v["funnel"][0];
    assert!(interest["to_next"].as_u64().unwrap() >= 2, "{interest}");
    let welcome = v["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["template"] == "edu-welcome")
        .unwrap();
    assert!(welcome["states"]["sent"].as_u64().unwrap() > 0);

    let (table, _) = simulate(&f, &base);
    assert!(table.contains("time (Europe/Madrid)"), "{table}");
    // 10:12 UTC on 3 March is 11:12 in Madrid.
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("2026-03-03 11:12") && l.contains("jorge.ruiz")),
        "{table}"
    );
    assert!(table.contains("funnel at 2026-06-29T00:00:00Z:"), "{table}");
}

/// Without --leads the simulation starts from a copy of the funnel's own database, and
/// that database is left exactly as it was; the default step is the tick's cron.
#[test]
fn without_leads_it_runs_on_a_copy_of_the_real_database_at_the_tick_schedule() {
    let f = Folder::demo();
    f.write(
        "embudo.yaml",
        &std::fs::read_to_string(f.path().join("embudo.yaml"))
            .unwrap()
            .replace("0 */5 * * * *", "0 0 9 * * *"),
    );
    f.run(&["import", "leads.csv", "--now", "2026-03-01T08:00:00Z"], 0);
    let before = f.snapshot();
    let out = f.run(
        &[
            "simulate",
            "--from",
            "2026-03-01T08:00:00Z",
            "--to",
            "2026-03-08T08:00:00Z",
            "--format",
            "json",
        ],
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    // The start, then 09:00 Madrid (08:00 UTC) on each of the next 7 days.
    assert_eq!(v["passes"], 8, "{v}");
    assert!(
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "edu-welcome" && e["state"] == "sent"),
        "{v}"
    );
    assert_eq!(f.snapshot(), before, "simulate changed the real database");

    // An empty folder has nothing to copy: the error says what to pass.
    let empty = Folder::demo();
    let out = empty.run(
        &[
            "simulate",
            "--from",
            "2026-03-01T08:00:00Z",
            "--to",
            "2026-03-02T08:00:00Z",
        ],
        2,
    );
    assert!(stderr(&out).contains("--leads"), "{}", stderr(&out));
}
