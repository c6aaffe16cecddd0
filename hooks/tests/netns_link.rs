//! The `netns` hook with a real process in its own network namespace.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::testing::{FakeContainerizer, Script};
use hoist_core::{ContainerSpec, Executor, TaskSpec, TaskState};
use hoist_hooks::{NetnsConfig, NetnsHook};
use support::Background;

/// A process in a new network namespace holding a veth pair, one end called `interface`.
fn process_in_own_netns(interface: &str) -> Background {
    let script =
        format!("ip link add {interface} type veth peer name {interface}p && exec sleep 60");
    Background::spawn(&["unshare", "--net", "sh", "-c", &script])
}

#[tokio::test]
async fn ip_netns_exec_sees_the_task_network_until_the_kill() {
    let interface = support::unique("hdum");
    let process = process_in_own_netns(&interface);
    let task_id = format!("hoist-netns-test-{}", process.id());
    let fake = Arc::new(FakeContainerizer::new());
    fake.script(
        task_id.as_str(),
        Script {
            pid: Some(process.id()),
            ..Script::default()
        },
    );
    let executor = Executor::builder(fake)
        .hook(NetnsHook::new())
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor
        .launch(TaskSpec::new(
            task_id.as_str(),
            ContainerSpec::command(["x"]),
        ))
        .unwrap();
    assert_eq!(
        support::until_state(&mut statuses, TaskState::Running)
            .await
            .state,
        TaskState::Running
    );

    let link = Path::new("/var/run/netns").join(&task_id);
    let _cleanup = RemoveOnDrop(link.clone());
    let target = std::fs::read_link(&link).unwrap();
    assert_eq!(target, Path::new(&format!("/proc/{}/ns/net", process.id())));
    assert!(support::ok(&["ip", "netns", "list"]).contains(&task_id));
    let mut seen = String::new();
    for _ in 0..50 {
        seen = support::ok(&["ip", "netns", "exec", &task_id, "ip", "-o", "link", "show"]);
        if seen.contains(&interface) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.contains(&interface),
        "ip netns exec did not enter the task's namespace: {seen}"
    );
    assert!(!support::ok(&["ip", "-o", "link", "show"]).contains(&interface));

    executor.kill(&task_id.as_str().into(), None).unwrap();
    assert_eq!(
        support::until_state(&mut statuses, TaskState::Killed)
            .await
            .state,
        TaskState::Killed
    );
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is still there"
    );
}

/// Removes a link a failed test would leave behind.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn hook_in(dir: &Path) -> NetnsHook {
    NetnsHook::with_config(NetnsConfig {
        path: dir.join("netns"),
        ..NetnsConfig::default()
    })
}

#[tokio::test]
async fn stale_links_are_replaced_and_foreign_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let links = dir.path().join("netns");
    std::fs::create_dir(&links).unwrap();
    let process = Background::spawn(&["sleep", "60"]);
    let fake = Arc::new(FakeContainerizer::new());
    fake.default_script(Script {
        pid: Some(process.id()),
        ..Script::default()
    });
    let executor = Executor::builder(fake.clone())
        .hook(hook_in(dir.path()))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();

    // A link left by an earlier run of the same task id is replaced.
    std::os::unix::fs::symlink("/proc/1/ns/net", links.join("stale")).unwrap();
    executor
        .launch(TaskSpec::new("stale", ContainerSpec::command(["x"])))
        .unwrap();
    assert_eq!(
        support::until_state(&mut statuses, TaskState::Running)
            .await
            .state,
        TaskState::Running
    );
    assert_eq!(
        std::fs::read_link(links.join("stale")).unwrap(),
        Path::new(&format!("/proc/{}/ns/net", process.id()))
    );
    // Replaced behind the hook's back: post-stop leaves the new link alone.
    std::fs::remove_file(links.join("stale")).unwrap();
    std::os::unix::fs::symlink("/somewhere/else", links.join("stale")).unwrap();
    executor.kill(&"stale".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert_eq!(
        std::fs::read_link(links.join("stale")).unwrap(),
        Path::new("/somewhere/else")
    );

    // A file that is not a link (say, from `ip netns add`) is not touched: the launch fails.
    std::fs::write(links.join("taken"), "").unwrap();
    executor
        .launch(TaskSpec::new("taken", ContainerSpec::command(["x"])))
        .unwrap();
    let end = support::until_state(&mut statuses, TaskState::Failed).await;
    assert_eq!(end.state, TaskState::Failed);
    assert!(end.message.unwrap().contains("is not a link"));
    assert!(links.join("taken").is_file());

    // A task id that cannot be a file name fails the launch, naming the id.
    executor
        .launch(TaskSpec::new("a/b", ContainerSpec::command(["x"])))
        .unwrap();
    let end = support::until_state(&mut statuses, TaskState::Failed).await;
    assert!(end.message.unwrap().contains("`a/b`"));
}

#[tokio::test]
async fn a_container_without_a_process_fails_the_launch() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeContainerizer::new());
    // A pid that no process has.
    fake.default_script(Script {
        pid: Some(u32::MAX - 1),
        ..Script::default()
    });
    let executor = Executor::builder(fake.clone())
        .hook(hook_in(dir.path()))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor
        .launch(TaskSpec::new("gone", ContainerSpec::command(["x"])))
        .unwrap();
    let end = support::until_state(&mut statuses, TaskState::Failed).await;
    assert_eq!(end.state, TaskState::Failed);
    assert!(end.message.unwrap().contains("ns/net"));
    assert!(std::fs::read_dir(dir.path().join("netns")).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn netns_configuration_is_checked_when_the_executor_is_built() {
    let build = |config: NetnsConfig| {
        Executor::builder(Arc::new(FakeContainerizer::new()))
            .hook(NetnsHook::with_config(config))
            .build()
            .map(drop)
    };
    let err = build(NetnsConfig {
        path: "relative/netns".into(),
        ..NetnsConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("netns.path"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = build(NetnsConfig {
        proc_path: dir.path().to_owned(),
        ..NetnsConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("netns.proc_path") && err.to_string().contains("proc"),
        "{err}"
    );
    build(NetnsConfig::default()).unwrap();
}
