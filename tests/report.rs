//! `embudo report` on a known history built through the real binary at fixed instants
//! (imports, events, ticks, an unsubscribe): every figure checked against values worked
//! out by hand below, in every format.
//!
//! The history (T0 = Monday 2026-01-05 10:00Z; stages lead → trial → customer):
//! - a (tag vip, city Sevilla), b (Sevilla), c (Madrid), d (no city) are imported at T0
//!   and get the welcome at T0;
//! - a opens it at T0+1h and clicks at T0+2h; b opens it at T0+3h;
//! - trial_started: a at T0+1d, b at T0+2d, c at T0+4d (each moves to trial);
//! - purchase: a at T0+5d (→ customer), c at T0+64d = 2026-03-10 (→ customer);
//! - b lapses at T0+6d: back to lead, by rule 20_trial (a regression);
//! - d unsubscribes at T0+10d.

mod support;

use support::{Folder, stdout};

const T0: &str = "2026-01-05T10:00:00Z";
const NOW: &str = "2026-04-01T00:00:00Z";

fn day(n: u32) -> String {
    format!("2026-01-{:02}T10:00:00Z", 5 + n)
}

fn history() -> Folder {
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            "funnel: { stages: [lead, trial, customer] }\n\
             schedule: { tick: \"0 0 0 1 1 *\", timezone: Europe/Madrid }\n\
             smtp: { url: \"file://./mail\", from: \"Shop <shop@example.com>\" }\n\
             reports:\n\
             \x20 conversions:\n\
             \x20   - { name: trial_to_customer, from: trial, to: customer, within: 30d }\n\
             \x20   - { name: started_to_purchase, from: trial_started, to: purchase, within: 90d }\n",
        ),
        (
            "templates/welcome.html",
            "---\nsubject: \"Hola\"\n---\n<p>Hola {{ lead.name }}</p>\n",
        ),
        (
            "rules/10_lead.rhai",
            "if lead.stage != \"lead\" { return; }\n\
             if !sent(\"welcome\") { send(\"welcome\"); }\n\
             let t = last_event(\"trial_started\");\n\
             if t != () && t >= lead.stage_entered_at { move_to(\"trial\"); }\n",
        ),
        (
            "rules/20_trial.rhai",
            "if lead.stage != \"trial\" { return; }\n\
             let p = last_event(\"purchase\");\n\
             if p != () && p >= lead.stage_entered_at { move_to(\"customer\"); return; }\n\
             let l = last_event(\"lapsed\");\n\
             if l != () && l >= lead.stage_entered_at { move_to(\"lead\"); }\n",
        ),
        (
            "leads.csv",
            "email,name,tags,attr.city\n\
             a@example.com,A,vip,Sevilla\n\
             b@example.com,B,,Sevilla\n\
             c@example.com,C,,Madrid\n\
             d@example.com,D,,\n",
        ),
    ]);
    f.run(&["import", "leads.csv", "--now", T0], 0);
    f.run(&["tick", "--now", T0], 0);
    let event = |who: &str, kind: &str, at: &str, props: &[&str]| {
        let mut args = vec!["event", who, kind, "--at", at];
        for p in props {
            args.extend(["--prop", p]);
        }
        f.run(&args, 0);
    };
    event(
        "a@example.com",
        "open",
        "2026-01-05T11:00:00Z",
        &["template=welcome"],
    );
    event(
        "a@example.com",
        "click",
        "2026-01-05T12:00:00Z",
        &["template=welcome"],
    );
    event(
        "b@example.com",
        "open",
        "2026-01-05T13:00:00Z",
        &["template=welcome"],
    );
    event("a@example.com", "trial_started", &day(1), &[]);
    event("b@example.com", "trial_started", &day(2), &[]);
    event("c@example.com", "trial_started", &day(4), &[]);
    event("a@example.com", "purchase", &day(5), &[]);
    event("b@example.com", "lapsed", &day(6), &[]);
    event("c@example.com", "purchase", "2026-03-10T10:00:00Z", &[]);
    f.run(&["unsubscribe", "d@example.com", "--now", &day(10)], 0);
    f
}

fn report(f: &Folder, extra: &[&str]) -> String {
    let mut args = vec!["report", "--now", NOW];
    args.extend(extra);
    stdout(&f.run(&args, 0))
}

fn json(f: &Folder, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--format", "json"];
    args.extend(extra);
    serde_json::from_str(&report(f, &args)).unwrap()
}

