//! PostgreSQL: the catalog, and a table's rows read and written as generic cells, for
//! copying a database (`Store::copy_to`); and `copy_into`, simulate's scratch SQLite
//! copy of a PostgreSQL database.

use super::{PgStore, Tx};
use crate::store::copy::quote;
use crate::store::copy::{Cell, Column, Kind, Row, Table};
use crate::store::{Backend, CopySession, Result, SessionTx, Store, StoreError};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, Postgres, Row as _, TypeInfo, ValueRef};
use std::path::Path;

/// A copy's transaction on PostgreSQL: a read-only snapshot (`REPEATABLE READ`), or
/// the write transaction, which holds the database's write lock.
pub(in crate::store) enum Session {
    Read(Tx),
    Write(Tx),
}

impl Session {
    fn conn(&mut self) -> &mut PgConnection {
        match self {
            Session::Read(tx) | Session::Write(tx) => tx,
        }
    }
}

/// The PostgreSQL side of a session (a session of the other backend is a caller's bug).
fn mine(s: &mut CopySession) -> Result<&mut Session> {
    match &mut s.0 {
        SessionTx::Postgres(s) => Ok(s),
        SessionTx::Sqlite(_) => Err(StoreError::Corrupt(
            "a SQLite copy session used on PostgreSQL".into(),
        )),
    }
}

/// A column's kind by its `information_schema` data type; `None` for a type a copy
/// does not carry.
fn kind(data_type: &str) -> Option<Kind> {
    Some(match data_type {
        "bigint" | "integer" | "smallint" => Kind::Int,
        "double precision" | "real" => Kind::Real,
        "text" | "character varying" | "character" => Kind::Text,
        "bytea" => Kind::Blob,
        _ => return None,
    })
}

/// A row's cells, by each column's type.
fn cells(row: &PgRow) -> Result<Row> {
    (0..row.len())
        .map(|i| {
            let v = row.try_get_raw(i)?;
            if v.is_null() {
                return Ok(Cell::Null);
            }
            let ty = v.type_info().name().to_string();
            Ok(match ty.as_str() {
                "INT8" => Cell::Int(row.try_get(i)?),
                "INT4" => Cell::Int(row.try_get::<i32, _>(i)?.into()),
                "INT2" => Cell::Int(row.try_get::<i16, _>(i)?.into()),
                "FLOAT8" => Cell::Real(row.try_get(i)?),
                "FLOAT4" => Cell::Real(row.try_get::<f32, _>(i)?.into()),
                "TEXT" | "VARCHAR" | "BPCHAR" => Cell::Text(row.try_get(i)?),
                "BYTEA" => Cell::Blob(row.try_get(i)?),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "a value of type {other} in column {i}"
                    )));
                }
            })
        })
        .collect()
}

/// Binds `cell` for a column of `kind`: a NULL needs the column's type, since
/// PostgreSQL types every parameter.
fn bind<'q>(
    q: sqlx::query::Query<'q, Postgres, PgArguments>,
    cell: &Cell,
    kind: Kind,
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    match (cell, kind) {
        (Cell::Null, Kind::Int) => q.bind(None::<i64>),
        (Cell::Null, Kind::Real) => q.bind(None::<f64>),
        (Cell::Null, Kind::Text) => q.bind(None::<String>),
        (Cell::Null, Kind::Blob) => q.bind(None::<Vec<u8>>),
        (Cell::Int(v), _) => q.bind(*v),
        (Cell::Real(v), _) => q.bind(*v),
        (Cell::Text(v), _) => q.bind(v.clone()),
        (Cell::Blob(v), _) => q.bind(v.clone()),
    }
}

