//! The resources policies of the process backend: refuse, advisory, and enforcement with the
//! machine's real cgroups.
//!
//! The enforcement tests need a writable cgroup tree (root, with the memory and CPU
//! controllers); without one they say so and return, unless `HOIST_REQUIRE_CGROUPS=1`, which
//! makes that a failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_core::{
    ContainerSpec, Containerizer, ErrorKind, Executor, Owner, Reason, TaskSpec, TaskState,
    TaskStatus,
};
use hoist_process::{Cgroups, ProcessContainerizer, ResourcePolicy};

const DEADLINE: Duration = Duration::from_secs(30);

fn limited(script: &str) -> ContainerSpec {
    let mut spec = ContainerSpec::command(["/bin/sh", "-c", script]);
    spec.resources.cpus = Some(0.1);
    spec.resources.memory = Some(32 << 20);
    spec
}

fn owner(task: &str) -> Owner {
    Owner {
        executor_id: "resources-test".into(),
        task_id: task.into(),
    }
}

/// The machine's cgroups, or `None` (said on stderr) when they cannot be written here.
fn cgroups() -> Option<Cgroups> {
    match Cgroups::detect() {
        Ok(cgroups) => Some(cgroups),
        Err(e) if std::env::var("HOIST_REQUIRE_CGROUPS").as_deref() != Ok("1") => {
            eprintln!("no writable cgroup tree, enforcement not tested: {e}");
            None
        }
        Err(e) => panic!("HOIST_REQUIRE_CGROUPS=1 but: {e}"),
    }
}

async fn run(executor: &Executor, spec: TaskSpec) -> TaskStatus {
    tokio::time::timeout(DEADLINE, executor.run(spec))
        .await
        .expect("the task ended in time")
        .unwrap()
}

#[tokio::test]
async fn refuse_is_the_default_and_names_the_field() {
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path()).unwrap();
    assert_eq!(backend.resources().name(), "refuse");
    let err = backend
        .create(&owner("t"), &limited("true"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(err.context_value("field"), Some("resources.cpus"));
}

/// Log lines written while the guard lives, for checking warnings.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn advisory_accepts_records_warns_once_per_task_and_reports_not_enforced() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path())
        .unwrap()
        .with_resources(ResourcePolicy::Advisory);
    let id = backend
        .create(&owner("t"), &limited("exit 0"))
        .await
        .unwrap();
    backend.start(&id).await.unwrap();
    assert_eq!(backend.wait(&id).await.unwrap().code, Some(0));
    let info = backend.inspect(&id).await.unwrap();
    assert_eq!(
        info.details.get("resources").map(String::as_str),
        Some("cpus 0.1, memory 33554432 bytes: not enforced")
    );
    backend.remove(&id, false).await.unwrap();
    assert_eq!(
        log.text().matches("not enforced").count(),
        1,
        "{}",
        log.text()
    );
    let other = backend
        .create(&owner("u"), &limited("exit 0"))
        .await
        .unwrap();
    backend.start(&other).await.unwrap();
    backend.wait(&other).await.unwrap();
    let text = log.text();
    assert_eq!(text.matches("not enforced").count(), 2, "{text}");
    assert!(text.contains("task=u"), "{text}");
}

#[tokio::test]
async fn enforce_kills_a_task_over_its_memory_and_reports_memory_limit() {
    let Some(cgroups) = cgroups() else { return };
    let version = cgroups.version();
    let state = tempfile::tempdir().unwrap();
    let backend = Arc::new(
        ProcessContainerizer::new(state.path())
            .unwrap()
            .with_resources(ResourcePolicy::Enforce(cgroups)),
    );
    let executor = Executor::builder(backend.clone())
        .keep_containers(true)
        .build()
        .unwrap();
    // `tail` keeps its one 256 MiB line in memory: far over the 32 MiB limit.
    let spec = TaskSpec::new(
        "hog",
        limited("head -c 268435456 /dev/zero | tail > /dev/null"),
    );
    let end = run(&executor, spec).await;
    assert_eq!(end.state, TaskState::Failed, "{end:?}");
    assert_eq!(end.reason, Some(Reason::MemoryLimit), "{end:?}");

    // A task within its limits runs normally, in its cgroup, which goes with the container.
    let spec = TaskSpec::new(
        "fits",
        limited("grep -q hoist /proc/self/cgroup && head -c 1048576 /dev/zero | tail > /dev/null"),
    );
    let end = run(&executor, spec).await;
    assert_eq!(end.state, TaskState::Finished, "{end:?}");
    let containers = backend.list_owned(&executor.id().clone()).await.unwrap();
    for c in &containers {
        let info = backend.inspect(&c.id).await.unwrap();
        assert_eq!(
            info.details.get("resources").map(String::as_str),
            Some(format!("cpus 0.1, memory 33554432 bytes: enforced (cgroup v{version})").as_str())
        );
        backend.remove(&c.id, true).await.unwrap();
        let leftover = if version == 1 {
            format!("/sys/fs/cgroup/memory/hoist/{}", c.id)
        } else {
            format!("/sys/fs/cgroup/hoist/{}", c.id)
        };
        assert!(
            !std::path::Path::new(&leftover).exists(),
            "{leftover} left behind"
        );
    }
    assert_eq!(containers.len(), 2);
}
