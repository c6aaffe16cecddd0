//! The database schema and its migrations.
//!
//! The schema version is SQLite's `user_version`. Migration `i` (0-based) takes the schema
//! from version `i` to `i + 1`; all pending migrations run in one transaction, so a database is
//! never left between two versions. A database whose version is higher than
//! [`SCHEMA_VERSION`] is refused ([`StoreError::FutureSchema`]).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// The migrations, in order. Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: Lambda functions, their published versions, aliases and tags.
    "CREATE TABLE functions (
         name TEXT PRIMARY KEY,
         configuration TEXT NOT NULL,
         code_sha256 TEXT,
         code_size INTEGER,
         state TEXT NOT NULL,
         last_update_status TEXT NOT NULL,
         revision_id TEXT NOT NULL,
         reserved_concurrency INTEGER,
         last_version INTEGER NOT NULL DEFAULT 0
     ) STRICT;
     CREATE TABLE versions (
         function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
         version INTEGER NOT NULL,
         configuration TEXT NOT NULL,
         code_sha256 TEXT,
         code_size INTEGER,
         state TEXT NOT NULL,
         revision_id TEXT NOT NULL,
         PRIMARY KEY (function, version)
     ) STRICT;
     CREATE TABLE aliases (
         function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
         name TEXT NOT NULL,
         configuration TEXT NOT NULL,
         revision_id TEXT NOT NULL,
         PRIMARY KEY (function, name)
     ) STRICT;
     CREATE TABLE tags (
         function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
         key TEXT NOT NULL,
         value TEXT NOT NULL,
         PRIMARY KEY (function, key)
     ) STRICT;",
    // 2: compute resources (EC2, ECS, ELBv2) as JSON documents by kind and id; `seq` keeps
    // the order they were first written.
    "CREATE TABLE resources (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         body TEXT NOT NULL,
         UNIQUE (kind, id)
     ) STRICT;",
];

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database at `path` (open on `conn`) to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::db("begin the migration"))?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(StoreError::db("read the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::FutureSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Corrupt {
            what: "schema version",
            name: path.display().to_string(),
            problem: format!("{found} is negative"),
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)
            .map_err(StoreError::db("migrate the schema"))?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(StoreError::db("write the schema version"))?;
    }
    tx.commit().map_err(StoreError::db("commit the migration"))
}
