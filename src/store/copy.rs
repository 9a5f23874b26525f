//! Copying a whole database into another, on the same backend or the other one
//! (`embudo migrate --to`, and `simulate`'s scratch copy of a PostgreSQL database).
//!
//! **Why generic rows.** The two schemas have the same tables and columns by
//! construction (migrations/sqlite and migrations/postgres), so a copy needs no
//! knowledge of what a table means: each backend reads a table's rows as [`Cell`]s in
//! primary-key order and writes them back as they are. The table list comes from each
//! database's own catalog, not from a list kept here, so a table a later migration
//! adds is copied without anyone remembering to; the two catalogs are compared first
//! and a copy between schemas that differ is refused.
//!
//! **Why sessions.** The source is read in one snapshot (a read transaction), so rows
//! written while the copy runs are either all in it or all out of it, and a child row
//! never arrives without its parent. The target is written in one write transaction:
//! a failed copy leaves it as it was, and the count check runs before the commit.

pub use super::CopySession as Session;
use super::{Result, Store, StoreError};

/// One stored value, whatever the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One row of a table, its cells in the order of [`Table::columns`].
pub type Row = Vec<Cell>;

/// What a column holds, by its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

/// A column, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// A table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// The primary key's columns, in key order: pages are read in this order.
    pub key: Vec<String>,
    /// The tables its foreign keys point at (itself excluded), sorted.
    pub parents: Vec<String>,
}

impl Table {
    /// The positions of the key columns in a row.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .collect()
    }
}

/// Tables never copied: the schema's own bookkeeping (the target is migrated to the
/// same version instead), and the named leases, which belong to the processes running
/// against the source: a lease held by a live daemon must not follow the data, or the
/// target would look busy, or owned by a process that never ran against it.
pub const NOT_COPIED: &[&str] = &["schema_migrations", "locks"];

/// Rows read per page and written per statement at most; a statement also stays well
/// under both backends' limits on bound values (SQLite 32,766, PostgreSQL 65,535).
pub const PAGE_ROWS: usize = 1000;
const MAX_BINDS: usize = 30_000;

/// Rows one INSERT of `columns` columns carries.
pub fn rows_per_insert(columns: usize) -> usize {
    (MAX_BINDS / columns.max(1)).clamp(1, PAGE_ROWS)
}

/// `"name"`: an identifier quoted for either backend.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

operations! {
    /// Every table of the schema with its columns, primary key and parents, by name.
    fn copy_tables(&self) -> Result<Vec<Table>>;

    /// The schema version: the highest migration applied (0 on an empty database).
    fn schema_version(&self) -> Result<i64>;

    /// Opens a read transaction: everything read through it is one snapshot.
    fn copy_read(&self) -> Result<Session>;

    /// Opens the write transaction a copy writes through (the write lock, held).
    fn copy_write(&self) -> Result<Session>;

    /// Up to `limit` rows of `table` after the key `after` (from the start when
    /// `None`), in primary-key order.
    fn copy_page(
        &self,
        session: &mut Session,
        table: &Table,
        after: Option<&[Cell]>,
        limit: usize,
    ) -> Result<Vec<Row>>;

    /// How many rows `table` holds, as the session sees it.
    fn copy_count(&self, session: &mut Session, table: &str) -> Result<i64>;

    /// Deletes every row of `table`.
    fn copy_clear(&self, session: &mut Session, table: &str) -> Result<()>;

    /// Inserts `rows` into `table`, as they are (ids included).
    fn copy_insert(&self, session: &mut Session, table: &Table, rows: &[Row]) -> Result<()>;

    /// Commits a write session. On PostgreSQL, each identity column's sequence is
    /// first moved past the largest id copied, so new rows do not collide.
    fn copy_commit(&self, session: Session) -> Result<()>;
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the target database already holds {leads} lead(s) and {outbox} outbox row(s); copy into an empty database (a new file, or a new PostgreSQL database)"
    )]
    NotEmpty { leads: i64, outbox: i64 },
    #[error(
        "the source's schema is at version {source_version}, the target's at {target}; upgrade embudo so both are at the same version"
    )]
    Version { source_version: i64, target: i64 },
    #[error("the two databases' tables differ: {0}")]
    Schema(String),
    #[error("table {table}: {source_rows} row(s) in the source but {target} in the copy")]
    Count {
        table: String,
        source_rows: i64,
        target: i64,
    },
}

