//! `embudo simulate` evaluates at each tick only the leads whose outcome can change
//! (their horizon has come, or their data changed). Proof that this skips nothing: the
//! same simulations run with `--full` (every lead at every tick, as the daemon's tick)
//! give byte-identical output: timeline, funnel, emails, counts and rule errors.

mod support;

use support::*;

/// Runs `simulate` with `args`, sparse and full, and returns the JSON of both.
fn both(f: &Folder, args: &[&str]) -> (String, String) {
    let run = |full: bool| {
        let mut a = vec!["simulate", "--format", "json"];
        a.extend(args);
        if full {
            a.push("--full");
        }
        stdout(&f.run(&a, 0))
    };
    (run(false), run(true))
}

fn assert_same(sparse: &str, full: &str) {
    if sparse != full {
        let diff: Vec<String> = sparse
            .lines()
            .zip(full.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(20)
            .map(|(i, (a, b))| format!("line {}:\n  sparse: {a}\n  full:   {b}", i + 1))
            .collect();
        panic!(
            "sparse and full simulations differ ({} vs {} lines):\n{}",
            sparse.lines().count(),
            full.lines().count(),
            diff.join("\n")
        );
    }
}

/// Reads the clock every way the rule API allows, each reading behind its own
/// once-per-key send (visible in the timeline): instants against `now` and `now`
/// arithmetic both ways, a duration's whole hours and days, `days_since` of a past
/// and a moving instant, `local(now)` fields, `days_until_anniversary`, the windows of
/// `count` and `sent_count`, `last_sent`, and a moving instant kept in an attribute.
const PROBE: &str = r#"
if lead.email.ends_with("@tienda.example") { return; }
let age = now - lead.created_at;
if now >= lead.created_at + days(33) { send("edu-guide", "created+33d"); }
if lead.created_at - now < -days(40) - hours(7) { send("edu-guide", "created+40d7h"); }
if age.hours >= 900 && age.days < 45 { send("edu-guide", "900h"); }
let l = local(now);
if l.weekday == 3 && l.hour == 13 { send("edu-guide", "wed13-" + l.month + "-" + l.day); }
if l.day == 29 && l.minute < 30 { send("edu-guide", "day29-" + l.month); }
if local(now + hours(30)).hour == 2 && l.month == 3 { send("edu-guide", "dst-" + l.day); }
if count("page_view", days(9) + hours(12)) >= 2 { send("edu-guide", "burst-" + l.month + "-" + l.day); }
if count("page_view", now - lead.created_at) >= 3 { send("edu-guide", "views3"); }
let welcomed = last_sent("edu-welcome");
if welcomed != () && days_since(welcomed) == 10 && sent_count(hours(50)) >= 3 {
    send("edu-guide", "quiet10");
}
if days_since(now - hours(60)) == 2 && days_since(lead.stage_entered_at) == 5 {
    send("edu-guide", "stage20");
}
if "birthday" in lead.attrs && days_until_anniversary(lead.attrs.birthday) == 1 {
    send("edu-guide", "birthday-eve");
}
if lead.id == 3 { set("probe_seen", now); }
if lead.id == 4 && ("" + (now - days(1))).contains("T12:17") { send("edu-guide", "text"); }
"#;

#[test]
fn the_tienda_example_with_every_clock_reading_is_the_same_sparse_and_full() {
    let f = Folder::copy_of("examples/tienda");
    f.write("rules/90_probe.rhai", PROBE);
    // Hourly from a time off the hour, across the change to summer time (29 March),
    // with the example's last events and both its campaigns (one fires daily).
    let (sparse, full) = both(
        &f,
        &[
            "--from",
            "2026-03-16T00:17:00Z",
            "--to",
            "2026-04-01T00:00:00Z",
            "--step",
            "1h",
            "--leads",
            "leads.csv",
            "--events",
            "events.csv",
        ],
    );
    assert_same(&sparse, &full);
    // The probes did fire: the proof is not about an empty timeline.
    for key in [
        "created+33d",
        "900h",
        "wed13-",
        "day29-",
        "dst-",
        "burst-",
        "views3",
        "quiet10",
        "stage20",
        "birthday-eve",
        "text",
    ] {
        assert!(sparse.contains(key), "no `{key}` send in:\n{sparse}");
    }
    assert!(sparse.contains("\"campaign_firings\": "), "{sparse}");
}

#[test]
fn a_fine_step_across_a_daylight_saving_night_is_the_same_sparse_and_full() {
    let f = Folder::copy_of("examples/tienda");
    f.write("rules/90_probe.rhai", PROBE);
    let (sparse, full) = both(
        &f,
        &[
            "--from",
            "2026-03-28T12:03:00Z",
            "--to",
            "2026-03-29T14:00:00Z",
            "--step",
            "13m",
            "--leads",
            "leads.csv",
            "--events",
            "events.csv",
        ],
    );
    assert_same(&sparse, &full);
    assert!(sparse.contains("\"action\": \"send\""), "{sparse}");
}

/// Leads over several zones for the demo funnel, and events through the span.
fn demo_data(leads: usize) -> (String, String) {
    let zones = [
        "Europe/Madrid",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "",
    ];
    let mut l = String::from("email,name,stage,timezone,created_at\n");
    let mut e = String::from("email,kind,at\n");
    for i in 0..leads {
        let stage = ["", "", "evaluation", "customer"][i % 4];
        l += &format!(
            "p{i}@example.com,P {i},{stage},{},2026-02-{:02}T{:02}:00:00Z\n",
            zones[i % zones.len()],
            1 + i % 27,
            i % 24
        );
        for k in 0..(i % 7) {
            let kind = [
                "page_view",
                "page_view",
                "page_view",
                "quote_requested",
                "purchase",
            ][(i + k) % 5];
            let minute = (i * 37 + k * 1013) % (13 * 24 * 60);
            e += &format!(
                "p{i}@example.com,{kind},2026-03-{:02}T{:02}:{:02}:00Z\n",
                1 + minute / (24 * 60),
                minute / 60 % 24,
                minute % 60
            );
        }
    }
    (l, e)
}

#[test]
fn the_demo_funnel_is_the_same_sparse_and_full() {
    let f = Folder::demo();
    let (leads, events) = demo_data(40);
    f.write("leads.csv", &leads);
    f.write("events.csv", &events);
    let (sparse, full) = both(
        &f,
        &[
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-15T00:00:00Z",
            "--step",
            "1h",
            "--leads",
            "leads.csv",
            "--events",
            "events.csv",
        ],
    );
    assert_same(&sparse, &full);
    for template in ["edu-benefits", "eval-comparison", "cust-thanks"] {
        assert!(sparse.contains(template), "no {template} in:\n{sparse}");
    }
}
