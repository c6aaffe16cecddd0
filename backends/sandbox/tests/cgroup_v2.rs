//! The sandbox on cgroup v2, against a unified hierarchy faked in a temporary directory (the
//! kernel's files written by the test): what start-up finds missing, where the limits go,
//! the cgroup runc is given, and that `stats` and OOM reports read the v2 files. The container
//! itself runs under runc on the machine's real hierarchy; only hoist's side is faked.

mod common;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use hoist_core::{ContainerSpec, Containerizer, ErrorKind, Owner};
use hoist_sandbox::{Runtime, SandboxContainerizer};

const DEADLINE: Duration = Duration::from_secs(30);

/// A fake v2 mount offering `controllers`.
fn unified(controllers: &str) -> tempfile::TempDir {
    let mount = tempfile::tempdir().unwrap();
    std::fs::write(mount.path().join("cgroup.controllers"), controllers).unwrap();
    mount
}

fn sandbox_on(state: &Path, mount: &Path) -> hoist_core::Result<SandboxContainerizer> {
    SandboxContainerizer::with_parts(state, Runtime::detect().unwrap(), mount, "hoist")
}

#[test]
fn what_a_v2_machine_lacks_is_unavailable_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let mount = unified("cpuset cpu io pids\n");
    let err = sandbox_on(state.path(), mount.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.message().contains("lacks the `memory` controller"),
        "{err}"
    );

    // hoist's cgroup cannot be made a cgroup (here: a file is in the way).
    let mount = unified("cpu memory pids\n");
    std::fs::write(mount.path().join("hoist"), "").unwrap();
    let err = sandbox_on(state.path(), mount.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.message().contains("hoist/cgroup.subtree_control"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_v2_limits_stats_and_oom_kills_use_the_containers_cgroup() {
    let state = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let rootfs = common::busybox_rootfs(images.path());
    let mount = unified("cpuset cpu io memory hugetlb pids\n");
    let sandbox = sandbox_on(state.path(), mount.path()).unwrap();
    let hoist = mount.path().join("hoist");
    assert_eq!(
        std::fs::read_to_string(hoist.join("cgroup.subtree_control")).unwrap(),
        "+memory +cpu"
    );

    // Ends by KILL once told to, as the OOM killer would end it.
    let mut spec = ContainerSpec::command([
        "/bin/sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; kill -9 $$",
    ]);
    spec.image = Some(rootfs.display().to_string());
    spec.resources.memory = Some(32 << 20);
    spec.resources.cpus = Some(0.5);
    let owner = Owner {
        executor_id: "v2".into(),
        task_id: "task".into(),
    };
    let id = sandbox.create(&owner, &spec).await.unwrap();
    let cgroup = hoist.join(id.as_str());
    let read = |file: &str| std::fs::read_to_string(cgroup.join(file)).unwrap();
    assert_eq!(read("memory.max"), (32u64 << 20).to_string());
    assert_eq!(read("cpu.max"), "50000 100000");
    // 512 shares on the weight scale.
    assert_eq!(read("cpu.weight"), "20");

    // runc is given a cgroup under the container's, which holds the limits.
    let info = sandbox.inspect(&id).await.unwrap();
    let runc_id = &info.details["runc_id"];
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            state
                .path()
                .join("containers")
                .join(id.as_str())
                .join("sandbox/bundle/config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["linux"]["cgroupsPath"],
        format!("/hoist/{id}/{runc_id}")
    );

    // What the kernel would write (cgroup-v2.rst), read back by stats.
    for (file, text) in [
        ("memory.current", "41943040\n"),
        ("memory.stat", "anon 33554432\nfile 4194304\n"),
        (
            "cpu.stat",
            "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 3\nthrottled_usec 100000\n",
        ),
        ("pids.current", "3\n"),
        ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ] {
        std::fs::write(cgroup.join(file), text).unwrap();
    }
    sandbox.start(&id).await.unwrap();
    let result: hoist_core::Result<()> = async {
        let mut samples = sandbox.stats(&id, Duration::from_millis(100)).await?;
        let usage = tokio::time::timeout(DEADLINE, samples.next())
            .await
            .expect("a sample")
            .expect("a sample while it runs")?;
        assert_eq!(usage.memory.usage, Some(40 << 20), "{usage:?}");
        assert_eq!(usage.memory.rss, Some(32 << 20), "{usage:?}");
        assert_eq!(usage.cpu.total, Some(Duration::from_secs(2)), "{usage:?}");
        assert_eq!(usage.cpu.throttled_periods, Some(3), "{usage:?}");
        assert_eq!(usage.pids, Some(3), "{usage:?}");

        // The kernel counts an OOM kill in runc's cgroup and, v2 events being hierarchical, in
        // the container's, which outlives runc's.
        std::fs::write(
            cgroup.join("memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
        )
        .unwrap();
        sandbox
            .exec(&id, &["touch".into(), "/tmp/go".into()], DEADLINE)
            .await?;
        let status = tokio::time::timeout(DEADLINE, sandbox.wait(&id))
            .await
            .expect("the container ends")?;
        assert_eq!(status.signal, Some(9), "{status:?}");
        assert!(status.oom_killed, "{status:?}");
        Ok(())
    }
    .await;
    // The files the test wrote are not the kernel's: they go first, as the kernel's would.
    for entry in std::fs::read_dir(&cgroup).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    sandbox.remove(&id, true).await.unwrap();
    // runc made the container's cgroup in the machine's real hierarchy; it removed its own
    // at the end, and the directories above it (in each v1 controller) go here.
    let real = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_dir(real).unwrap().flatten().map(|c| c.path());
    for dir in controllers.chain([real.to_owned()]) {
        let _ = std::fs::remove_dir(dir.join("hoist").join(id.as_str()));
    }
    result.unwrap();
    assert!(!cgroup.exists(), "the container's cgroup is left");
}
