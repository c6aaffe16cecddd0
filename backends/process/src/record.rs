//! The state directory: one folder per container holding its JSON record and its logs.
//!
//! ```text
//! <state dir>/<container id>/record.json   owner, spec, pid and start time, state, exit
//! <state dir>/<container id>/stdout.log    what the process wrote on stdout
//! <state dir>/<container id>/stderr.log    ... and on stderr
//! <state dir>/<container id>/sandbox/      the default working directory
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use hoist_core::{
    ContainerId, ContainerSpec, ContainerState, Error, ErrorKind, ExitStatus, Owner, Result,
};
use serde::{Deserialize, Serialize};

use crate::procfs::ProcessIdentity;

/// The record of one container, as kept in `record.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The container's id (its folder's name).
    pub(crate) id: ContainerId,
    /// Who created it.
    pub(crate) owner: Owner,
    /// What it runs.
    pub(crate) spec: ContainerSpec,
    /// Its state when last written.
    pub(crate) state: ContainerState,
    /// The main process, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<u32>,
    /// The main process's start time in clock ticks after boot, to tell it from a later
    /// process that reuses the pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start_ticks: Option<u64>,
    /// How it ended, once known. A status with neither code nor signal means the process ended
    /// while no containerizer that could reap it was watching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit: Option<ExitStatus>,
}

impl Record {
    /// The identity of the main process, once started.
    pub(crate) fn process(&self) -> Option<ProcessIdentity> {
        Some(ProcessIdentity {
            pid: self.pid?,
            start_ticks: self.start_ticks?,
        })
    }
}

/// The paths of one container's folder.
#[derive(Debug, Clone)]
pub(crate) struct ContainerDir {
    root: PathBuf,
}

impl ContainerDir {
    /// The folder of `id` under `state_dir`; `None` when `id` could not be a folder we made
    /// (empty, hidden, or holding a path separator).
    pub(crate) fn new(state_dir: &Path, id: &ContainerId) -> Option<Self> {
        let name = id.as_str();
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        plain.then(|| ContainerDir {
            root: state_dir.join(name),
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn record(&self) -> PathBuf {
        self.root.join("record.json")
    }

    pub(crate) fn stdout(&self) -> PathBuf {
        self.root.join("stdout.log")
    }

    pub(crate) fn stderr(&self) -> PathBuf {
        self.root.join("stderr.log")
    }

    pub(crate) fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }

    /// Creates the folder, its sandbox and empty log files; fails with `AlreadyExists` if the
    /// folder exists.
    pub(crate) fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir(&self.root)?;
        std::fs::create_dir(self.sandbox())?;
        for log in [self.stdout(), self.stderr()] {
            std::fs::File::create(&log)?;
        }
        Ok(())
    }

    /// Reads the record; `Ok(None)` when the folder or record is gone.
    pub(crate) fn read(&self) -> Result<Option<Record>> {
        let path = self.record();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("could not read the container record", &path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the container record {} is malformed", path.display()),
            )
            .with_context("path", path.display())
            .with_source(e)
        })
    }

    /// Writes the record atomically (a temporary file renamed over the old one), so a crash
    /// of the executor never leaves half a record. It is not synced to disk: a crash of the
    /// machine ends its processes too.
    pub(crate) fn write(&self, record: &Record) -> Result<()> {
        let path = self.record();
        let tmp = self.root.join("record.json.tmp");
        let json = serde_json::to_vec_pretty(record).map_err(|e| {
            Error::new(ErrorKind::Backend, "could not encode the container record").with_source(e)
        })?;
        let written = std::fs::File::create(&tmp).and_then(|mut file| file.write_all(&json));
        written.map_err(|e| io_error("could not write the container record", &tmp, e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| io_error("could not write the container record", &path, e))
    }

    /// Deletes the folder and everything in it; a missing folder is fine.
    pub(crate) fn delete(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(
                "could not delete the container folder",
                &self.root,
                e,
            )),
            _ => Ok(()),
        }
    }
}

/// An I/O failure on `path`, as a backend error naming it.
pub(crate) fn io_error(what: &str, path: &Path, err: std::io::Error) -> Error {
    Error::new(ErrorKind::Backend, format!("{what}: {}", path.display()))
        .with_context("path", path.display())
        .with_source(err)
}
