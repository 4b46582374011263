//! Copying an embedded install's metadata (SQLite) into PostgreSQL, row for row, and proving
//! it arrived: `otago-server migrate`.
//!
//! Both schemas hold the same tables with the same columns (PostgreSQL schema 1 is SQLite
//! schema 5), so each table is copied column by column, converted by the PostgreSQL column's
//! type. Everything goes in one transaction, keeps its sequence numbers (groups and audit
//! entries keep their order and references), and skips rows already there, so a second run
//! only checks. Afterwards every source row is read back from the target and compared value by
//! value; a row that differs (the target held other data) fails the migration by name.

use std::collections::BTreeSet;

use rusqlite::types::ValueRef;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, SqliteStore, StoreError, StoreResult};

/// The tables, in an order their references allow. The change log is the target's own.
const TABLES: [&str; 15] = [
    "settings",
    "projects",
    "api_keys",
    "audit_log",
    "assets",
    "groups",
    "updates",
    "standbys",
    "update_assets",
    "used_update_ids",
    "update_health",
    "adoption",
    "runtime_version_days",
    "embedded_bundles",
    "patches",
];

/// SQLite columns the PostgreSQL schema left out on purpose: `groups.reverted` (always 0 since
/// SQLite schema 3, which moved what it meant into `groups.state`).
const LEGACY_COLUMNS: [(&str, &str); 1] = [("groups", "reverted")];

/// What one table's copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: &'static str,
    /// Rows in the source.
    pub rows: usize,
    /// Of them, rows written now (the others were there already).
    pub written: u64,
}

/// One value, as PostgreSQL's column type reads it (so both sides compare alike).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    /// A float's bits.
    Real(u64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    /// The value as a message shows it (bytes by their length).
    fn describe(&self) -> String {
        match self {
            Self::Null => "NULL".to_owned(),
            Self::Int(n) => n.to_string(),
            Self::Real(bits) => f64::from_bits(*bits).to_string(),
            Self::Text(text) => format!("`{}`", text.escape_debug()),
            Self::Bytes(bytes) => format!("({} bytes)", bytes.len()),
        }
    }
}

/// A column of the target: its name and PostgreSQL type.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    BigInt,
    Integer,
    Boolean,
    Bytes,
    Double,
}

impl Kind {
    fn parse(data_type: &str) -> Option<Self> {
        Some(match data_type {
            "text" => Self::Text,
            "bigint" => Self::BigInt,
            "integer" => Self::Integer,
            "boolean" => Self::Boolean,
            "bytea" => Self::Bytes,
            "double precision" => Self::Double,
            _ => return None,
        })
    }
}

fn bad(table: &str, column: &str, why: &str) -> StoreError {
    StoreError::backend(format!("table {table}, column {column}: {why}"))
}

/// A source value as the target column reads it.
fn normalize(table: &str, column: &Column, value: ValueRef<'_>) -> StoreResult<Cell> {
    let wrong = || bad(table, &column.name, "the SQLite value has another type");
    Ok(match (column.kind, value) {
        (_, ValueRef::Null) => Cell::Null,
        (Kind::Text, ValueRef::Text(text)) => Cell::Text(
            String::from_utf8(text.to_vec())
                .map_err(|_| bad(table, &column.name, "the text is not UTF-8"))?,
        ),
        (Kind::BigInt | Kind::Integer | Kind::Boolean, ValueRef::Integer(n)) => Cell::Int(n),
        (Kind::Double, ValueRef::Real(x)) => Cell::Real(x.to_bits()),
        #[allow(clippy::cast_precision_loss)]
        (Kind::Double, ValueRef::Integer(n)) => Cell::Real((n as f64).to_bits()),
        (Kind::Bytes, ValueRef::Blob(bytes)) => Cell::Bytes(bytes.to_vec()),
        _ => return Err(wrong()),
    })
}

/// A cell as a statement parameter of the column's type.
fn parameter(
    table: &str,
    column: &Column,
    cell: &Cell,
) -> StoreResult<Box<dyn ToSql + Sync + Send>> {
    let out_of_range = || {
        bad(
            table,
            &column.name,
            "the value is out of the column's range",
        )
    };
    Ok(match (column.kind, cell) {
        (Kind::Text, Cell::Null) => Box::new(None::<String>),
        (Kind::BigInt, Cell::Null) => Box::new(None::<i64>),
        (Kind::Integer, Cell::Null) => Box::new(None::<i32>),
        (Kind::Boolean, Cell::Null) => Box::new(None::<bool>),
        (Kind::Bytes, Cell::Null) => Box::new(None::<Vec<u8>>),
        (Kind::Double, Cell::Null) => Box::new(None::<f64>),
        (Kind::Text, Cell::Text(text)) => Box::new(text.clone()),
        (Kind::BigInt, Cell::Int(n)) => Box::new(*n),
        (Kind::Integer, Cell::Int(n)) => Box::new(i32::try_from(*n).map_err(|_| out_of_range())?),
        (Kind::Boolean, Cell::Int(n)) => Box::new(*n != 0),
        (Kind::Bytes, Cell::Bytes(bytes)) => Box::new(bytes.clone()),
        (Kind::Double, Cell::Real(bits)) => Box::new(f64::from_bits(*bits)),
        _ => return Err(bad(table, &column.name, "the value has another type")),
    })
}