impl From<CopyError> for StoreError {
    fn from(e: CopyError) -> StoreError {
        match e {
            CopyError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

/// A table copied, and its rows on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    pub source: i64,
    pub target: i64,
}

impl Store {
    /// Copies every table but [`NOT_COPIED`] into `target`, which must be migrated to
    /// the same schema version and hold no leads and no outbox rows. What else it
    /// holds (a signing key generated when it was first opened, say) is replaced by
    /// the source's: links in emails already sent must stay valid after a move.
    /// `progress(table, rows copied, rows in all)` is called after every page.
    /// Returns each table's count on both sides (equal, or this is an error).
    pub async fn copy_to(
        &self,
        target: &Store,
        progress: impl Fn(&str, u64, u64),
    ) -> Result<Vec<Copied>, CopyError> {
        let tables = self.copy_plan(target).await?;
        let mut read = self.copy_read().await?;
        let mut write = target.copy_write().await?;
        let leads = target.copy_count(&mut write, "leads").await?;
        let outbox = target.copy_count(&mut write, "outbox").await?;
        if leads > 0 || outbox > 0 {
            return Err(CopyError::NotEmpty { leads, outbox });
        }
        for t in tables.iter().rev() {
            target.copy_clear(&mut write, &t.name).await?;
        }
        let mut copied = Vec::new();
        for t in &tables {
            let source = self.copy_count(&mut read, &t.name).await?;
            self.copy_table(target, (&mut read, &mut write), t, |done| {
                progress(&t.name, done, source as u64)
            })
            .await?;
            let in_target = target.copy_count(&mut write, &t.name).await?;
            if in_target != source {
                return Err(CopyError::Count {
                    table: t.name.clone(),
                    source_rows: source,
                    target: in_target,
                });
            }
            copied.push(Copied {
                table: t.name.clone(),
                source,
                target: in_target,
            });
        }
        target.copy_commit(write).await?;
        Ok(copied)
    }

    /// The tables to copy in foreign-key order, once both schemas are found the same.
    async fn copy_plan(&self, target: &Store) -> Result<Vec<Table>, CopyError> {
        let (from, to) = (self.schema_version().await?, target.schema_version().await?);
        if from != to {
            return Err(CopyError::Version {
                source_version: from,
                target: to,
            });
        }
        let keep = |t: &Table| !NOT_COPIED.contains(&t.name.as_str());
        let mine: Vec<Table> = self.copy_tables().await?.into_iter().filter(keep).collect();
        let theirs: Vec<Table> = target
            .copy_tables()
            .await?
            .into_iter()
            .filter(keep)
            .collect();
        if let Some(diff) = schema_difference(&mine, &theirs) {
            return Err(CopyError::Schema(diff));
        }
        foreign_key_order(mine).map_err(CopyError::Schema)
    }

    /// Copies one table page by page, in key order.
    async fn copy_table(
        &self,
        target: &Store,
        (read, write): (&mut Session, &mut Session),
        table: &Table,
        progress: impl Fn(u64),
    ) -> Result<()> {
        if table.key.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "table {} has no primary key to copy it in order by",
                table.name
            )));
        }
        let keys = table.key_positions();
        let mut after: Option<Vec<Cell>> = None;
        let mut done = 0u64;
        loop {
            let page = self
                .copy_page(read, table, after.as_deref(), PAGE_ROWS)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(keys.iter().map(|&i| last[i].clone()).collect());
            for chunk in page.chunks(rows_per_insert(table.columns.len())) {
                target.copy_insert(write, table, chunk).await?;
            }
            done += page.len() as u64;
            progress(done);
            if page.len() < PAGE_ROWS {
                break;
            }
        }
        Ok(())
    }
}

/// What differs between two table lists, if anything.
fn schema_difference(source: &[Table], target: &[Table]) -> Option<String> {
    let names = |ts: &[Table]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(source) != names(target) {
        return Some(format!(
            "the source has tables {:?}, the target {:?}",
            names(source),
            names(target)
        ));
    }
    source
        .iter()
        .zip(target)
        .find(|(a, b)| a != b)
        .map(|(a, _)| format!("table {} has other columns or keys in the target", a.name))
}

