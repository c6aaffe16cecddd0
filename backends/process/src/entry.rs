//! One known container in memory: its folder, its record as last written, and the exit its
//! waiters watch.

use std::sync::Mutex;
use std::time::Duration;

use hoist_core::{ContainerState, ExitStatus};
use tokio::sync::watch;

use crate::record::{ContainerDir, Record};

/// Where a container's exit stands, as its waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not exited yet (created or running).
    Pending,
    /// Exited with this status.
    Exited(ExitStatus),
    /// Removed before it ever ran.
    Removed,
}

/// One known container: its folder, its record as last written, and its exit for waiters.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) dir: ContainerDir,
    record: Mutex<Record>,
    pub(crate) phase: watch::Sender<Phase>,
    /// Serialises start, stop and remove of this container.
    pub(crate) busy: tokio::sync::Mutex<()>,
}

impl Entry {
    pub(crate) fn new(dir: ContainerDir, record: Record) -> Self {
        let phase = match (record.state, record.exit) {
            (ContainerState::Exited, exit) => Phase::Exited(exit.unwrap_or_default()),
            _ => Phase::Pending,
        };
        Entry {
            dir,
            record: Mutex::new(record),
            phase: watch::Sender::new(phase),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn snapshot(&self) -> Record {
        self.record().clone()
    }

    /// Records the exit (the first one reported wins) and wakes every waiter.
    pub(crate) fn finish(&self, status: ExitStatus) {
        let record = {
            let mut record = self.record();
            if record.exit.is_some() {
                return;
            }
            record.state = ContainerState::Exited;
            record.exit = Some(status);
            record.clone()
        };
        if let Err(e) = self.dir.write(&record) {
            tracing::warn!(container = %record.id, error = %e, "could not record the exit");
        }
        self.phase.send_if_modified(|phase| {
            let pending = *phase == Phase::Pending;
            if pending {
                *phase = Phase::Exited(status);
            }
            pending
        });
    }

    /// Waits for the exit, for at most `deadline` when given.
    pub(crate) async fn exited(&self, deadline: Option<Duration>) -> Option<Phase> {
        let mut rx = self.phase.subscribe();
        let done = rx.wait_for(|p| *p != Phase::Pending);
        let phase = match deadline {
            Some(deadline) => tokio::time::timeout(deadline, done).await.ok()?,
            None => done.await,
        };
        Some(phase.map_or(Phase::Removed, |p| *p))
    }
}
