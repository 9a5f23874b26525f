//! Three `embudo run` processes on one database, as on three machines, with the real
//! binary, a real SMTP server and the suite's database: each tick's pass is shared so
//! every lead is evaluated once per tick (PostgreSQL), a daemon killed with -9 in the
//! middle of a batch and of a delivery round leaves its work to the others with no
//! email lost or doubled, and a campaign fires once however many daemons run.
//!
//! The daemons run on the machine's clock, as in production (leases and batch leases
//! are wall-clock), and the funnels have no quiet hours or rule the hour could change.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::*;

/// A one-stage funnel of `leads` leads (not yet imported) whose rule notes, in the
/// attribute `seen`, the instant of every pass that evaluates the lead (after `work`,
/// Rhai that makes each evaluation slower), and welcomes it once.
fn noting_funnel(smtp: &Server, leads: usize, tick: &str, work: &str) -> Folder {
    let csv = (1..=leads).fold(String::from("email,name\n"), |acc, i| {
        acc + format!("lead{i:05}@example.com,Lead {i}\n").as_str()
    });
    let rule = format!(
        "{work}\nlet seen = if \"seen\" in lead.attrs {{ lead.attrs.seen }} else {{ \"\" }};\nset(\"seen\", seen + now + \" \");\nsend(\"welcome\");\n"
    );
    Folder::with_files(&[
        (
            "embudo.yaml",
            &format!(
                "funnel: {{ stages: [interest] }}\nschedule: {{ tick: \"{tick}\" }}\nsmtp: {{ url: \"{}\", from: \"Shop <shop@example.com>\" }}\nlimits: {{ rate_per_second: 400 }}\n",
                smtp.url()
            ),
        ),
        (
            "templates/welcome.html",
            "---\nsubject: \"Hola {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n",
        ),
        ("rules/10_note.rhai", &rule),
        ("leads.csv", &csv),
    ])
}

type Server = SmtpServer;

/// Every lead's noted pass instants, by email.
fn seen(f: &Folder) -> BTreeMap<String, Vec<String>> {
    let rows: Vec<(String, Option<String>)> = block_on(f.fetch_all(
        "SELECT l.email, a.value FROM leads l LEFT JOIN lead_attrs a ON a.lead_id = l.id AND a.key = 'seen'",
    ));
    rows.into_iter()
        .map(|(email, value)| {
            let instants = value
                .unwrap_or_default()
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '-'))
                .filter(|s| s.len() == 20 && s.ends_with('Z'))
                .map(str::to_string)
                .collect();
            (email, instants)
        })
        .collect()
}

/// How many leads noted each instant.
fn per_instant(seen: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for instants in seen.values() {
        for t in instants {
            *n.entry(t.clone()).or_insert(0) += 1;
        }
    }
    n
}

/// The daemon holding the named lease (`sender`, `tick`), by its process id.
fn holder_pid(f: &Folder, lease: &str) -> Option<u32> {
    let rows: Vec<(String,)> = block_on(f.fetch_all(&format!(
        "SELECT holder FROM locks WHERE name = '{lease}'"
    )));
    rows.first()
        .and_then(|(h,)| h.split(':').nth(1)?.parse().ok())
}

/// The process ids holding an unfinished batch of a shared pass.
fn batch_holders(f: &Folder) -> Vec<u32> {
    let rows: Vec<(String,)> = block_on(f.fetch_all(
        "SELECT holder FROM pass_batches WHERE done_at IS NULL AND holder IS NOT NULL",
    ));
    rows.iter()
        .filter_map(|(h,)| h.split(':').nth(1)?.parse().ok())
        .collect()
}

fn three(f: &Folder) -> Vec<Daemon> {
    ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start_named(f, n, &[]))
        .collect()
}

/// Every recipient got the welcome, copies of one email at most `spare` in all (the
/// sends under way at a kill -9 reach the server unrecorded and go again, with the
/// same Message-ID).
fn welcomed_once(smtp: &Server, leads: usize, spare: usize) {
    wait_until("every welcome", Duration::from_secs(120), || {
        by_recipient(smtp).len() >= leads
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = by_recipient(smtp);
    let copies: usize = got.values().map(|ids| ids.len() - 1).sum();
    println!("{} recipients, {copies} repeated copies", got.len());
    assert_eq!(got.len(), leads, "every email arrived");
    assert!(copies <= spare, "{copies} emails doubled");
    for (to, ids) in &got {
        assert!(ids.iter().all(|id| id == &ids[0]), "{to}: {ids:?}");
    }
}

#[test]
fn three_daemons_share_each_tick_so_every_lead_is_evaluated_once_per_tick() {
    if postgres_only("on SQLite the daemons take turns at the tick lease, each firing whole") {
        return;
    }
    let smtp = SmtpServer::start();
    // 1 200 leads: a pass of three batches of 500, a tick every two seconds.
    let f = noting_funnel(&smtp, 1200, "*/2 * * * * *", "");
    f.run(&["import", "leads.csv"], 0);
    let daemons = three(&f);
    // Ticks after every daemon's start-up pass (each at its own instant) are counted.
    for d in &daemons {
        d.wait_log("evaluation pass", 1, Duration::from_secs(60));
    }
    let counted_from = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    wait_until("four shared ticks", Duration::from_secs(60), || {
        let n = per_instant(&seen(&f));
        n.keys()
            .filter(|t| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap() > counted_from)
            .count()
            >= 4
    });
    welcomed_once(&smtp, 1200, 0);
    for d in daemons {
        d.stop();
    }
    let seen = seen(&f);
    for (lead, instants) in &seen {
        let mut sorted = instants.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), instants.len(), "{lead} evaluated twice in one pass: {instants:?}");
    }
    let n = per_instant(&seen);
    let ticks: Vec<(&String, &usize)> = n
        .iter()
        .filter(|(t, _)| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap() > counted_from)
        .collect();
    println!("leads evaluated per tick: {ticks:?}");
    // The last tick may have been stopped half-way; every one before it is whole.
    let (_, whole) = ticks.split_last().unwrap();
    assert!(whole.len() >= 3, "{ticks:?}");
    for (t, count) in whole {
        assert_eq!(**count, 1200, "the tick at {t} evaluated {count} of 1200 leads");
    }
    // The batches were shared: more than one daemon evaluated a part of a tick.
    let sharing = ["a", "b", "c"]
        .iter()
        .filter(|n| {
            let log = std::fs::read_to_string(f.path().join(format!("{n}.log"))).unwrap();
            log.lines()
                .filter(|l| l.contains("evaluation pass"))
                .filter_map(|l| l.split("leads=").nth(1)?.split(' ').next()?.parse::<usize>().ok())
                .any(|n| n > 0 && n < 1200)
        })
        .count();
    assert!(sharing >= 2, "only {sharing} daemon(s) took a part of a tick");
}