/// `$from, $from+1, …`: `n` numbered placeholders.
fn numbered(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PgStore {
    pub(in crate::store) async fn copy_tables(&self) -> Result<Vec<Table>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?;
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            tables.push(self.copy_table_of(name).await?);
        }
        Ok(tables)
    }

    /// One table's columns, primary key and parents, from the catalog.
    async fn copy_table_of(&self, name: String) -> Result<Table> {
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(self.pool())
        .await?;
        let key: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE i.indrelid = quote_ident($1)::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
        )
        .bind(&name)
        .fetch_all(self.pool())
        .await?;
        let parents: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT p.relname::text FROM pg_constraint c JOIN pg_class p ON p.oid = c.confrelid WHERE c.contype = 'f' AND c.conrelid = quote_ident($1)::regclass AND p.relname <> $1 ORDER BY 1",
        )
        .bind(&name)
        .fetch_all(self.pool())
        .await?;
        let columns = cols
            .into_iter()
            .map(|(n, t)| match kind(&t) {
                Some(kind) => Ok(Column { name: n, kind }),
                None => Err(StoreError::Corrupt(format!(
                    "column {n} of table {name} has type {t}, which a copy does not carry"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Table {
            name,
            columns,
            key,
            parents,
        })
    }

    pub(in crate::store) async fn schema_version(&self) -> Result<i64> {
        let migrated: bool =
            sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
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

    /// A snapshot: every page and count reads the database as it was at the first.
    pub(in crate::store) async fn copy_read(&self) -> Result<CopySession> {
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(CopySession(SessionTx::Postgres(Session::Read(tx))))
    }

    pub(in crate::store) async fn copy_write(&self) -> Result<CopySession> {
        let tx = self.begin_write().await?;
        Ok(CopySession(SessionTx::Postgres(Session::Write(tx))))
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
        let n = after.map_or(0, |a| a.len());
        let from = match after {
            Some(_) => format!("WHERE ({}) > ({})", key.join(", "), numbered(1, n)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} {from} ORDER BY {} LIMIT ${}",
            cols.join(", "),
            quote(&table.name),
            key.join(", "),
            n + 1
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        let kinds = table
            .key_positions()
            .into_iter()
            .map(|i| table.columns[i].kind);
        for (c, k) in after.unwrap_or_default().iter().zip(kinds) {
            q = bind(q, c, k);
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
        let w = cols.len();
        let values: Vec<String> = (0..rows.len())
            .map(|r| format!("({})", numbered(r * w + 1, w)))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(&table.name),
            cols.join(", "),
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in rows {
            for (c, col) in row.iter().zip(&table.columns) {
                q = bind(q, c, col.kind);
            }
        }
        q.execute(mine(session)?.conn()).await?;
        Ok(())
    }

    pub(in crate::store) async fn copy_commit(&self, session: CopySession) -> Result<()> {
        match session.0 {
            SessionTx::Postgres(Session::Read(tx)) => Ok(tx.commit().await?),
            SessionTx::Postgres(Session::Write(mut tx)) => {
                reset_identities(&mut tx).await?;
                Ok(tx.commit().await?)
            }
            SessionTx::Sqlite(_) => Err(StoreError::Corrupt(
                "a SQLite copy session used on PostgreSQL".into(),
            )),
        }
    }

    /// A consistent copy into a new SQLite file: the file is created and migrated,
    /// then filled from one snapshot of this database by `Store::copy_to`.
    pub(in crate::store) async fn copy_into(&self, path: &Path) -> Result<()> {
        let url = format!("sqlite://{}", path.display());
        let target = Store::open_and_migrate(&url).await?;
        let source = Store {
            backend: Backend::Postgres(self.clone()),
        };
        let copied = source.copy_to(&target, |_, _, _| {}).await;
        target.close().await;
        copied.map(|_| ()).map_err(StoreError::from)
    }
}

/// Moves each identity column's sequence past the largest id in its table: rows were
/// copied with their ids, which does not advance the sequence, so the next generated
/// id would collide with a copied one.
async fn reset_identities(tx: &mut Tx) -> Result<()> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND a.attidentity <> '' AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (table, column) in identities {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
            quote(&column),
            quote(&table)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(quote(&table))
            .bind(&column)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::copy::Cell;
    use crate::store::{Backend, Store, testing};

    /// After a copy, a lead inserted without an id gets one past the copied ids, and
    /// `copy_into` makes a SQLite file with the same rows.
    #[tokio::test]
    async fn new_ids_follow_the_copied_ones_and_copy_into_makes_a_sqlite_file() {
        let Some(pg) = testing::postgres().await else {
            return;
        };
        let src = Store::open_and_migrate("sqlite::memory:").await.unwrap();
        let leads = src.copy_tables().await.unwrap();
        let leads = leads.into_iter().find(|t| t.name == "leads").unwrap();
        let mut w = src.copy_write().await.unwrap();
        let mut row = vec![Cell::Int(41), Cell::Text("a@x.test".into()), Cell::Null];
        row.extend([Cell::Text("new".into()), Cell::Null, Cell::Null]);
        row.extend([Cell::Int(1), Cell::Int(2), Cell::Int(3), Cell::Null]);
        src.copy_insert(&mut w, &leads, &[row]).await.unwrap();
        src.copy_commit(w).await.unwrap();
        src.copy_to(&pg, |_, _, _| {}).await.unwrap();
        let Backend::Postgres(db) = &pg.backend else {
            unreachable!()
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO leads (email, stage, created_at, stage_entered_at, updated_at) VALUES ('b@x.test', 'new', 1, 1, 1) RETURNING id",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(id, 42);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scratch.db");
        pg.copy_into(&file).await.unwrap();
        let copy = Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let mut s = copy.copy_read().await.unwrap();
        assert_eq!(copy.copy_count(&mut s, "leads").await.unwrap(), 2);
    }
}
