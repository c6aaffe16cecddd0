//! A minimal local-process containerizer for these tests: environments run as child processes
//! of the test. Only what the function executor uses is implemented.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer, Error,
    ExecOutput, ExecutorId, ExitStatus, LogChunks, LogOptions, OwnedContainer, Owner, Result,
};
use tokio::sync::watch;

struct Entry {
    spec: ContainerSpec,
    pid: Option<u32>,
    exit: watch::Receiver<Option<ExitStatus>>,
    exit_tx: Option<watch::Sender<Option<ExitStatus>>>,
}

/// Child processes as containers.
#[derive(Debug, Clone, Default)]
pub struct LocalProcesses {
    entries: Arc<Mutex<HashMap<ContainerId, Entry>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("pid", &self.pid).finish()
    }
}

impl LocalProcesses {
    /// The pids of the processes still running.
    pub fn running_pids(&self) -> Vec<u32> {
        let entries = self.entries.lock().unwrap();
        entries
            .values()
            .filter(|e| e.exit.borrow().is_none())
            .filter_map(|e| e.pid)
            .collect()
    }

    /// How many containers are not yet removed.
    pub fn live(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    fn entry<T>(&self, id: &ContainerId, f: impl FnOnce(&mut Entry) -> T) -> Result<T> {
        let mut entries = self.entries.lock().unwrap();
        entries
            .get_mut(id)
            .map(f)
            .ok_or_else(|| Error::not_found("container", id))
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

#[async_trait]
impl Containerizer for LocalProcesses {
    fn name(&self) -> &str {
        "local-test"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    async fn create(&self, _owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = ContainerId::new(format!("local-{n}"));
        let (tx, rx) = watch::channel(None);
        self.entries.lock().unwrap().insert(
            id.clone(),
            Entry {
                spec: spec.clone(),
                pid: None,
                exit: rx,
                exit_tx: Some(tx),
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let (spec, tx) = self.entry(id, |e| (e.spec.clone(), e.exit_tx.take()))?;
        let tx = tx.ok_or_else(|| Error::invalid("already started"))?;
        let argv = spec.argv();
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).envs(&spec.env).kill_on_drop(true);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::from(e).with_context("program", &argv[0]))?;
        let pid = child.id();
        self.entry(id, |e| e.pid = pid)?;
        tokio::spawn(async move {
            let status = child.wait().await;
            let exit = match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (s.code(), s.signal()) {
                        (Some(code), _) => ExitStatus::code(code),
                        (None, Some(sig)) => ExitStatus::signal(sig),
                        _ => ExitStatus::code(-1),
                    }
                }
                Err(_) => ExitStatus::code(-1),
            };
            let _ = tx.send(Some(exit));
        });
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let mut rx = self.entry(id, |e| e.exit.clone())?;
        let status = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::new(hoist_core::ErrorKind::Backend, "process watcher ended"))?;
        Ok((*status).expect("checked"))
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let (pid, mut rx) = self.entry(id, |e| (e.pid, e.exit.clone()))?;
        let Some(pid) = pid else { return Ok(()) };
        if rx.borrow().is_some() {
            return Ok(());
        }
        signal(pid, libc::SIGTERM);
        if tokio::time::timeout(grace, rx.wait_for(Option::is_some))
            .await
            .is_err()
        {
            signal(pid, libc::SIGKILL);
            let _ = rx.wait_for(Option::is_some).await;
        }
        Ok(())
    }

    async fn remove(&self, id: &ContainerId, _force: bool) -> Result<()> {
        let removed = self.entries.lock().unwrap().remove(id);
        if let Some(Entry {
            pid: Some(pid),
            exit,
            ..
        }) = removed
            && exit.borrow().is_none()
        {
            signal(pid, libc::SIGKILL);
        }
        Ok(())
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let (pid, exit) = self.entry(id, |e| (e.pid, *e.exit.borrow()))?;
        let state = match (pid, &exit) {
            (None, _) => ContainerState::Created,
            (_, Some(_)) => ContainerState::Exited,
            _ => ContainerState::Running,
        };
        let mut info = ContainerInfo::new(id.clone(), state);
        info.pid = pid;
        info.exit = exit;
        Ok(info)
    }

    async fn exec(&self, _: &ContainerId, _: &[String], _: Duration) -> Result<ExecOutput> {
        Err(Error::unsupported("local-test", "exec"))
    }

    async fn logs(&self, _: &ContainerId, _: LogOptions) -> Result<LogChunks> {
        Err(Error::unsupported("local-test", "logs"))
    }

    async fn list_owned(&self, _: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        Ok(Vec::new())
    }
}

/// Kills one process with SIGKILL, as an outside event.
pub fn kill_externally(pid: u32) {
    signal(pid, libc::SIGKILL);
}
