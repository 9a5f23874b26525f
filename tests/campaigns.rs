//! The example's campaigns (examples/tienda/embudo.yaml) with chosen clocks: each fires
//! at its local times, in two zones and across a daylight-saving change, once per
//! period; a firing interrupted half-way is resumed without sending anyone twice; a
//! missed firing follows `missed:`; and a dry run names exactly whom the real run sends.
//! The example's rules are left out, so only campaigns queue email.

mod support;

use chrono::{DateTime, Utc};
use support::*;

/// The tienda funnel with its campaigns and templates, no rules, and these leads.
fn shop(leads: &str) -> Folder {
    let f = Folder::copy_of("examples/tienda");
    for e in std::fs::read_dir(f.path().join("rules")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rhai") {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::remove_dir_all(f.path().join("rules/tests")).unwrap();
    f.set_smtp_url("file://./mail");
    f.write("leads.csv", leads);
    f.run(&["import", "leads.csv", "--now", "2026-03-01T08:00:00Z"], 0);
    f
}

fn tick(f: &Folder, at: &str) -> String {
    stdout(&f.run(&["tick", "--now", at], 0))
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// (template, key, state, sent_at) of every outbox row of a lead.
async fn rows(f: &Folder, email: &str) -> Vec<(String, String, String, Option<DateTime<Utc>>)> {
    let store = f.store().await;
    let id = f.lead_id(email).await;
    let r = store
        .outbox_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.template.to_string(),
                r.key,
                r.state.as_str().to_string(),
                r.sent_at,
            )
        })
        .collect();
    store.close().await;
    r
}

const LEADS: &str = "email,name,stage,locale,timezone,attr.birthday
ana@example.es,Ana,customer,es,Europe/Madrid,1990-03-28
carlos@example.mx,Carlos,customer,es-MX,America/Mexico_City,1985-03-28
dora@example.es,Dora,interest,es,Europe/Madrid,1979-03-29
";

#[tokio::test]
async fn the_birthday_email_goes_at_nine_in_each_leads_own_zone_across_the_dst_change() {
    let f = shop(LEADS);
    // 28 March, 09:00 in Madrid (CET) is 08:00 UTC: the campaign fires. Ana is in Madrid
    // and gets it now; Carlos's 09:00 in Mexico City is 15:00 UTC.
    let out = tick(&f, "2026-03-28T08:00:00Z");
    assert!(
        out.contains(
            "campaign birthday [2026-03-28]: 2 lead(s) in the audience, 2 email(s) queued"
        ),
        "{out}"
    );
    assert!(out.contains("sent 1"), "{out}");
    assert!(tick(&f, "2026-03-28T14:59:00Z").contains("sent 0"));
    assert!(tick(&f, "2026-03-28T15:00:00Z").contains("sent 1"));
    // Once a year: another tick the same day fires nothing more.
    let out = tick(&f, "2026-03-28T15:05:00Z");
    assert!(!out.contains("campaign birthday"), "{out}");
    // 29 March: Madrid is on summer time, 09:00 is 07:00 UTC. Dora's day.
    let out = tick(&f, "2026-03-29T07:00:00Z");
    assert!(
        out.contains(
            "campaign birthday [2026-03-29]: 1 lead(s) in the audience, 1 email(s) queued"
        ),
        "{out}"
    );
    assert!(out.contains("sent 1"), "{out}");

    let sent = |r: Vec<(String, String, String, Option<DateTime<Utc>>)>| {
        r.into_iter()
            .filter(|r| r.0 == "cust-birthday")
            .map(|r| (r.1, r.2, r.3))
            .collect::<Vec<_>>()
    };
    let state = |s: &str| s.to_string();
    assert_eq!(
        sent(rows(&f, "ana@example.es").await),
        [(
            "2026-03-28".into(),
            state("sent"),
            Some(t("2026-03-28T08:00:00Z"))
        )]
    );
    assert_eq!(
        sent(rows(&f, "carlos@example.mx").await),
        [(
            "2026-03-28".into(),
            state("sent"),
            Some(t("2026-03-28T15:00:00Z"))
        )]
    );
    assert_eq!(
        sent(rows(&f, "dora@example.es").await),
        [(
            "2026-03-29".into(),
            state("sent"),
            Some(t("2026-03-29T07:00:00Z"))
        )]
    );
    // The Mexican lead gets the es-MX fallback to Spanish; each got exactly one.
    assert_eq!(
        f.mails()
            .iter()
            .filter(|m| m.template() == "cust-birthday")
            .count(),
        3
    );

    // `campaign list` shows the next firing in local time and the last one.
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-03-29T07:30:00Z"], 0));
    assert!(
        list.contains("birthday  template cust-birthday  next: 2026-03-30 09:00 Europe/Madrid (2026-03-30T07:00:00Z), key 2026-03-30"),
        "{list}"
    );
    assert!(
        list.contains("last: key 2026-03-29 done (1 in the audience, 1 queued)"),
        "{list}"
    );
}