/// `tables` with every table after the tables it points at (by name among equals).
fn foreign_key_order(mut tables: Vec<Table>) -> std::result::Result<Vec<Table>, String> {
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Table> = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        let ready = tables.iter().position(|t| {
            t.parents
                .iter()
                .all(|p| out.iter().any(|o| &o.name == p) || !tables.iter().any(|t| &t.name == p))
        });
        match ready {
            Some(i) => out.push(tables.remove(i)),
            None => {
                let names: Vec<_> = tables.iter().map(|t| t.name.as_str()).collect();
                return Err(format!("the foreign keys of {names:?} form a cycle"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    /// Every copied table's rows, in key order.
    async fn contents(store: &Store) -> Vec<(String, Vec<Row>)> {
        let mut tables = store.copy_tables().await.unwrap();
        tables.retain(|t| !NOT_COPIED.contains(&t.name.as_str()));
        let mut s = store.copy_read().await.unwrap();
        let mut out = Vec::new();
        for t in tables {
            let rows = store.copy_page(&mut s, &t, None, 1_000_000).await.unwrap();
            out.push((t.name.clone(), rows));
        }
        out
    }

    /// A source with leads, events (more than a page), settings, a lease and NULLs.
    async fn source() -> Store {
        let src = Store::open_and_migrate("sqlite::memory:").await.unwrap();
        let tables = src.copy_tables().await.unwrap();
        let t = |n: &str| tables.iter().find(|t| t.name == n).unwrap().clone();
        let mut w = src.copy_write().await.unwrap();
        let text = |s: &str| Cell::Text(s.to_string());
        let leads: Vec<Row> = (1..=3)
            .map(|i| {
                let mut r = vec![Cell::Int(i), text(&format!("l{i}@x.test")), Cell::Null];
                r.extend([text("new"), Cell::Null, Cell::Null]);
                r.extend([Cell::Int(1), Cell::Int(2), Cell::Int(3), Cell::Null]);
                r
            })
            .collect();
        src.copy_insert(&mut w, &t("leads"), &leads).await.unwrap();
        let events: Vec<Row> = (1..=2500)
            .map(|i| {
                let props = text(&format!("{{\"n\":\"it's \\\"{i}\\\" é\"}}"));
                let ext = if i % 2 == 0 {
                    text(&format!("e{i}"))
                } else {
                    Cell::Null
                };
                vec![
                    Cell::Int(i),
                    Cell::Int(1 + i % 3),
                    text("click"),
                    Cell::Int(i),
                    props,
                    Cell::Int(i),
                    ext,
                ]
            })
            .collect();
        for chunk in events.chunks(rows_per_insert(7)) {
            src.copy_insert(&mut w, &t("events"), chunk).await.unwrap();
        }
        let settings = vec![vec![text("signing_key"), text("k")]];
        src.copy_insert(&mut w, &t("settings"), &settings)
            .await
            .unwrap();
        let lock = vec![vec![text("sender"), text("h:1:0"), Cell::Int(i64::MAX)]];
        src.copy_insert(&mut w, &t("locks"), &lock).await.unwrap();
        let tags = vec![vec![Cell::Int(2), text("b")], vec![Cell::Int(1), text("a")]];
        src.copy_insert(&mut w, &t("lead_tags"), &tags)
            .await
            .unwrap();
        src.copy_commit(w).await.unwrap();
        src
    }

    #[tokio::test]
    async fn a_copy_round_trips_through_every_backend() {
        let src = source().await;
        let expected = contents(&src).await;
        for mid in testing::stores().await {
            let copied = src.copy_to(&mid, |_, _, _| {}).await.unwrap();
            let events = copied.iter().find(|c| c.table == "events").unwrap();
            assert_eq!((events.source, events.target), (2500, 2500));
            assert!(
                copied
                    .iter()
                    .all(|c| !NOT_COPIED.contains(&c.table.as_str()))
            );
            assert_eq!(contents(&mid).await, expected, "{}", mid.engine());
            let back = Store::open_and_migrate("sqlite::memory:").await.unwrap();
            mid.copy_to(&back, |_, _, _| {}).await.unwrap();
            assert_eq!(
                contents(&back).await,
                expected,
                "back from {}",
                mid.engine()
            );
        }
    }

    #[tokio::test]
    async fn a_target_with_leads_is_refused_and_other_rows_are_replaced() {
        let src = source().await;
        for target in testing::stores().await {
            src.copy_to(&target, |_, _, _| {}).await.unwrap();
            let again = src.copy_to(&target, |_, _, _| {}).await;
            assert!(
                matches!(
                    again,
                    Err(CopyError::NotEmpty {
                        leads: 3,
                        outbox: 0
                    })
                ),
                "{again:?}"
            );
        }
        // A target holding only a signing key of its own gets the source's.
        let target = Store::open_and_migrate("sqlite::memory:").await.unwrap();
        target
            .setting_or_insert("signing_key", "other")
            .await
            .unwrap();
        src.copy_to(&target, |_, _, _| {}).await.unwrap();
        assert_eq!(
            target.setting("signing_key").await.unwrap().as_deref(),
            Some("k")
        );
    }

    #[test]
    fn parents_come_first() {
        let t = |n: &str, p: &[&str]| Table {
            name: n.into(),
            columns: vec![],
            key: vec![],
            parents: p.iter().map(|s| s.to_string()).collect(),
        };
        let order = foreign_key_order(vec![t("a", &["c"]), t("b", &[]), t("c", &["b"])]).unwrap();
        let names: Vec<_> = order.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
        assert!(foreign_key_order(vec![t("a", &["b"]), t("b", &["a"])]).is_err());
    }
}
