//! `embudo migrate --to URL` moves a funnel's database: every table but the leases
//! arrives row for row (ids, the signing key, suppressions, campaign firings, sent and
//! queued emails), the counts are checked and printed, a target that already has
//! leads is refused, and a copy is refused while another process holds a lease. With
//! `EMBUDO_TEST_POSTGRES` (a server URL), SQLite → PostgreSQL → SQLite round-trips
//! with equal contents and `embudo report` says the same on both.

mod support;

use embudo::store::Store;
use embudo::store::copy::{NOT_COPIED, Row};
use std::collections::BTreeMap;
use support::*;

const LEADS: &str = "email,name,stage,tags,locale,timezone,attr.birthday
ana@example.es,Ana,customer,vip;school,es,Europe/Madrid,1990-03-28
carlos@example.mx,Carlos,customer,,es-MX,America/Mexico_City,1985-03-28
dora@example.es,Dora,interest,,es,Europe/Madrid,1979-03-29
eva@example.es,Eva,interest,,es,Europe/Madrid,
";

const EVENTS: &str = "email,kind,at,prop.page
dora@example.es,page_view,2026-03-01T09:00:00Z,/precios
dora@example.es,page_view,2026-03-01T09:05:00Z,/comprar
ana@example.es,purchase,2026-03-02T10:00:00Z,
";

/// The tienda funnel with a history: leads, events, stage moves, a birthday campaign
/// that sent to Ana and queued Carlos's email, an unsubscribed address, a pause.
fn shop() -> Folder {
    let f = Folder::copy_of("examples/tienda");
    f.set_smtp_url("file://./mail");
    f.write("leads.csv", LEADS);
    f.write("events.csv", EVENTS);
    f.run(&["import", "leads.csv", "--now", "2026-03-01T08:00:00Z"], 0);
    f.run(
        &["import", "events.csv", "--now", "2026-03-02T10:00:00Z"],
        0,
    );
    f.run(&["tick", "--now", "2026-03-28T08:00:00Z"], 0);
    f.run(&["unsubscribe", "eva@example.es"], 0);
    f.run(&["pause", "--campaign", "birthday"], 0);
    f
}

/// Every copied table's rows in key order, by table.
async fn contents(url: &str) -> BTreeMap<String, Vec<Row>> {
    let store = Store::open(url).await.unwrap();
    let mut out = BTreeMap::new();
    let mut read = store.copy_read().await.unwrap();
    for t in store.copy_tables().await.unwrap() {
        if NOT_COPIED.contains(&t.name.as_str()) {
            continue;
        }
        let rows = store.copy_page(&mut read, &t, None, 1 << 30).await.unwrap();
        out.insert(t.name.clone(), rows);
    }
    store.copy_commit(read).await.unwrap();
    store.close().await;
    out
}

fn sqlite(f: &Folder, file: &str) -> String {
    format!("sqlite://{}", f.path().join(file).display())
}

/// `embudo report` against the database at `url`.
fn report(f: &Folder, url: &str) -> String {
    let out = f
        .embudo()
        .env("EMBUDO_DATABASE_URL", url)
        .args([
            "report",
            "--format",
            "json",
            "--now",
            "2026-03-29T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "report on {url}: {}", stderr(&out));
    stdout(&out)
}

#[tokio::test]
async fn a_copy_to_sqlite_has_every_row_and_the_counts_are_printed() {
    if support::sqlite_only(
        "the copy starts from the folder's SQLite file; the PostgreSQL leg is covered where EMBUDO_TEST_POSTGRES is set",
    ) {
        return;
    }
    let f = shop();
    let source = sqlite(&f, "tienda.db");
    let before = contents(&source).await;
    for (table, least) in [
        ("leads", 4),
        ("lead_tags", 2),
        ("lead_attrs", 3),
        ("events", 3),
        ("stage_history", 4),
        ("outbox", 2),
        ("suppressions", 1),
        ("campaign_firings", 1),
        ("campaigns_seen", 1),
        ("settings", 1),
    ] {
        assert!(before[table].len() >= least, "{table}: {:?}", before[table]);
    }
    let out = stdout(&f.run(&["migrate", "--to", "sqlite://copy.db"], 0));
    assert!(out.contains("every count equal"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["events", "3", "3"]),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("locks")),
        "the leases stay behind: {out}"
    );
    let copy = sqlite(&f, "copy.db");
    assert_eq!(contents(&copy).await, before);
    assert_eq!(report(&f, &copy), report(&f, &source));
    // The copy's outbox holds a sent row and a queued one, as the source does.
    let states: Vec<_> = before["outbox"]
        .iter()
        .map(|r| format!("{:?}", r[8]))
        .collect();
    assert!(states.iter().any(|s| s.contains("sent")), "{states:?}");
    assert!(states.iter().any(|s| s.contains("queued")), "{states:?}");

    // Again into the same copy: it has leads now, and is refused.
    let out = f.run(&["migrate", "--to", "sqlite://copy.db"], 2);
    assert!(stderr(&out).contains("empty database"), "{}", stderr(&out));
}

#[tokio::test]
async fn no_copy_while_another_process_holds_a_lease() {
    let f = shop();
    let store = f.store().await;
    let now = chrono::Utc::now();
    let holder = "elsewhere.example:1:00000000";
    let until = now + chrono::TimeDelta::hours(1);
    assert!(store.try_lock("sender", holder, now, until).await.unwrap());
    let out = f.run(&["migrate", "--to", "sqlite://copy.db"], 1);
    assert!(stderr(&out).contains("stop the daemon"), "{}", stderr(&out));
    assert!(stderr(&out).contains(holder), "{}", stderr(&out));
    // The tick lease it took first was given back.
    assert_eq!(store.lock_holder("tick").await.unwrap(), None);
    store.unlock("sender", holder).await.unwrap();
    store.close().await;
    f.run(&["migrate", "--to", "sqlite://copy.db"], 0);
}

/// A new database on the test PostgreSQL server; its URL.
async fn new_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    let name = format!("pg_copy_{:016x}", rand::random::<u64>());
    let admin = format!("{}/postgres", server.trim_end_matches('/'));
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    format!("{}/{name}", server.trim_end_matches('/'))
}

#[tokio::test]
async fn sqlite_to_postgres_and_back_keeps_every_row() {
    if support::sqlite_only(
        "the copy starts from the folder's SQLite file; the PostgreSQL leg is covered where EMBUDO_TEST_POSTGRES is set",
    ) {
        return;
    }
    let Some(server) = std::env::var("EMBUDO_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let f = shop();
    let source = sqlite(&f, "tienda.db");
    let before = contents(&source).await;
    let pg = new_postgres_database(&server).await;
    let out = stdout(&f.run(&["migrate", "--to", &pg], 0));
    assert!(out.contains("every count equal"), "{out}");
    assert_eq!(contents(&pg).await, before);

    // Back, with the PostgreSQL database as the folder's.
    let out = f
        .embudo()
        .env("EMBUDO_DATABASE_URL", &pg)
        .args(["migrate", "--to", "sqlite://back.db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(contents(&sqlite(&f, "back.db")).await, before);
    assert_eq!(report(&f, &pg), report(&f, &source));
}
