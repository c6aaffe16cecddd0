//! The containers a containerizer knows: those in memory, and those it finds in their folders
//! (created by an earlier containerizer on the same state directory), whose processes it
//! watches through `/proc` because it cannot `waitpid` them.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use hoist_core::{ContainerId, ContainerState, Error, ExitStatus, Result};

use super::Inner;
use crate::entry::Entry;
use crate::record::ContainerDir;

impl Inner {
    pub(super) fn containers(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerId, Arc<Entry>>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The container `id`: from memory, or else from its folder (a container an earlier
    /// containerizer created). `None` when there is no such container.
    pub(super) fn lookup(self: &Arc<Self>, id: &ContainerId) -> Result<Option<Arc<Entry>>> {
        if let Some(entry) = self.containers().get(id) {
            return Ok(Some(entry.clone()));
        }
        let Some(dir) = ContainerDir::new(&self.state_dir, id) else {
            return Ok(None);
        };
        let Some(record) = dir.read()? else {
            return Ok(None);
        };
        if record.id != *id {
            return Err(Error::invalid(format!(
                "the record in {} names container {}",
                dir.root().display(),
                record.id
            )));
        }
        let entry = Arc::new(Entry::new(dir, record));
        let entry = self.containers().entry(id.clone()).or_insert(entry).clone();
        self.watch_adopted(&entry);
        Ok(Some(entry))
    }

    /// For a running container this containerizer did not start (it cannot `waitpid` it):
    /// polls `/proc` until the process has gone. Its exit status is then the one its starter
    /// recorded, if that starter is still alive, and unknown otherwise.
    pub(super) fn watch_adopted(self: &Arc<Self>, entry: &Arc<Entry>) {
        let record = entry.snapshot();
        if record.state != ContainerState::Running || record.exit.is_some() {
            return;
        }
        let Some(process) = record.process() else {
            entry.finish(ExitStatus::default());
            return;
        };
        let weak: Weak<Entry> = Arc::downgrade(entry);
        let interval = self.poll_interval;
        self.tasks.spawn(async move {
            // A zombie still exists: its parent is alive and about to reap it and record how
            // it ended, so wait until it has been reaped.
            loop {
                if !process.exists() {
                    break;
                }
                tokio::time::sleep(interval).await;
                if weak.strong_count() == 0 {
                    return;
                }
            }
            // Give the process's own parent a moment to record the real status.
            tokio::time::sleep(interval).await;
            let Some(entry) = weak.upgrade() else { return };
            let recorded = entry.dir.read().ok().flatten().and_then(|r| r.exit);
            entry.finish(recorded.unwrap_or_default());
        });
    }
}