#[test]
fn every_figure_of_the_report_matches_the_history_in_every_format() {
    let f = history();
    let v = json(&f, &["--by", "attr:city"]);
    let stage = |i: usize, k: &str| v["stages"][i][k].clone();
    let row = |i: usize| {
        [
            "stage",
            "leads",
            "reached",
            "to_next",
            "conversion_pct",
            "finished_stays",
            "mean_stay",
            "median_stay",
            "p90_stay",
            "mean_time_so_far",
        ]
        .map(|k| stage(i, k).to_string().replace('"', ""))
        .join(" ")
    };
    // lead: b and d now; all four reached it; a, b and c went on to trial. Stays ended:
    // a 1d, b 2d, c 4d (mean 2d8h; nearest-rank median 2d, p90 4d). Now: b since
    // Jan 11 10:00 (79d14h), d since Jan 5 10:00 (85d14h).
    assert_eq!(row(0), "lead 2 4 3 75.0 3 2d8h 2d 4d 82d14h");
    // trial: a 4d, b 4d, c 60d (mean 22d16h, median 4d, p90 60d); a and c bought.
    assert_eq!(row(1), "trial 0 3 2 66.7 3 22d16h 4d 60d null");
    // customer: a since Jan 10 10:00 (80d14h), c since Mar 10 10:00 (21d14h).
    assert_eq!(row(2), "customer 2 2 null null 0 null null null 51d2h");

    let regressions = v["regressions"].to_string();
    assert_eq!(
        regressions,
        r#"[{"by":"rule:20_trial","from":"trial","moves":1,"to":"lead"}]"#
    );

    // The welcome: 4 sent, a and b opened, a clicked, d unsubscribed after it, a, b
    // and c moved on to trial within 14 days.
    let w = &v["templates"][0];
    let figures = [
        "template",
        "sent",
        "bounced",
        "opened",
        "clicked",
        "unsubscribed",
        "moved_on",
        "opened_pct",
        "clicked_pct",
        "moved_on_pct",
    ]
    .map(|k| w[k].to_string().replace('"', ""))
    .join(" ");
    assert_eq!(figures, "welcome 4 0 2 1 1 3 50.0 25.0 75.0");
    assert_eq!(w["states"].to_string(), r#"{"sent":4}"#);
    assert_eq!(v["moved_within"], "14d");

    // trial → customer within 30d: a (4d) only, c took 60d. trial_started → purchase
    // within 90d: a (4d) and c (60d); median of two is the lower (nearest rank).
    let conv = |seg: &serde_json::Value| {
        format!(
            "{} {} {} {} {}",
            seg["segment"].as_str().unwrap(),
            seg["started"],
            seg["converted"],
            seg["rate_pct"],
            seg["median_delay"].to_string().replace('"', "")
        )
    };
    let c0 = &v["conversions"][0];
    assert_eq!(c0["name"], "trial_to_customer");
    assert_eq!(
        (c0["from"].as_str(), c0["to"].as_str()),
        (Some("stage:trial"), Some("stage:customer"))
    );
    assert_eq!(conv(&c0["all"]), "all 3 1 33.3 4d");
    let c1 = &v["conversions"][1];
    assert_eq!(
        (c1["from"].as_str(), c1["to"].as_str()),
        (Some("event:trial_started"), Some("event:purchase"))
    );
    assert_eq!(conv(&c1["all"]), "all 3 2 66.7 4d");
    // Per city: Madrid is c (60d), Sevilla a (4d) and b (never).
    let segs: Vec<String> = c1["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(conv)
        .collect();
    assert_eq!(segs, ["Madrid 1 1 100.0 60d", "Sevilla 2 1 50.0 4d"]);

    // Purchases: a on Jan 10, c on Mar 10 (Madrid time): ISO weeks 2 and 11; both
    // months are peaks (1 ≥ 1.5 × 2/12).
    let bw = &v["buying_windows"];
    assert_eq!(
        (bw["kind"].as_str(), bw["timezone"].as_str()),
        (Some("purchase"), Some("Europe/Madrid"))
    );
    let windows: Vec<String> = bw["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let months: Vec<String> = s["months"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["count"] != 0)
                .map(|m| format!("{}={}", m["month"].as_str().unwrap(), m["count"]))
                .collect();
            let weeks: Vec<String> = s["weeks"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .filter(|(_, n)| **n != 0)
                .map(|(i, n)| format!("w{}={n}", i + 1))
                .collect();
            format!(
                "{} {} {} {} peaks {}",
                s["segment"].as_str().unwrap(),
                s["total"],
                months.join(","),
                weeks.join(","),
                s["peak_months"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    assert_eq!(
        windows,
        [
            "all 2 Jan=1,Mar=1 w2=1,w11=1 peaks Jan,Mar",
            "Madrid 1 Mar=1 w11=1 peaks Mar",
            "Sevilla 1 Jan=1 w2=1 peaks Jan",
        ]
    );

    // The same figures in the table…
    let table = report(&f, &["--by", "attr:city"]);
    for line in [
        "lead                 2        4        3 (75.0%)       3       2d8h         2d         4d       82d14h",
        "trial                0        3        2 (66.7%)       3     22d16h         4d        60d            -",
        "trial → lead: 1 (by rule:20_trial)",
        "welcome",
        "2 (50.0%)",
        "3 (75.0%)",
        "trial_to_customer (stage:trial → stage:customer within 30d)",
        "Sevilla                 2 started      1 converted   50.0%  median 4d",
        "peak months",
    ] {
        assert!(table.contains(line), "{line}\n{table}");
    }
    // …in the CSV, a figure a row…
    let csv = report(&f, &["--format", "csv", "--by", "attr:city"]);
    for line in [
        "section,item,segment,measure,value",
        "stage,lead,,median_stay,2d",
        "stage,trial,,p90_stay,60d",
        "regression,trial→lead,rule:20_trial,moves,1",
        "template,welcome,,unsubscribed,1",
        "template,welcome,,moved_on_pct,75.0",
        "conversion,started_to_purchase,Madrid,median_delay,60d",
        "month,Mar,Madrid,count,1",
        "week,2,all,count,1",
        "peak_months,,all,months,Jan Mar",
    ] {
        assert!(csv.lines().any(|l| l == line), "{line}\n{csv}");
    }
    // …and on the dashboard's page, written to a file.
    let page = f.path().join("report.html");
    f.run(
        &[
            "report",
            "--now",
            NOW,
            "--format",
            "html",
            "--output",
            page.to_str().unwrap(),
        ],
        0,
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for bit in [
        "<!doctype html>",
        "lead: 2 now · 4 reached · 75.0% to next",
        "<td>trial → lead</td><td>rule:20_trial</td><td>1</td>",
        "<td>welcome</td><td>4</td><td>0</td>",
        "trial_to_customer",
        "peaks: Jan, Mar",
    ] {
        assert!(html.contains(bit), "{bit}\n{html}");
    }
    assert!(!html.contains("<script"), "no script on the page");
}

#[test]
fn a_period_counts_only_what_happened_in_it() {
    let f = history();
    // [Jan 6 00:00, Jan 8 00:00): a (Jan 6) and b (Jan 7) moved to trial; the welcome
    // was sent before the period, so no template row.
    let v = json(
        &f,
        &[
            "--from",
            "2026-01-06T00:00:00Z",
            "--to",
            "2026-01-08T00:00:00Z",
        ],
    );
    assert_eq!(v["from"], "2026-01-06T00:00:00Z");
    let s = &v["stages"];
    assert_eq!(
        (
            s[0]["reached"].as_i64(),
            s[0]["to_next"].as_i64(),
            s[0]["conversion_pct"].as_f64()
        ),
        (Some(4), Some(2), Some(50.0))
    );
    // Lead stays ended in the period: a 1d, b 2d.
    assert_eq!(
        (
            s[0]["finished_stays"].as_i64(),
            s[0]["median_stay"].as_str(),
            s[0]["p90_stay"].as_str()
        ),
        (Some(2), Some("1d"), Some("2d"))
    );
    assert_eq!(
        (s[1]["reached"].as_i64(), s[1]["to_next"].as_i64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["templates"], serde_json::json!([]));
    assert_eq!(v["regressions"], serde_json::json!([]));
    assert_eq!(v["conversions"][1]["all"]["started"], 2);
    assert_eq!(v["buying_windows"]["segments"][0]["total"], 0);

    // Nonsense is refused with what to write.
    let out = f.run(&["report", "--by", "city"], 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tag:NAME"),
        "{out:?}"
    );
    let out = f.run(
        &[
            "report",
            "--from",
            "2026-02-01T00:00:00Z",
            "--to",
            "2026-01-01T00:00:00Z",
        ],
        2,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not before --to"),
        "{out:?}"
    );
}

#[test]
fn a_conversion_naming_no_stage_is_a_config_error_at_its_line() {
    let f = history();
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml")).unwrap();
    f.write(
        "embudo.yaml",
        &yaml.replace(
            "from: trial, to: customer",
            "from: stage:trail, to: customer",
        ),
    );
    let out = f.run(&["check"], 2);
    let err = String::from_utf8_lossy(&out.stderr).to_string() + stdout(&out).as_str();
    assert!(err.contains("no stage `trail`"), "{err}");
    assert!(err.contains("embudo.yaml:6"), "{err}");
}
