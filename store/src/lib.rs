//! hoist's embedded state: one SQLite database per state directory (`hoist.db`, WAL mode,
//! versioned migrations, [`SCHEMA_VERSION`]) and function code stored content-addressed beside
//! it (`code/<sha256>.zip`), and the compute APIs' resources as JSON documents by kind and id
//! ([`Txn::resource`], [`Txn::put_resource`]).
//!
//! Everything is read and written in transactions: [`Store::read`] and [`Store::write`] hand a
//! [`Txn`] to a closure; a write commits when the closure returns `Ok` and rolls back (removing
//! the code it wrote) when it returns `Err`. Writers are serialised — within a process by the
//! store's lock, across processes and connections by SQLite's write lock (`BEGIN IMMEDIATE`,
//! waiting up to [`BUSY_TIMEOUT`]).
//!
//! ```
//! use hoist_store::{FunctionRecord, State, Store};
//!
//! # fn main() -> hoist_store::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path())?;
//! store.write(|tx| {
//!     let code = tx.put_code(b"PK\x05\x06 an empty zip")?;
//!     let mut function = FunctionRecord::new("hello", serde_json::json!({"Handler": "app.handler"}));
//!     function.code = Some(code);
//!     tx.insert_function(&function)
//! })?;
//! let again = Store::open(dir.path())?;
//! let function = again.read(|tx| tx.function("hello"))?.unwrap();
//! assert_eq!(function.state, State::Pending);
//! # Ok(()) }
//! ```

mod code;
mod error;
mod lambda;
mod records;
mod resources;
mod schema;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub use code::CodeRef;
pub use error::{Result, StoreError};
pub use records::{AliasRecord, FunctionRecord, State, UpdateStatus, VersionRecord};
pub use schema::SCHEMA_VERSION;

use code::CodeDir;

/// The database file's name in the state directory.
pub const DATABASE_FILE: &str = "hoist.db";
/// The code directory's name in the state directory.
pub const CODE_DIR: &str = "code";
/// How long a writer waits for another connection's write transaction to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A state directory, open. Cheap to clone; clones share one connection.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    conn: Mutex<Connection>,
    code: CodeDir,
}

impl Store {
    /// Opens (creating if needed) the state directory `dir`: migrates the database to
    /// [`SCHEMA_VERSION`], refusing one written by a newer hoist
    /// ([`StoreError::FutureSchema`]), and removes code that no committed record names (left
    /// by a crash between writing code and committing its record).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir)
            .map_err(StoreError::io("create the state directory", &dir))?;
        let path = dir.join(DATABASE_FILE);
        let mut conn = Connection::open(&path).map_err(StoreError::db("open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(StoreError::db("set the busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::db("enable write-ahead logging"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::db("set synchronous writes"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(StoreError::db("enable foreign keys"))?;
        schema::migrate(&mut conn, &path)?;
        let code = CodeDir::open(dir.join(CODE_DIR))?;
        let store = Store {
            inner: Arc::new(Inner {
                dir,
                conn: Mutex::new(conn),
                code,
            }),
        };
        store.sweep()?;
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a transaction rolls it back (the transaction is dropped), so the
        // connection is usable after a poisoning panic.
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<T>(&self, f: impl FnOnce(&Txn<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::db("begin a read"))?;
        let txn = Txn::new(tx, &self.inner.code);
        f(&txn)
    }

    /// Runs `f` in a write transaction, holding the database's write lock: commits when `f`
    /// returns `Ok`, rolls back when it returns `Err` (removing code files it created).
    pub fn write<T>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        let (result, unclaimed) = {
            let mut conn = self.conn();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::db("begin a write"))?;
            let mut txn = Txn::new(tx, &self.inner.code);
            let result = f(&mut txn);
            let Txn {
                tx,
                created,
                released,
                ..
            } = txn;
            match result {
                Ok(value) => match tx.commit() {
                    Ok(()) => (Ok(value), released),
                    // Rolled back: the code it wrote is named by nothing, unless another
                    // writer came to name it since; `collect` checks under the lock.
                    Err(source) => (
                        Err(StoreError::Database {
                            action: "commit",
                            source,
                        }),
                        created,
                    ),
                },
                Err(e) => {
                    // Still under the write lock: no other writer can have come to rely on
                    // the files this transaction created.
                    for sha in &created {
                        let _ = self.inner.code.remove(sha);
                    }
                    let _ = tx.rollback();
                    (Err(e), HashSet::new())
                }
            }
        };
        if !unclaimed.is_empty() {
            // Code no record names any more. Failing to remove it now loses nothing: the next
            // open sweeps it, and the write itself has committed (or failed) already.
            let _ = self.collect(unclaimed);
        }
        result
    }

    /// Removes those of `candidates` that no committed record names, under the write lock.
    fn collect(&self, candidates: HashSet<String>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::db("begin collecting code"))?;
        let referenced = lambda::referenced_code(&tx)?;
        for sha in candidates.difference(&referenced) {
            self.inner.code.remove(sha)?;
        }
        tx.commit()
            .map_err(StoreError::db("finish collecting code"))
    }

    /// Removes temporary code files and code no committed record names; returns how many
    /// files it removed. [`Store::open`] runs it.
    pub fn sweep(&self) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::db("begin the sweep"))?;
        let referenced = lambda::referenced_code(&tx)?;
        let removed = self.inner.code.sweep(&referenced)?;
        tx.commit().map_err(StoreError::db("finish the sweep"))?;
        Ok(removed)
    }

    /// The bytes of a stored code archive.
    pub fn read_code(&self, code: &CodeRef) -> Result<Vec<u8>> {
        self.inner.code.read(&code.sha256)
    }

    /// The file holding a stored code archive (for a host that unpacks it).
    pub fn code_path(&self, code: &CodeRef) -> PathBuf {
        self.inner.code.path(&code.sha256)
    }
}

/// A transaction on the store, handed to the closures of [`Store::read`] and
/// [`Store::write`]: code (`put_code`) and the Lambda records (`function`, `versions`, `aliases`, `tags`...).
pub struct Txn<'a> {
    tx: rusqlite::Transaction<'a>,
    code: &'a CodeDir,
    created: HashSet<String>,
    released: HashSet<String>,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("created", &self.created)
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl<'a> Txn<'a> {
    fn new(tx: rusqlite::Transaction<'a>, code: &'a CodeDir) -> Self {
        Txn {
            tx,
            code,
            created: HashSet::new(),
            released: HashSet::new(),
        }
    }

    /// Stores a code archive (content-addressed: the same bytes are stored once) and returns
    /// its reference, to be named by a record written in this transaction. The file is on
    /// disk, under its final name, before the transaction commits.
    pub fn put_code(&mut self, bytes: &[u8]) -> Result<CodeRef> {
        let (code, created) = self.code.put(bytes)?;
        if created {
            self.created.insert(code.sha256.clone());
        }
        Ok(code)
    }

    fn release(&mut self, code: Option<CodeRef>) {
        if let Some(code) = code {
            self.released.insert(code.sha256);
        }
    }
}
