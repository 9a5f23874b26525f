//! The nurture loop end to end on examples/tienda: the real binary, ticks at chosen
//! times, and the emails read back from a real SMTP server (aiosmtpd).

mod support;

use embudo::delivery::signing::Signer;
use embudo::domain::LeadId;
use std::time::Duration;
use support::*;

// Both leads are awake at the ticks below (the example's quiet hours are 21:00–08:00
// in each lead's zone; tests/policy.rs shows the holds).
const LEADS: &str = "email,name,stage,tags,locale,timezone,created_at,attr.segment
  Ana@Example.com ,Ana López,,school,es,Europe/Madrid,,familia
bob@example.com,Bob Carter,,office,en,Europe/London,,office
";

fn tick(f: &Folder, at: &str) -> String {
    stdout(&f.run(&["tick", "--now", at], 0))
}

fn new_mail(smtp: &SmtpServer, seen: &mut usize, expect: usize) -> Vec<Mail> {
    let all = smtp.wait_for(*seen + expect, Duration::from_secs(10));
    // Give a stray extra email the chance to arrive and fail the count.
    std::thread::sleep(Duration::from_millis(200));
    let all = if all.len() == *seen + expect {
        smtp.messages()
    } else {
        all
    };
    let ids: Vec<_> = all
        .iter()
        .map(|m| (m.to.clone(), m.template().to_string()))
        .collect();
    assert_eq!(
        all.len(),
        *seen + expect,
        "expected {expect} new email(s); all so far: {ids:?}"
    );
    let fresh: Vec<Mail> = all.into_iter().filter(|m| m.template() != "").collect();
    let mut fresh = fresh;
    fresh.sort_by_key(|m| m.to.clone());
    *seen += expect;
    fresh
}

/// The latest email of `template` to `to`.
fn find<'a>(mail: &'a [Mail], to: &str, template: &str) -> &'a Mail {
    let hits: Vec<&Mail> = mail
        .iter()
        .filter(|m| m.to.contains(to) && m.template() == template)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "exactly one {template} to {to}; got {}",
        hits.len()
    );
    hits[0]
}

fn check_marketing_headers(m: &Mail, lead: LeadId) {
    assert_eq!(m.from, "\"Tienda Sol\" <hola@tienda.example>");
    let lu = m.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(
        lu.contains("<mailto:baja@tienda.example?subject=unsubscribe>"),
        "{lu}"
    );
    let url = lu.split('<').nth(1).unwrap().split('>').next().unwrap();
    let token = url
        .strip_prefix("https://tienda.example/embudo/unsubscribe/")
        .unwrap_or_else(|| panic!("{url}"));
    // The token verifies with the key alone and names this lead and its address.
    let (id, digest) = Signer::new(SIGNING_KEY.as_bytes())
        .verify_unsubscribe(token)
        .expect("a genuine token");
    assert_eq!(id, lead.0);
    let to = m.to.rsplit('<').next().unwrap().trim_end_matches('>');
    let email = embudo::domain::EmailAddress::parse(to).unwrap();
    assert!(email.digest().starts_with(&digest));
    assert_eq!(
        m.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        m.text.contains(url),
        "the text part carries the unsubscribe link:\n{}",
        m.text
    );
    assert!(
        m.html.contains(&format!("href=\"{url}\"")),
        "the HTML part links to unsubscribe:\n{}",
        m.html
    );
}

