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
use std::time::Duration;
use support::*;

/// A one-stage funnel of `leads` leads (not yet imported) whose rule notes, in the
/// attribute `seen`, the instant of every pass that evaluates the lead (after `work`,
/// Rhai that makes each evaluation slower), and welcomes it once.
fn noting_funnel(smtp: &Server, leads: usize, tick: &str, rate: u32, work: &str) -> Folder {
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
                "funnel: {{ stages: [interest] }}\nschedule: {{ tick: \"{tick}\" }}\nsmtp: {{ url: \"{}\", from: \"Shop <shop@example.com>\" }}\nlimits: {{ rate_per_second: {rate} }}\n",
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

/// How many leads noted each instant (a lead noting one twice counts once).
fn per_instant(seen: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for instants in seen.values() {
        let distinct: std::collections::BTreeSet<&String> = instants.iter().collect();
        for t in distinct {
            *n.entry(t.clone()).or_insert(0) += 1;
        }
    }
    n
}

/// The daemon holding the named lease (`sender`, `tick`), by its process id.
fn holder_pid(f: &Folder, lease: &str) -> Option<u32> {
    let rows: Vec<(String,)> =
        block_on(f.fetch_all(&format!("SELECT holder FROM locks WHERE name = '{lease}'")));
    rows.first()
        .and_then(|(h,)| h.split(':').nth(1)?.parse().ok())
}

fn three(f: &Folder) -> Vec<Daemon> {
    ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start_named(f, n, &[]))
        .collect()
}

