//! The [`Ledger`]: updates the agent has not acknowledged, and tasks it has not acknowledged
//! any update of. Both go into every SUBSCRIBE.

use std::collections::HashSet;

use tokio::time::Instant;

use crate::wire::{TaskInfo, TaskStatus, Update};

#[derive(Debug)]
struct Pending {
    status: TaskStatus,
    last_sent: Option<Instant>,
}

/// What the agent still has to acknowledge.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    updates: Vec<Pending>,
    tasks: Vec<TaskInfo>,
    terminal: HashSet<String>,
}

impl Ledger {
    /// Remembers a launched task until an update of it is acknowledged.
    pub(crate) fn add_task(&mut self, task: TaskInfo) {
        if !self.tasks.iter().any(|t| t.task_id() == task.task_id()) {
            self.tasks.push(task);
        }
    }

    /// Records an update, sent at `last_sent` (or not yet). A second terminal update of one task is refused (`false`).
    pub(crate) fn push(&mut self, status: TaskStatus, last_sent: Option<Instant>) -> bool {
        if status.state.is_terminal() && !self.terminal.insert(status.task_id.value.clone()) {
            return false;
        }
        self.updates.push(Pending { status, last_sent });
        true
    }

    /// Whether a terminal update of `task` was recorded.
    pub(crate) fn has_terminal(&self, task: &str) -> bool {
        self.terminal.contains(task)
    }

    /// Drops the acknowledged update; the task is then known to the agent. Returns whether the
    /// update was pending (a duplicate acknowledgement returns `false`).
    pub(crate) fn acknowledge(&mut self, task: &str, uuid: &[u8]) -> bool {
        let before = self.updates.len();
        self.updates.retain(|p| {
            !(p.status.task_id.value == task && p.status.uuid.as_ref().is_some_and(|u| u.0 == uuid))
        });
        let found = self.updates.len() != before;
        if found {
            self.tasks.retain(|t| t.task_id().value != task);
        }
        found
    }

    /// Marks every update not sent within `interval` as sent now and returns them, oldest first.
    pub(crate) fn due(&mut self, now: Instant, interval: std::time::Duration) -> Vec<TaskStatus> {
        self.updates
            .iter_mut()
            .filter(|p| {
                p.last_sent
                    .is_none_or(|at| now.duration_since(at) >= interval)
            })
            .map(|p| {
                p.last_sent = Some(now);
                p.status.clone()
            })
            .collect()
    }

    /// Marks as sent at `now` the updates a SUBSCRIBE carried (by UUID): the agent replays
    /// them, so their resend clock starts again. Updates made after that SUBSCRIBE was built
    /// keep their state and go out with the next [`Ledger::due`].
    pub(crate) fn mark_sent(&mut self, carried: &HashSet<Vec<u8>>, now: Instant) {
        for p in &mut self.updates {
            if p.status
                .uuid
                .as_ref()
                .is_some_and(|u| carried.contains(&u.0))
            {
                p.last_sent = Some(now);
            }
        }
    }

    /// The unacknowledged updates, oldest first (what a SUBSCRIBE carries).
    pub(crate) fn unacknowledged_updates(&self) -> Vec<Update> {
        self.updates
            .iter()
            .map(|p| Update {
                status: p.status.clone(),
            })
            .collect()
    }

    /// The unacknowledged tasks, in launch order.
    pub(crate) fn unacknowledged_tasks(&self) -> Vec<TaskInfo> {
        self.tasks.clone()
    }

    /// How many updates wait for an acknowledgement.
    pub(crate) fn pending(&self) -> usize {
        self.updates.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wire::{Base64, TaskId, TaskInfoFields, TaskState};

    fn status(task: &str, state: TaskState, uuid: u8) -> TaskStatus {
        let mut s = TaskStatus::new(TaskId::new(task), state);
        s.uuid = Some(Base64(vec![uuid; 16]));
        s
    }

    #[test]
    fn acknowledgement_drops_the_update_and_the_task() {
        let mut ledger = Ledger::default();
        ledger.add_task(TaskInfo::from_fields(&TaskInfoFields::new("a", "agent")));
        ledger.add_task(TaskInfo::from_fields(&TaskInfoFields::new("b", "agent")));
        assert!(ledger.push(status("a", TaskState::Starting, 1), None));
        assert!(ledger.push(status("a", TaskState::Running, 2), None));
        assert_eq!(ledger.unacknowledged_tasks().len(), 2);
        assert!(ledger.acknowledge("a", &[1; 16]));
        assert!(
            !ledger.acknowledge("a", &[1; 16]),
            "a duplicate acknowledgement is a no-op"
        );
        assert_eq!(ledger.unacknowledged_updates().len(), 1);
        let tasks: Vec<_> = ledger
            .unacknowledged_tasks()
            .iter()
            .map(|t| t.task_id().value.clone())
            .collect();
        assert_eq!(tasks, ["b"]);
    }

    #[test]
    fn one_terminal_update_per_task() {
        let mut ledger = Ledger::default();
        assert!(ledger.push(status("a", TaskState::Killed, 1), None));
        assert!(!ledger.push(status("a", TaskState::Failed, 2), None));
        assert_eq!(ledger.pending(), 1);
        assert!(ledger.has_terminal("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn resends_only_what_is_due() {
        let mut ledger = Ledger::default();
        ledger.push(status("a", TaskState::Running, 1), None);
        let interval = Duration::from_secs(10);
        assert_eq!(ledger.due(Instant::now(), interval).len(), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        ledger.push(status("b", TaskState::Running, 2), None);
        let due = ledger.due(Instant::now(), interval);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].task_id.value, "b");
        tokio::time::advance(Duration::from_secs(5)).await;
        let due = ledger.due(Instant::now(), interval);
        assert_eq!(
            due.iter()
                .map(|s| s.task_id.value.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn subscribed_marks_only_what_the_subscribe_carried() {
        let mut ledger = Ledger::default();
        ledger.push(status("a", TaskState::Running, 1), None);
        let carried: HashSet<Vec<u8>> = ledger
            .unacknowledged_updates()
            .into_iter()
            .filter_map(|u| u.status.uuid.map(|u| u.0))
            .collect();
        // Made while the SUBSCRIBE was on its way.
        ledger.push(status("a", TaskState::Killed, 2), None);
        ledger.mark_sent(&carried, Instant::now());
        let due = ledger.due(Instant::now(), Duration::from_secs(10));
        assert_eq!(
            due.iter().map(|s| s.state).collect::<Vec<_>>(),
            [TaskState::Killed]
        );
    }
}
