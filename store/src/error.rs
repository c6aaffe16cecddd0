//! The error of hoist-store: what failed, on which file or record.

use std::path::PathBuf;

/// The result type of hoist-store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed. Every variant names what it was doing and to what.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory of the state directory could not be read or written.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done (`create the state directory`, `write code`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The database answered with an error.
    #[error("the state database failed to {action}")]
    Database {
        /// What was being done (`open`, `insert function`...).
        action: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer hoist: its schema version is higher than this
    /// build knows. Opening it would risk losing what the newer version stored.
    #[error(
        "the state database {} has schema version {found}, newer than version {supported} that this hoist supports; upgrade hoist or use another state directory",
        path.display()
    )]
    FutureSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in it (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build migrates to.
        supported: i64,
    },
    /// A record holds data this build cannot read (a configuration that is not JSON, an
    /// unknown state name).
    #[error("the stored {what} {name} is unreadable: {problem}")]
    Corrupt {
        /// The kind of record (`function`, `version`, `alias`).
        what: &'static str,
        /// Its name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No record of that kind has that name.
    #[error("{what} {name} does not exist")]
    NotFound {
        /// The kind of record (`function`, `version`, `alias`, `code`).
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A record of that kind already has that name.
    #[error("{what} {name} already exists")]
    AlreadyExists {
        /// The kind of record.
        what: &'static str,
        /// Its name.
        name: String,
    },
}

impl StoreError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn db(action: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| StoreError::Database { action, source }
    }
}