#[tokio::test]
async fn the_example_funnel_nurtures_qualifies_and_converts_leads_over_smtp() {
    let smtp = SmtpServer::start();
    let f = Folder::copy_of("examples/tienda");
    f.set_smtp_url(&smtp.url());
    f.write("new-leads.csv", LEADS);
    f.run(
        &["import", "new-leads.csv", "--now", "2026-03-02T09:00:00Z"],
        0,
    );
    let store = f.store().await;
    let ana = store
        .find_lead_id("ana@example.com")
        .await
        .unwrap()
        .expect("email normalised");
    let bob = f.lead_id("bob@example.com").await;
    let mut seen = 0;

    // Day 0: every new lead gets the phase-I welcome, in its own language.
    let out = tick(&f, "2026-03-02T10:00:00Z");
    assert!(out.contains("2 email(s) queued; sent 2"), "{out}");
    let mail = new_mail(&smtp, &mut seen, 2);
    let w = find(&mail, "ana@example.com", "edu-welcome");
    assert_eq!(w.subject, "Bienvenido/a a Tienda Sol, Ana López");
    assert_eq!(w.to, "Ana López <ana@example.com>");
    assert!(
        w.text.contains("Hola, Ana López") || w.text.contains("Ana López"),
        "{}",
        w.text
    );
    assert!(w.html.contains("<h1>"), "{}", w.html);
    check_marketing_headers(w, ana);
    let w = find(&mail, "bob@example.com", "edu-welcome");
    assert_eq!(w.subject, "Welcome to Tienda Sol, Bob Carter");
    check_marketing_headers(w, bob);
    // The Message-ID the server saw is the one the outbox recorded.
    let rows = store.outbox_of(ana).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].template.as_str(), rows[0].state.as_str()),
        ("edu-welcome", "sent")
    );
    assert_eq!(
        rows[0].message_id.as_deref(),
        Some(
            find(&mail, "ana@example.com", "edu-welcome")
                .message_id
                .as_str()
        )
    );
    assert_eq!(
        rows[0].sent_at.map(|t| t.to_rfc3339()),
        Some("2026-03-02T10:00:00+00:00".into()),
        "stamped with --now"
    );

    // Day 1: nothing is due; a tick sends nothing twice.
    let out = tick(&f, "2026-03-03T10:00:00Z");
    assert!(out.contains("0 email(s) queued; sent 0"), "{out}");
    new_mail(&smtp, &mut seen, 0);

    // Day 3: the follow-up, 3 days after the welcome.
    tick(&f, "2026-03-05T10:00:00Z");
    let mail = new_mail(&smtp, &mut seen, 2);
    assert_eq!(
        find(&mail, "ana@example.com", "edu-benefits").subject,
        "Ana López, tres formas de ahorrar en material escolar"
    );
    assert_eq!(
        find(&mail, "bob@example.com", "edu-benefits").subject,
        "Bob Carter, three ways to save on school supplies"
    );

    // Ana asks for a quote: the event runs her rules at once, moving her to phase II
    // and queueing the comparison in the same pass.
    let out = stdout(&f.run(
        &[
            "event",
            "ANA@example.com",
            "quote_requested",
            "--at",
            "2026-03-05T11:00:00Z",
            "--prop",
            "items=40",
        ],
        0,
    ));
    assert!(
        out.contains("queued 1 email(s) and made 1 stage move(s)"),
        "{out}"
    );
    tick(&f, "2026-03-05T11:05:00Z");
    let mail = new_mail(&smtp, &mut seen, 1);
    let c = find(&mail, "ana@example.com", "eval-comparison");
    assert_eq!(
        c.subject,
        "Tienda Sol frente a otras tiendas: la comparación honesta"
    );
    check_marketing_headers(c, ana);

    // Bob buys: phase III, and the (transactional) thanks, without List-Unsubscribe.
    let out = stdout(&f.run(
        &[
            "event",
            &bob.0.to_string(),
            "purchase",
            "--at",
            "2026-03-06T15:00:00Z",
            "--prop",
            "amount=49.95",
        ],
        0,
    ));
    assert!(
        out.contains("queued 1 email(s) and made 1 stage move(s)"),
        "{out}"
    );
    tick(&f, "2026-03-06T15:05:00Z");
    let mail = new_mail(&smtp, &mut seen, 1);
    let t = find(&mail, "bob@example.com", "cust-thanks");
    assert_eq!(t.subject, "Thank you for your order, Bob Carter!");
    assert_eq!(
        t.header("List-Unsubscribe"),
        None,
        "transactional email has no List-Unsubscribe"
    );

    // Two days after the comparison, Ana's price list is due, but she has had 3
    // emails in 7 days (the example's per-lead cap): it waits until her welcome of
    // 2 March leaves the window, and then goes.
    let out = tick(&f, "2026-03-07T11:05:00Z");
    assert!(out.contains("sent 0, held 1"), "{out}");
    let out = tick(&f, "2026-03-09T10:05:00Z");
    assert!(out.contains("sent 1, held 0"), "{out}");
    let mail = new_mail(&smtp, &mut seen, 1);
    assert!(
        find(&mail, "ana@example.com", "eval-price")
            .subject
            .starts_with("Tu tarifa 2026, Ana López")
    );

    // The stage history tells the story, with the rule that moved each lead.
    let hist = store.stage_history(ana).await.unwrap();
    let steps: Vec<_> = hist
        .iter()
        .map(|h| {
            (
                h.from.as_ref().map(|s| s.to_string()),
                h.to.to_string(),
                h.cause.clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (None, "interest".into(), "import".into()),
            (
                Some("interest".into()),
                "evaluation".into(),
                "rule:20_qualify".into()
            )
        ]
    );
    let hist = store.stage_history(bob).await.unwrap();
    assert_eq!(
        hist.last().map(|h| (h.to.as_str(), h.cause.as_str())),
        Some(("customer", "rule:10_purchase"))
    );
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts, [("sent".to_string(), 7)]);
}