#[tokio::test]
async fn a_dry_run_names_exactly_whom_the_real_run_sends_and_a_second_run_sends_nobody() {
    let leads = "email,name,stage,tags,timezone
a@school.es,A,customer,school,Europe/Madrid
b@school.mx,B,customer,school,America/Mexico_City
c@office.es,C,customer,office,Europe/Madrid
d@school.es,D,interest,school,Europe/Madrid
";
    let f = shop(leads);
    let at = "2026-08-01T07:00:00Z";
    let dry = stdout(&f.run(
        &[
            "campaign",
            "run",
            "back-to-school",
            "--dry-run",
            "--now",
            at,
        ],
        0,
    ));
    assert!(
        dry.contains("campaign back-to-school [2026] (dry run): 2 lead(s) in the audience now"),
        "{dry}"
    );
    let mut named: Vec<&str> = dry.lines().filter_map(|l| l.strip_prefix("  ")).collect();
    named.sort();
    assert_eq!(named, ["a@school.es", "b@school.mx"]);
    assert!(f.mails().is_empty());

    let real = stdout(&f.run(&["campaign", "run", "back-to-school", "--now", at], 0));
    assert!(
        real.contains("2 lead(s) in the audience, 2 email(s) queued"),
        "{real}"
    );
    // deliver_at_local 09:00 in each lead's zone, spread over 6 hours: all out by the
    // evening in Mexico City.
    tick(&f, "2026-08-01T07:00:00Z");
    tick(&f, "2026-08-01T21:00:00Z");
    let mut got: Vec<String> = f
        .mails()
        .iter()
        .map(|m| {
            m.to.rsplit('<')
                .next()
                .unwrap()
                .trim_end_matches('>')
                .to_string()
        })
        .collect();
    got.sort();
    assert_eq!(got, named);
    // Once a year: running it again queues nothing new.
    let again = stdout(&f.run(
        &[
            "campaign",
            "run",
            "back-to-school",
            "--now",
            "2026-08-02T07:00:00Z",
        ],
        0,
    ));
    assert!(again.contains("0 email(s) queued"), "{again}");
    let e = stderr(&f.run(&["campaign", "run", "black-friday"], 2));
    assert!(
        e.contains("no campaign `black-friday`") && e.contains("back-to-school"),
        "{e}"
    );
}

/// A firing that stopped half-way (the process died after queueing some of its
/// audience) is resumed by the next tick: the rest are queued, nobody twice.
#[tokio::test]
async fn a_firing_interrupted_half_way_is_resumed_without_duplicates() {
    let leads = (1..=40).fold(String::from("email,name,stage\n"), |acc, i| {
        acc + format!("c{i:02}@example.es,C{i},customer\n").as_str()
    });
    let f = shop(&leads);
    // Christmas, 14 December 10:00 Madrid = 09:00 UTC. The interrupted run: the firing
    // recorded as running and the first 15 customers queued, as the daemon would have
    // left it.
    let at = t("2026-12-14T09:00:00Z");
    {
        let store = f.store().await;
        assert!(
            store
                .begin_firing("christmas", "2026", at, at)
                .await
                .unwrap()
        );
        let template = embudo::domain::TemplateName::parse("christmas").unwrap();
        let mut first = Vec::new();
        for i in 1..=15 {
            let id = f.lead_id(&format!("c{i:02}@example.es")).await;
            first.push((id, "customer".to_string(), at));
        }
        let n = store
            .enqueue_campaign("christmas", &template, "2026", &first, at)
            .await
            .unwrap();
        assert_eq!(n, 15);
        store.close().await;
    }
    let out = tick(&f, "2026-12-14T09:01:00Z");
    assert!(
        out.contains("campaign christmas [2026]: 40 lead(s) in the audience, 25 email(s) queued"),
        "{out}"
    );
    // Spread over 4 hours: by 13:00 UTC all 40 have gone, each once.
    tick(&f, "2026-12-14T13:01:00Z");
    let mails = f.mails();
    assert_eq!(
        mails.iter().filter(|m| m.template() == "christmas").count(),
        40
    );
    let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    to.dedup();
    assert_eq!(to.len(), 40);
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-12-14T13:02:00Z"], 0));
    assert!(
        list.contains("christmas  template christmas  next: 2027-12-14 10:00"),
        "{list}"
    );
    assert!(
        list.contains("last: key 2026 done (40 in the audience, 40 queued)"),
        "{list}"
    );
}

