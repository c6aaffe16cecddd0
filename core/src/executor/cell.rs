//! [`StatusCell`]: a task's latest status, for its handles. Lighter than a `watch` channel
//! (one `Notify` instead of eight), which matters with tens of thousands of tasks.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::status::TaskStatus;

/// The latest status of one task, a count of changes, and whether its supervisor is done.
#[derive(Debug)]
pub(crate) struct StatusCell {
    latest: Mutex<Latest>,
    changed: Notify,
}

#[derive(Debug)]
struct Latest {
    status: TaskStatus,
    version: u64,
    closed: bool,
}

/// What a reader sees: the status, its version, and whether no other will follow.
pub(crate) struct Seen {
    pub(crate) status: TaskStatus,
    pub(crate) version: u64,
    pub(crate) closed: bool,
}

impl StatusCell {
    pub(crate) fn new(first: TaskStatus) -> Self {
        StatusCell {
            latest: Mutex::new(Latest {
                status: first,
                version: 0,
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn latest(&self) -> MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the status, wakes every reader, and returns the state it replaced.
    pub(crate) fn set(&self, status: TaskStatus) -> crate::status::TaskState {
        let previous = {
            let mut latest = self.latest();
            let previous = std::mem::replace(&mut latest.status, status);
            latest.version += 1;
            previous.state
        };
        self.changed.notify_waiters();
        previous
    }

    /// Marks that no status will follow (the supervisor is gone) and wakes every reader.
    pub(crate) fn close(&self) {
        self.latest().closed = true;
        self.changed.notify_waiters();
    }

    /// The latest status.
    pub(crate) fn get(&self) -> TaskStatus {
        self.latest().status.clone()
    }

    /// A property of the latest status, without cloning it.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&TaskStatus) -> T) -> T {
        f(&self.latest().status)
    }

    /// Waits until the status is newer than `version` (or the cell is closed) and returns what
    /// is there then. Returns at once when it already is.
    pub(crate) async fn newer_than(&self, version: Option<u64>) -> Seen {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change between the look and the wait is not lost.
            changed.as_mut().enable();
            {
                let latest = self.latest();
                if version.is_none_or(|v| latest.version > v) || latest.closed {
                    return Seen {
                        status: latest.status.clone(),
                        version: latest.version,
                        closed: latest.closed,
                    };
                }
            }
            changed.await;
        }
    }
}