/// A target row read back as cells.
fn target_row(columns: &[Column], row: &tokio_postgres::Row) -> StoreResult<Vec<Cell>> {
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let cell = match column.kind {
                Kind::Text => row.try_get::<_, Option<String>>(index)?.map(Cell::Text),
                Kind::BigInt => row.try_get::<_, Option<i64>>(index)?.map(Cell::Int),
                Kind::Integer => row
                    .try_get::<_, Option<i32>>(index)?
                    .map(|n| Cell::Int(n.into())),
                Kind::Boolean => row
                    .try_get::<_, Option<bool>>(index)?
                    .map(|b| Cell::Int(b.into())),
                Kind::Bytes => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Cell::Bytes),
                Kind::Double => row
                    .try_get::<_, Option<f64>>(index)?
                    .map(|x| Cell::Real(x.to_bits())),
            };
            Ok(cell.unwrap_or(Cell::Null))
        })
        .collect()
}

/// Copies every table of `source` into `target` and checks that each source row is there,
/// value for value.
///
/// # Errors
/// When a table's columns differ between the two, a value does not fit, a store fails, or a
/// source row is missing from the target afterwards (nothing is committed then).
pub async fn copy_sqlite_to_postgres(
    source: &SqliteStore,
    target: &PostgresStore,
) -> StoreResult<Vec<TableCopy>> {
    let mut client = target.pool.get().await?;
    let tx = client.transaction().await?;
    let mut report = Vec::new();
    let mut copied = Vec::new();
    for table in TABLES {
        let columns: Vec<Column> = tx
            .query(
                "SELECT column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&table],
            )
            .await?
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                let data_type: String = row.get(1);
                Kind::parse(&data_type)
                    .map(|kind| Column {
                        name: name.clone(),
                        kind,
                    })
                    .ok_or_else(|| bad(table, &name, "the PostgreSQL type is not known to migrate"))
            })
            .collect::<StoreResult<_>>()?;
        let rows = source_rows(source, table, columns.clone()).await?;
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE VALUES ({}) ON CONFLICT DO NOTHING",
                names.join(", "),
                placeholders.join(", ")
            ))
            .await?;
        let mut written = 0;
        for row in &rows {
            let params = row
                .iter()
                .zip(&columns)
                .map(|(cell, column)| parameter(table, column, cell))
                .collect::<StoreResult<Vec<_>>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            written += tx.execute(&insert, &refs).await?;
        }
        if names.contains(&"seq") {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'seq'),
                            GREATEST((SELECT max(seq) FROM {table}), 1))"
                ),
                &[],
            )
            .await?;
        }
        report.push(TableCopy {
            table,
            rows: rows.len(),
            written,
        });
        copied.push((table, columns, rows));
    }
    for (table, columns, rows) in copied {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let held: BTreeSet<Vec<Cell>> = tx
            .query(&format!("SELECT {} FROM {table}", names.join(", ")), &[])
            .await?
            .iter()
            .map(|row| target_row(&columns, row))
            .collect::<StoreResult<_>>()?;
        let missing: Vec<&Vec<Cell>> = rows.iter().filter(|row| !held.contains(*row)).collect();
        if let Some(first) = missing.first() {
            return Err(StoreError::backend(format!(
                "table {table}: {} of its {} rows differ in the target (the first has {} = {}), which holds other data; nothing was committed (migrate into an empty database)",
                missing.len(),
                rows.len(),
                columns[0].name,
                first[0].describe()
            )));
        }
    }
    tx.commit().await?;
    Ok(report)
}

/// Every row of `table` in the source, as `columns` (the target's) read them; the source must
/// have no column the target lacks.
async fn source_rows(
    source: &SqliteStore,
    table: &'static str,
    columns: Vec<Column>,
) -> StoreResult<Vec<Vec<Cell>>> {
    let conn = std::sync::Arc::clone(&source.conn);
    tokio::task::spawn_blocking(move || {
        let conn = conn
            .lock()
            .map_err(|_| StoreError::backend("the SQLite connection is poisoned"))?;
        let mut info = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let source_columns: Vec<String> = info
            .query_map([], |row| row.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        if let Some(extra) = source_columns.iter().find(|name| {
            !columns.iter().any(|c| &c.name == *name) && !LEGACY_COLUMNS.contains(&(table, name))
        }) {
            return Err(bad(
                table,
                extra,
                "the PostgreSQL schema has no such column; migrate with the otago-server that made this database",
            ));
        }
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut select = conn.prepare(&format!("SELECT {} FROM {table}", names.join(", ")))?;
        let mut rows = select.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = columns
                .iter()
                .enumerate()
                .map(|(index, column)| normalize(table, column, row.get_ref(index)?))
                .collect::<StoreResult<Vec<_>>>()?;
            out.push(cells);
        }
        Ok(out)
    })
    .await
    .map_err(StoreError::backend)?
}