#[test]
fn a_missed_firing_is_skipped_or_caught_up_as_the_campaign_says() {
    let leads = "email,name,stage,attr.birthday\nana@example.es,Ana,customer,1990-12-13\n";
    // Christmas says catch_up within 2 days; back-to-school says skip.
    let f = shop(leads);
    tick(&f, "2026-07-01T08:00:00Z");
    // Before anything runs, `campaign list` shows the firing as due.
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-08-02T07:59:00Z"], 0));
    assert!(
        list.contains("due since 2026-08-01 09:00 (key 2026)"),
        "{list}"
    );
    // Nothing ran on 1 August: a day later, back-to-school is skipped, visibly.
    let out = tick(&f, "2026-08-02T08:00:00Z");
    assert!(out.contains("campaign back-to-school [2026]: skipped, missed: no daemon or tick ran at its time (missed: skip)"), "{out}");
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-08-02T08:00:00Z"], 0));
    assert!(list.contains("last: key 2026 skipped"), "{list}");
    // Christmas missed by a day: caught up. Ana's birthday two days ago is older than
    // the birthday's 12-hour grace: not sent.
    let out = tick(&f, "2026-12-15T09:00:00Z");
    assert!(
        out.contains("campaign christmas [2026]: 1 lead(s) in the audience, 1 email(s) queued"),
        "{out}"
    );
    let templates: Vec<String> = f.mails().iter().map(|m| m.template().to_string()).collect();
    assert_eq!(templates, ["christmas"]);
    // A year later, missed by three days: older than its grace, skipped.
    let out = tick(&f, "2027-12-17T09:00:00Z");
    assert!(
        out.contains("campaign christmas [2027]: skipped, missed: older than its grace (2d)"),
        "{out}"
    );
}

#[test]
fn firings_before_a_campaign_was_first_loaded_never_fire() {
    let f = shop("email,name,stage,tags\na@school.es,A,customer,school\n");
    // The first pass ever is on 3 August: 1 August's back-to-school was before embudo
    // knew the campaign, so it neither fires nor counts as missed.
    let out = tick(&f, "2026-08-03T08:00:00Z");
    assert!(!out.contains("back-to-school"), "{out}");
    assert!(f.mails().is_empty());
}

#[tokio::test]
async fn the_consumable_reminder_goes_thirty_days_after_the_purchase_at_ten_local() {
    // Paper bought (an imported last_purchase date) on 1 March by a customer in Madrid
    // and one in the Canaries (an hour behind Madrid).
    let leads = "email,name,stage,timezone,attr.last_purchase
m@example.es,M,customer,Europe/Madrid,2026-03-01
c@example.es,C,customer,Atlantic/Canary,2026-03-01
";
    let f = shop(leads);
    // 30 March, 10:00 in Madrid (summer time since the 29th) is 08:00 UTC.
    let out = tick(&f, "2026-03-30T08:00:00Z");
    assert!(
        out.contains("campaign consumable-reminder [2026-03-30]: 0 lead(s)"),
        "{out}"
    );
    let out = tick(&f, "2026-03-31T08:00:00Z");
    assert!(out.contains("campaign consumable-reminder [2026-03-31]: 2 lead(s) in the audience, 2 email(s) queued"), "{out}");
    // 10:00 in the Canaries is 09:00 UTC.
    tick(&f, "2026-03-31T09:00:00Z");
    let at = |r: Vec<(String, String, String, Option<DateTime<Utc>>)>| {
        r.into_iter()
            .find(|r| r.0 == "cust-consumable")
            .and_then(|r| r.3)
    };
    assert_eq!(
        at(rows(&f, "m@example.es").await),
        Some(t("2026-03-31T08:00:00Z"))
    );
    assert_eq!(
        at(rows(&f, "c@example.es").await),
        Some(t("2026-03-31T09:00:00Z"))
    );
    // The next day nobody is at 30 days: nothing more.
    let out = tick(&f, "2026-04-01T08:00:00Z");
    assert!(
        out.contains("campaign consumable-reminder [2026-04-01]: 0 lead(s)"),
        "{out}"
    );
}

#[test]
fn pausing_one_campaign_holds_its_emails_and_nothing_else() {
    let leads = "email,name,stage,attr.birthday\nana@example.es,Ana,customer,1990-12-14\n";
    let f = shop(leads);
    // A typo in an emergency must not look like success.
    let e = stderr(&f.run(&["pause", "--campaign", "xmas"], 2));
    assert!(
        e.contains("no campaign `xmas`") && e.contains("christmas"),
        "{e}"
    );
    f.run(&["pause", "--campaign", "christmas"], 0);
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-12-01T09:00:00Z"], 0));
    assert!(
        list.contains("paused: its emails wait until `embudo resume --campaign christmas`"),
        "{list}"
    );
    // 14 December: her birthday (08:00 UTC) and Christmas (09:00 UTC).
    tick(&f, "2026-12-14T08:00:00Z");
    let out = tick(&f, "2026-12-14T13:00:00Z");
    assert!(
        out.contains("campaign christmas [2026]: 1 lead(s) in the audience, 1 email(s) queued"),
        "{out}"
    );
    let templates: Vec<String> = f.mails().iter().map(|m| m.template().to_string()).collect();
    assert_eq!(
        templates,
        ["cust-birthday"],
        "the birthday went, Christmas waits"
    );
    f.run(&["resume", "--campaign", "christmas"], 0);
    let out = tick(&f, "2026-12-14T13:05:00Z");
    assert!(out.contains("sent 1"), "{out}");
    assert_eq!(f.mails().len(), 2);
}

