//! What the sandbox isolates, as root on this machine: processes, files, the root file system,
//! the network, the user, memory and CPU; and that nothing is left once a container is removed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hoist_core::observe::ResourceUsage;
use hoist_core::{
    ContainerId, ContainerSpec, Containerizer, ErrorKind, ExitStatus, NetworkMode, Owner, Volume,
};
use hoist_sandbox::{READ_ONLY_LABEL, SandboxContainerizer};

const DEADLINE: Duration = Duration::from_secs(30);

struct Fixture {
    state: tempfile::TempDir,
    _images: tempfile::TempDir,
    rootfs: String,
    sandbox: SandboxContainerizer,
    started: std::sync::Mutex<Vec<ContainerId>>,
}

impl Drop for Fixture {
    /// Removes every container the test started, passed or failed, so no busy loop, mount or
    /// cgroup outlives it (containers outlive their containerizer). `remove` is async and the
    /// test's runtime is busy dropping this, so it runs on a runtime of its own.
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.started.lock().unwrap());
        let sandbox = self.sandbox.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for id in ids {
                let _ = runtime.block_on(sandbox.remove(&id, true));
            }
        });
        let _ = cleanup.join();
    }
}

impl Fixture {
    fn new() -> Self {
        let state = tempfile::tempdir().unwrap();
        let images = tempfile::tempdir().unwrap();
        let rootfs = common::busybox_rootfs(images.path()).display().to_string();
        let sandbox = common::sandbox(state.path());
        Fixture {
            state,
            _images: images,
            rootfs,
            sandbox,
            started: Default::default(),
        }
    }

    fn spec(&self, script: &str) -> ContainerSpec {
        let mut spec = ContainerSpec::command(["/bin/sh", "-c", script]);
        spec.image = Some(self.rootfs.clone());
        spec
    }

    async fn start(&self, spec: &ContainerSpec) -> ContainerId {
        let owner = Owner {
            executor_id: "isolation".into(),
            task_id: "task".into(),
        };
        let id = self.sandbox.create(&owner, spec).await.unwrap();
        self.started.lock().unwrap().push(id.clone());
        self.sandbox.start(&id).await.unwrap();
        id
    }