#[test]
fn the_daemon_sends_the_welcome_at_start_and_an_events_email_within_seconds() {
    let smtp = SmtpServer::start();
    let f = Folder::copy_of("examples/tienda");
    f.set_smtp_url(&smtp.url());
    // The daemon and `embudo event` share the machine's clock: without quiet hours the
    // welcome leaves at once at any hour the suite runs.
    f.without_quiet_hours();
    f.write("new-leads.csv", LEADS);
    f.run(&["import", "new-leads.csv"], 0);
    let daemon = Daemon::start(&f, &[]);
    let mail = smtp.wait_for(2, Duration::from_secs(20));
    assert_eq!(mail.len(), 2, "the start-up pass welcomes both leads");
    f.run(&["event", "bob@example.com", "purchase"], 0);
    let started = std::time::Instant::now();
    let mail = smtp.wait_for(3, Duration::from_secs(10));
    let waited = started.elapsed();
    assert_eq!(mail.len(), 3);
    assert!(mail.iter().any(|m| m.template() == "cust-thanks"));
    assert!(
        waited < Duration::from_secs(5),
        "the running daemon sent the event's email after {waited:?}"
    );
    // SIGTERM: a clean stop.
    daemon.stop();
}

#[tokio::test]
async fn a_server_that_is_down_leaves_the_email_for_a_retry_with_the_same_message_id() {
    let port = free_port();
    let f = Folder::demo();
    f.set_smtp_url(&url_for(port));
    f.write("one.csv", "email,name\nana@example.com,Ana\n");
    f.run(&["import", "one.csv", "--now", "2026-03-02T09:00:00Z"], 0);

    let out = tick(&f, "2026-03-02T10:00:00Z");
    assert!(out.contains("sent 0, held 0, retry 1"), "{out}");
    let store = f.store().await;
    let ana = f.lead_id("ana@example.com").await;
    let rows = store.outbox_of(ana).await.unwrap();
    assert_eq!(rows[0].state.as_str(), "retry");
    let mid = rows[0]
        .message_id
        .clone()
        .expect("the Message-ID is fixed before the first attempt");

    // Not due yet a second later: backoff.
    let out = tick(&f, "2026-03-02T10:00:01Z");
    assert!(out.contains("sent 0, held 0, retry 0"), "{out}");

    let smtp = SmtpServer::start_on(port);
    let out = tick(&f, "2026-03-02T10:10:00Z");
    assert!(out.contains("sent 1"), "{out}");
    let mail = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].message_id, mid);
    assert_eq!(mail[0].template(), "edu-welcome");
    assert_eq!(
        store.outbox_of(ana).await.unwrap()[0].state.as_str(),
        "sent"
    );
}
