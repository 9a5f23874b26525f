//! The suite's own machinery for running on each backend (tests/run.sh runs it on
//! SQLite, then on PostgreSQL): every funnel folder stores in a database of its own,
//! which the binary creates or migrates, and no other folder sees.

mod support;
use support::*;

#[test]
fn each_folder_has_a_database_of_its_own_that_the_binary_migrates() {
    let a = Folder::demo();
    let b = Folder::demo();
    assert!(!a.has_database() && !b.has_database());
    let out = stdout(&a.run(&["migrate"], 0));
    assert!(out.contains("migration(s) applied"), "{out}");
    assert!(a.has_database());
    assert!(!b.has_database(), "another folder's database was migrated");
    assert_ne!(a.database_url(), b.database_url());
    let engine = if on_postgres() {
        "postgres://"
    } else {
        "sqlite://"
    };
    assert!(a.database_url().starts_with(engine), "{}", a.database_url());
}

/// A folder's database goes with it: the throwaway server's disk is not endless.
#[test]
fn a_folder_s_postgresql_database_is_dropped_with_it() {
    if !on_postgres() {
        return;
    }
    let f = Folder::demo();
    let url = f.database_url();
    let name = url.rsplit('/').next().unwrap().to_string();
    let admin = Folder::demo();
    let exists = |name: &str| {
        let rows: Vec<(String,)> = block_on(admin.fetch_all(&format!(
            "SELECT datname::text FROM pg_database WHERE datname = '{name}'"
        )));
        !rows.is_empty()
    };
    assert!(exists(&name));
    drop(f);
    assert!(!exists(&name));
}