    /// Runs `spec` to its end: its status and what it printed on stdout and stderr.
    async fn run(&self, spec: &ContainerSpec) -> (ExitStatus, String) {
        let id = self.start(spec).await;
        let status = tokio::time::timeout(DEADLINE, self.sandbox.wait(&id))
            .await
            .expect("the container ends")
            .unwrap();
        let dir = self.state.path().join("containers").join(id.as_str());
        let output = ["stdout.log", "stderr.log"]
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
            .concat();
        self.sandbox.remove(&id, true).await.unwrap();
        (status, output)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_sees_only_its_own_processes_and_root() {
    let f = Fixture::new();
    let host_file = tempfile::NamedTempFile::new().unwrap();
    let script = format!(
        "ls /proc | grep -c '^[0-9]'; test -e {} && echo host-file-visible; hostname; exit 0",
        host_file.path().display()
    );
    let (status, output) = f.run(&f.spec(&script)).await;
    assert_eq!(status, ExitStatus::code(0), "{output}");
    let mut lines = output.lines();
    let processes: u32 = lines.next().unwrap().trim().parse().unwrap();
    // tini, the shell, and the `ls` and `grep` of the pipeline.
    assert!(
        processes <= 4,
        "the task sees {processes} processes: {output}"
    );
    assert!(!output.contains("host-file-visible"), "{output}");
    assert!(lines.next().unwrap().len() <= 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_containers_own_layer_and_a_read_only_root_refuses_them() {
    let f = Fixture::new();
    let (status, output) = f.run(&f.spec("echo data > /written && cat /written")).await;
    assert_eq!(status, ExitStatus::code(0), "{output}");
    assert_eq!(output.trim(), "data");
    assert!(
        !Path::new(&f.rootfs).join("written").exists(),
        "the image directory was written"
    );

    let mut read_only = f.spec("echo data > /written");
    read_only
        .labels
        .insert(READ_ONLY_LABEL.to_owned(), "true".to_owned());
    let (status, output) = f.run(&read_only).await;
    assert_ne!(status.code, Some(0), "a read-only root took a write");
    assert!(output.contains("Read-only file system"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_none_has_only_loopback_and_the_user_and_volumes_come_from_the_spec() {
    let f = Fixture::new();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("in"), "from the host").unwrap();
    let mut spec = f.spec(
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; id -u; id -g; \
         cat /data/in; echo; cat /etc/resolv.conf; touch /data/out",
    );
    spec.network = Some(NetworkMode::None);
    spec.user = Some("65534:65534".to_owned());
    spec.volumes = vec![Volume {
        host_path: shared.path().to_owned(),
        container_path: "/data".into(),
        read_only: true,
    }];
    spec.dns = vec!["192.0.2.53".parse().unwrap()];
    let (status, output) = f.run(&spec).await;
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "lo",
            "65534",
            "65534",
            "from the host",
            "nameserver 192.0.2.53"
        ],
        "{output}"
    );
    assert_ne!(
        status.code,
        Some(0),
        "a read-only volume took a write: {output}"
    );
    assert!(!shared.path().join("out").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_oom_killed_and_reported() {
    let f = Fixture::new();
    let mut spec = f.spec("exec tail /dev/zero");
    spec.resources.memory = Some(48 << 20);
    let (status, output) = f.run(&spec).await;
    assert!(status.oom_killed, "{status:?} {output}");
    assert_eq!(status.signal, Some(9), "{status:?}");

    // A KILL from a stop is no OOM kill, limit or not.
    let mut stubborn = f.spec("trap '' TERM; echo ready; exec sleep 1000");
    stubborn.resources.memory = Some(48 << 20);
    let id = f.start(&stubborn).await;
    f.sandbox
        .stop(&id, Duration::from_millis(200))
        .await
        .unwrap();
    let status = f.sandbox.wait(&id).await.unwrap();
    assert_eq!(
        (status.signal, status.oom_killed),
        (Some(9), false),
        "{status:?}"
    );
    f.sandbox.remove(&id, false).await.unwrap();
}

const MIB: u64 = 1 << 20;

/// 48 MiB held by `tail` (its one line never ends, so it keeps it all) in a process group of
/// its own under tini, and a busy loop.
const HOG: &str = "(head -c 50331648 /dev/zero; sleep 1000) | tail > /dev/null & \
                   while :; do :; done";

/// Reads samples until one holds at least 48 MiB (the fill takes a moment), then one more, so
/// the last has a CPU percentage over a full interval.
async fn filled(sandbox: &SandboxContainerizer, id: &ContainerId) -> ResourceUsage {
    let mut samples = sandbox.stats(id, Duration::from_millis(500)).await.unwrap();
    tokio::time::timeout(DEADLINE, async {
        let mut last = None;
        loop {
            let Some(sample) = samples.next().await else {
                panic!("the samples ended while it runs; the last: {last:?}");
            };
            let sample = sample.unwrap();
            if sample.memory.rss.unwrap_or(0) >= 48 * MIB && sample.cpu.percent.is_some() {
                return samples.next().await.expect("one more sample").unwrap();
            }
            last = Some(sample);
        }
    })
    .await
    .expect("48 MiB within the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_tasks_memory_and_cpu_from_its_cgroup() {
    let f = Fixture::new();
    // Without limits (the task is in tini's child process group, not runc's), then with.
    for limits in [None, Some(256 * MIB)] {
        let mut spec = f.spec(HOG);
        spec.resources.memory = limits;
        let id = f.start(&spec).await;
        let usage = filled(&f.sandbox, &id).await;
        let measured = usage.measured();
        for field in [
            "cpu.user",
            "cpu.system",
            "cpu.total",
            "cpu.percent",
            "memory.usage",
            "memory.rss",
            "pids",
        ] {
            assert!(measured.contains(&field), "{field} not measured: {usage:?}");
        }
        for held in [usage.memory.rss.unwrap(), usage.memory.usage.unwrap()] {
            assert!(
                (48 * MIB..=(48 + 32) * MIB).contains(&held),
                "{held} is not 48 MiB plus a little ({limits:?}): {usage:?}"
            );
        }
        // One core busy; the machine is shared, so only a wide band is asserted.
        let percent = usage.cpu.percent.unwrap();
        assert!((25.0..=110.0).contains(&percent), "cpu {percent}%");
        // tini, sh, the subshell or its `sleep`, tail and the loop's shell.
        assert!(usage.pids.unwrap() >= 4, "{usage:?}");
        f.sandbox.remove(&id, true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_quota_holds() {
    let f = Fixture::new();
    // A busy shell loop, then the shell's own CPU time (`times`: user and system).
    let mut spec = f.spec("i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; times");
    spec.resources.cpus = Some(0.2);
    let started = Instant::now();
    let (status, output) = f.run(&spec).await;
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(status, ExitStatus::code(0), "{output}");
    let seconds = |field: &str| -> f64 {
        let (minutes, rest) = field.split_once('m').unwrap();
        minutes.parse::<f64>().unwrap() * 60.0 + rest.trim_end_matches('s').parse::<f64>().unwrap()
    };
    let first: Vec<&str> = output.lines().next().unwrap().split_whitespace().collect();
    let cpu = seconds(first[0]) + seconds(first[1]);
    assert!(cpu > 0.1, "the loop used only {cpu} s of CPU: {output}");
    assert!(
        cpu / wall <= 0.3,
        "the loop used {cpu:.2} s of CPU in {wall:.2} s with a quota of 0.2 CPU"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_after_remove() {
    let f = Fixture::new();
    let mut spec = f.spec("exec sleep 1000");
    spec.resources.memory = Some(64 << 20);
    let id = f.start(&spec).await;
    let info = f.sandbox.inspect(&id).await.unwrap();
    let runc_id = info.details["runc_id"].clone();
    let rootfs = info.details["rootfs"].clone();
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&rootfs)
    };
    assert!(mounted());
    // runc makes the container's cgroup once the container exists.
    let cgroups = || cgroup_dirs(Path::new("/sys/fs/cgroup"), &[id.as_str(), &runc_id]);
    let deadline = Instant::now() + DEADLINE;
    while cgroups().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!cgroups().is_empty());
    f.sandbox.remove(&id, true).await.unwrap();
    assert!(!mounted(), "the root file system is still mounted");
    assert_eq!(
        cgroups(),
        Vec::<std::path::PathBuf>::new(),
        "cgroups are left"
    );
    let left: Vec<_> = std::fs::read_dir(f.state.path().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let err = f.sandbox.inspect(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // Created, never started: its root was mounted and its cgroup made all the same.
    let owner = Owner {
        executor_id: "isolation".into(),
        task_id: "never".into(),
    };
    let id = f.sandbox.create(&owner, &f.spec("true")).await.unwrap();
    let rootfs = f.sandbox.inspect(&id).await.unwrap().details["rootfs"].clone();
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&rootfs)
    };
    assert!(mounted());
    assert!(!cgroup_dirs(Path::new("/sys/fs/cgroup"), &[id.as_str()]).is_empty());
    f.sandbox.remove(&id, false).await.unwrap();
    assert!(!mounted(), "the root file system is still mounted");
    assert_eq!(
        cgroup_dirs(Path::new("/sys/fs/cgroup"), &[id.as_str()]),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        std::fs::read_dir(f.state.path().join("containers"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// The cgroup directories under `root` (two levels of controllers and parents deep, then any
/// depth) named one of `names`.
fn cgroup_dirs(root: &Path, names: &[&str]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                if names.iter().any(|n| entry.file_name() == *n) {
                    found.push(path.clone());
                }
                stack.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_executor_finds_stops_and_removes_its_containers() {
    let f = Fixture::new();
    let id = f.start(&f.spec("echo up; exec sleep 1000")).await;
    let again = common::sandbox(f.state.path());
    let owned = again.list_owned(&"isolation".into()).await.unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].id, id);
    let out = again
        .exec(
            &id,
            &["/bin/sh".into(), "-c".into(), "echo inside".into()],
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\n");
    again.stop(&id, Duration::from_secs(5)).await.unwrap();
    tokio::time::timeout(DEADLINE, again.wait(&id))
        .await
        .unwrap()
        .unwrap();
    again.remove(&id, false).await.unwrap();
    assert!(
        std::fs::read_dir(f.state.path().join("containers"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn bridge_networking_and_names_are_refused_with_the_field() {
    let f = Fixture::new();
    let owner = Owner {
        executor_id: "isolation".into(),
        task_id: "refused".into(),
    };
    let mut bridge = f.spec("true");
    bridge.network = Some(NetworkMode::Bridge);
    let err = f.sandbox.create(&owner, &bridge).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(err.context_value("field"), Some("network"));
    let mut named = f.spec("true");
    named.user = Some("nobody".to_owned());
    let err = f.sandbox.create(&owner, &named).await.unwrap_err();
    assert_eq!(err.context_value("field"), Some("user"));
    let mut no_image = f.spec("true");
    no_image.image = None;
    let err = f.sandbox.create(&owner, &no_image).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        std::fs::read_dir(f.state.path().join("containers"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_missing_runtime_or_init_is_unavailable_naming_it() {
    let err = hoist_sandbox::Runtime::new("/nonexistent/runc", "/usr/bin/tini-static").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("/nonexistent/runc"), "{err}");
    let runc = hoist_sandbox::Runtime::detect().unwrap();
    let err = hoist_sandbox::Runtime::new(runc.runc(), "/nonexistent/tini").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("/nonexistent/tini"), "{err}");
}