/// A firing caught up late judges its audience at its own instant: the birthday of
/// 14 May is the 14 May leads', even when handled after midnight in their zone.
#[tokio::test]
async fn a_caught_up_firing_judges_its_audience_at_the_firings_time() {
    let leads = "email,name,stage,timezone,attr.birthday
tok14@example.jp,T14,customer,Asia/Tokyo,1990-05-14
tok15@example.jp,T15,customer,Asia/Tokyo,1990-05-15
";
    let f = shop(leads);
    tick(&f, "2026-05-13T07:00:00Z");
    // 14 May's firing (09:00 Madrid, 07:00 UTC) handled 9 hours late, inside the 12-hour
    // grace: it is already 15 May, 01:00, in Tokyo.
    let out = tick(&f, "2026-05-14T16:00:00Z");
    assert!(
        out.contains(
            "campaign birthday [2026-05-14]: 1 lead(s) in the audience, 1 email(s) queued"
        ),
        "{out}"
    );
    tick(&f, "2026-05-15T07:00:00Z");
    let keys = |r: Vec<(String, String, String, Option<DateTime<Utc>>)>| {
        r.into_iter()
            .filter(|r| r.0 == "cust-birthday")
            .map(|r| r.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(rows(&f, "tok14@example.jp").await), ["2026-05-14"]);
    assert_eq!(keys(rows(&f, "tok15@example.jp").await), ["2026-05-15"]);
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-05-15T08:00:00Z"], 0));
    assert!(list.contains("last: key 2026-05-15 done"), "{list}");
}

#[test]
fn campaign_run_keeps_to_the_campaigns_dates_and_a_missing_template_fires_nothing() {
    let f = shop("email,name,stage,tags\na@school.es,A,customer,school\n");
    // back-to-school ends 2030-12-31: in 2031 `campaign run` means its last firing.
    let out = stdout(&f.run(
        &[
            "campaign",
            "run",
            "back-to-school",
            "--dry-run",
            "--now",
            "2031-09-01T00:00:00Z",
        ],
        0,
    ));
    assert!(out.contains("campaign back-to-school [2030]"), "{out}");
    // A campaign whose template is gone: tick says so, exits 1, records nothing.
    std::fs::remove_file(f.path().join("templates/christmas.html")).unwrap();
    std::fs::remove_file(f.path().join("templates/christmas.en.html")).unwrap();
    let out = f.run(&["tick", "--now", "2026-12-14T09:00:00Z"], 1);
    assert!(
        stdout(&out)
            .contains("campaign christmas: not fired: its template `christmas` does not exist"),
        "{}",
        stdout(&out)
    );
    let e = stderr(&f.run(&["campaign", "run", "christmas"], 2));
    assert!(e.contains("cannot fire"), "{e}");
    let list = stdout(&f.run(&["campaign", "list", "--now", "2026-12-14T09:01:00Z"], 0));
    let christmas = list
        .lines()
        .skip_while(|l| !l.starts_with("christmas"))
        .nth(1);
    assert!(
        christmas.is_none_or(|l| !l.contains("last:")),
        "no firing recorded:\n{list}"
    );
}

#[test]
fn check_reads_audiences_like_rules_and_points_into_embudo_yaml() {
    let f = shop("email,name\na@example.es,A\n");
    let yaml = std::fs::read_to_string(f.path().join("embudo.yaml")).unwrap();
    f.write(
        "embudo.yaml",
        &yaml.replace(
            "audience: 'lead.stage == \"customer\"'",
            "audience: 'lead.stage == \"custmer\" && send(\"christmas\")'",
        ),
    );
    let o = stdout(&f.run(&["check"], 1));
    assert!(o.contains("error: unknown stage `custmer`"), "{o}");
    assert!(
        o.contains("error: `send` in the audience of campaign `christmas`: an audience only reads"),
        "{o}"
    );
    // Both point at the line of embudo.yaml where the audience is written.
    let line = yaml
        .lines()
        .position(|l| l.contains("audience: 'lead.stage == \"customer\"'"))
        .unwrap()
        + 1;
    assert!(o.contains(&format!(" --> embudo.yaml:{line}:")), "{o}");
}