/// Every recipient got its email, copies of one email at most `spare` in all (the
/// sends under way at a kill -9 reach the server unrecorded and go again, with the
/// same Message-ID).
fn welcomed_once(smtp: &Server, leads: usize, spare: usize) {
    wait_until("every email", Duration::from_secs(120), || {
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
    let f = noting_funnel(&smtp, 1200, "*/2 * * * * *", 400, "");
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
        assert_eq!(
            sorted.len(),
            instants.len(),
            "{lead} evaluated twice in one pass: {instants:?}"
        );
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
        assert_eq!(
            **count, 1200,
            "the tick at {t} evaluated {count} of 1200 leads"
        );
    }
    // The batches were shared: more than one daemon evaluated a part of a tick.
    let sharing = ["a", "b", "c"]
        .iter()
        .filter(|n| {
            let log = std::fs::read_to_string(f.path().join(format!("{n}.log"))).unwrap();
            log.lines()
                .filter(|l| l.contains("evaluation pass"))
                .filter_map(|l| {
                    l.split("leads=")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .any(|n| n > 0 && n < 1200)
        })
        .count();
    assert!(
        sharing >= 2,
        "only {sharing} daemon(s) took a part of a tick"
    );
}

/// The instant a pass batch row is for, as rules print it.
fn instant_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// kill -9 of the daemon that sends, in the middle of its delivery round and (on
/// PostgreSQL) of a batch of a shared pass: the two others take the batch and the
/// sending over at once (its process is gone from this machine), every lead is
/// evaluated at that tick, and every welcome arrives, none twice but for the sends
/// under way at the kill, which go again with their Message-IDs.
#[test]
fn a_daemon_killed_mid_batch_and_mid_round_leaves_its_work_to_the_others() {
    let smtp = SmtpServer::start();
    // Slow rules (a loop per lead) make a batch last seconds; 50 emails a second make
    // the round last half a minute.
    let work = "let x = 0; for i in 0..3000 { x += i; }";
    let f = noting_funnel(&smtp, 1500, "*/5 * * * * *", 50, work);
    f.run(&["import", "leads.csv"], 0);
    let mut daemons = three(&f);
    let mut killed_pass = None;
    let mut victim = None;
    wait_until(
        "the sender mid-round (and mid-batch)",
        Duration::from_secs(90),
        || {
            let Some(pid) = holder_pid(&f, "sender") else {
                return false;
            };
            let sent = smtp.messages().len();
            if sent < 50 {
                return false;
            }
            let Some(i) = daemons.iter().position(|d| d.child.id() == pid) else {
                return false;
            };
            if on_postgres() {
                let held: Vec<(i64, String)> = block_on(f.fetch_all(
                "SELECT pass_at, holder FROM pass_batches WHERE done_at IS NULL AND holder IS NOT NULL",
            ));
                let Some((at, _)) = held
                    .iter()
                    .find(|(_, h)| h.split(':').nth(1) == Some(&pid.to_string()))
                else {
                    return false;
                };
                killed_pass = Some(*at);
            }
            victim = Some(i);
            true
        },
    );
    let victim = daemons.remove(victim.unwrap());
    victim.kill();
    let at_kill = smtp.messages().len();
    println!("killed the sender after {at_kill} emails, mid-batch of {killed_pass:?}");
    assert!(at_kill < 1500, "the round was over before the kill");

    welcomed_once(&smtp, 1500, 4);
    if let Some(at) = killed_pass {
        let t = instant_of(at);
        wait_until(
            "the killed batch's pass done",
            Duration::from_secs(60),
            || per_instant(&seen(&f)).get(&t) == Some(&1500),
        );
        let logs: String = daemons.iter().map(|d| d.log()).collect();
        assert!(logs.contains("takes the batch over"), "{logs}");
    }
    for d in daemons {
        d.stop();
    }
    let store = block_on(f.store());
    let counts = block_on(store.outbox_counts()).unwrap();
    assert_eq!(counts, [("sent".to_string(), 1500)]);
}

/// Three daemons reach a campaign's firing, each on its own clock a moment apart: one
/// fires it, the others find it fired, and each lead of the audience gets it once.
#[test]
fn a_campaign_fires_once_with_three_daemons_running() {
    let smtp = SmtpServer::start();
    let csv = (1..=300).fold(String::from("email,name\n"), |acc, i| {
        acc + format!("lead{i:05}@example.com,Lead {i}\n").as_str()
    });
    let f = Folder::with_files(&[
        (
            "embudo.yaml",
            &format!(
                "funnel: {{ stages: [interest] }}\nschedule: {{ tick: \"0 0 0 1 1 *\" }}\nsmtp: {{ url: \"{}\", from: \"Shop <shop@example.com>\" }}\nlimits: {{ rate_per_second: 400 }}\ncampaigns:\n  - id: spring\n    schedule: {{ cron: \"0 0 10 * * *\", timezone: UTC }}\n    audience: 'true'\n    template: spring\n    start: 2026-03-02\n",
                smtp.url()
            ),
        ),
        (
            "templates/spring.html",
            "---\nsubject: \"Primavera, {{ lead.name }}\"\n---\n<p>Hola {{ lead.name }}</p>\n",
        ),
        ("leads.csv", &csv),
    ]);
    f.run(&["import", "leads.csv", "--now", "2026-03-02T09:00:00Z"], 0);
    // Each daemon's clock starts three seconds before the firing, as it starts.
    let daemons: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|n| Daemon::start_named(&f, n, &["--now", "2026-03-02T09:59:57Z"]))
        .collect();
    welcomed_once(&smtp, 300, 0);
    // Every daemon has passed the firing instant and looked.
    std::thread::sleep(Duration::from_secs(3));
    let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
    let fired = logs
        .iter()
        .map(|l| l.matches("campaign fired").count())
        .sum::<usize>();
    assert_eq!(fired, 1, "{logs:#?}");
    for d in daemons {
        d.stop();
    }
    assert_eq!(by_recipient(&smtp).len(), 300);
    // The firing's record is the one that queued the emails.
    let firings: Vec<(String, i64)> =
        block_on(f.fetch_all("SELECT state, queued FROM campaign_firings"));
    assert_eq!(firings, [("done".to_string(), 300)]);
    let store = block_on(f.store());
    let counts = block_on(store.outbox_counts()).unwrap();
    assert_eq!(counts, [("sent".to_string(), 300)]);
}
