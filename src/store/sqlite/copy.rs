//! SQLite: the catalog, and a table's rows read and written as generic cells, for
//! copying a database (`Store::copy_to`).

use super::tx::WriteTx;
use super::{SqliteStore, placeholders};
use crate::store::copy::quote;
use crate::store::copy::{Cell, Column, Kind, Row, Table};
use crate::store::{CopySession, Result, SessionTx, StoreError};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{Row as _, SqliteConnection, Transaction, TypeInfo, ValueRef};

/// A copy's transaction on SQLite: a deferred read transaction (one snapshot of the
/// WAL from its first read) or the write transaction (`BEGIN IMMEDIATE`).
pub(in crate::store) struct Session(Tx);

enum Tx {
    Read(Transaction<'static, Sqlite>),
    Write(WriteTx),
}

impl Session {
    fn conn(&mut self) -> &mut SqliteConnection {
        match &mut self.0 {
            Tx::Read(tx) => tx,
            Tx::Write(tx) => tx,
        }
    }
}

/// The SQLite side of a session (a session of the other backend is a caller's bug).
fn mine(s: &mut CopySession) -> Result<&mut Session> {
    match &mut s.0 {
        SessionTx::Sqlite(s) => Ok(s),
        SessionTx::Postgres(_) => Err(StoreError::Corrupt(
            "a PostgreSQL copy session used on SQLite".into(),
        )),
    }
}

/// A column's kind by its declared type, after SQLite's rules of type affinity.
fn kind(declared: &str) -> Kind {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Kind::Int
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Kind::Text
    } else if t.is_empty() || t.contains("BLOB") {
        Kind::Blob
    } else {
        Kind::Real
    }
}

/// A row's cells, by each value's own storage class.
fn cells(row: &SqliteRow) -> Result<Row> {
    (0..row.len())
        .map(|i| {
            let v = row.try_get_raw(i)?;
            if v.is_null() {
                return Ok(Cell::Null);
            }
            let class = v.type_info().name().to_string();
            Ok(match class.as_str() {
                "INTEGER" => Cell::Int(row.try_get(i)?),
                "REAL" => Cell::Real(row.try_get(i)?),
                "TEXT" => Cell::Text(row.try_get(i)?),
                "BLOB" => Cell::Blob(row.try_get(i)?),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "a value of type {other} in column {i}"
                    )));
                }
            })
        })
        .collect()
}

fn bind<'q>(
    q: sqlx::query::Query<'q, Sqlite, SqliteArguments>,
    cell: &Cell,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    match cell {
        Cell::Null => q.bind(None::<i64>),
        Cell::Int(v) => q.bind(*v),
        Cell::Real(v) => q.bind(*v),
        Cell::Text(v) => q.bind(v.clone()),
        Cell::Blob(v) => q.bind(v.clone()),
    }
}

impl SqliteStore {
    pub(in crate::store) async fn copy_tables(&self) -> Result<Vec<Table>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let cols: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid")
                    .bind(&name)
                    .fetch_all(self.pool())
                    .await?;
            let mut key: Vec<(i64, String)> = cols
                .iter()
                .filter(|c| c.2 > 0)
                .map(|c| (c.2, c.0.clone()))
                .collect();
            key.sort();
            let parents: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?) WHERE \"table\" <> ? ORDER BY 1",
            )
            .bind(&name)
            .bind(&name)
            .fetch_all(self.pool())
            .await?;
            tables.push(Table {
                columns: cols
                    .iter()
                    .map(|(n, t, _)| Column {
                        name: n.clone(),
                        kind: kind(t),
                    })
                    .collect(),
                key: key.into_iter().map(|(_, k)| k).collect(),
                parents,
                name,
            });
        }
        Ok(tables)
    }

    pub(in crate::store) async fn schema_version(&self) -> Result<i64> {
        let migrated: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')")
            .fetch_one(self.pool())
            .await?;
        if !migrated {
            return Ok(0);
        }
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(self.pool())
                .await?,
        )
    }

    pub(in crate::store) async fn copy_read(&self) -> Result<CopySession> {
        let tx = self.pool().begin().await?;
        Ok(CopySession(SessionTx::Sqlite(Session(Tx::Read(tx)))))
    }

    pub(in crate::store) async fn copy_write(&self) -> Result<CopySession> {
        let tx = self.begin_write().await?;
        Ok(CopySession(SessionTx::Sqlite(Session(Tx::Write(tx)))))
    }

    pub(in crate::store) async fn copy_page(
        &self,
        session: &mut CopySession,
        table: &Table,
        after: Option<&[Cell]>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let key: Vec<String> = table.key.iter().map(|k| quote(k)).collect();
        let from = match after {
            Some(a) => format!("WHERE ({}) > ({})", key.join(", "), placeholders(a.len())),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} {from} ORDER BY {} LIMIT ?",
            cols.join(", "),
            quote(&table.name),
            key.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in after.unwrap_or_default() {
            q = bind(q, c);
        }
        let rows = q
            .bind(limit as i64)
            .fetch_all(mine(session)?.conn())
            .await?;
        rows.iter().map(cells).collect()
    }

    pub(in crate::store) async fn copy_count(
        &self,
        session: &mut CopySession,
        table: &str,
    ) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(table));
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(mine(session)?.conn())
            .await?)
    }

    pub(in crate::store) async fn copy_clear(
        &self,
        session: &mut CopySession,
        table: &str,
    ) -> Result<()> {
        let sql = format!("DELETE FROM {}", quote(table));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(mine(session)?.conn())
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn copy_insert(
        &self,
        session: &mut CopySession,
        table: &Table,
        rows: &[Row],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let one = format!("({})", placeholders(cols.len()));
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(&table.name),
            cols.join(", "),
            vec![one; rows.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in rows.iter().flatten() {
            q = bind(q, c);
        }
        q.execute(mine(session)?.conn()).await?;
        Ok(())
    }

    pub(in crate::store) async fn copy_commit(&self, session: CopySession) -> Result<()> {
        match session.0 {
            SessionTx::Sqlite(Session(Tx::Read(tx))) => Ok(tx.commit().await?),
            SessionTx::Sqlite(Session(Tx::Write(tx))) => tx.commit().await,
            SessionTx::Postgres(_) => Err(StoreError::Corrupt(
                "a PostgreSQL copy session used on SQLite".into(),
            )),
        }
    }
}
