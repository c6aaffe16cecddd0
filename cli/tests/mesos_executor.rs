//! `hoist-mesos-executor` as a Mesos agent runs it: a separate process, started with the
//! agent's whole Docker-executor argv and `MESOS_*` environment, serving the agent simulator.
//!
//! `HOIST_MESOS_EXECUTOR=<path>` tests another copy of the program (an installed one).
//!
//! The sandbox tests run as root on a busybox root file system made on the spot.
//!
//! The Docker test builds a `FROM scratch` busybox image through the Engine API (no registry);
//! without a reachable Engine it returns early with a note, unless `HOIST_REQUIRE_DOCKER=1`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hoist_core::{Containerizer, ExecutorId};
use hoist_docker::testing::{
    DEBIAN_STATIC_BUSYBOX, build_busybox_image, engine_for_test, remove_image,
};
use hoist_mesos::testing::{AgentSimulator, SimulatorOptions};
use hoist_mesos::wire::{
    CommandInfo, ContainerInfo, ContainerType, DockerInfo, DockerNetwork, Reason, Resource,
    TaskInfo, TaskInfoFields, TaskState,
};

mod support;

const WAIT: Duration = Duration::from_secs(60);

/// The program under test: the one this package built, or the one `HOIST_MESOS_EXECUTOR`
/// names (an installed copy, say).
fn binary() -> String {
    std::env::var("HOIST_MESOS_EXECUTOR")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hoist-mesos-executor").to_owned())
}

/// The argv a Mesos 1.x agent gives the Docker executor (apache/mesos
/// `src/slave/containerizer/docker.cpp`), with the optional flags some versions add.
fn agent_argv(container: &str, sandbox: &Path) -> Vec<String> {
    [
        format!("--container={container}"),
        "--docker=docker".into(),
        "--docker_socket=/var/run/docker.sock".into(),
        "--help=false".into(),
        "--initialize_driver_logging=true".into(),
        "--launcher_dir=/usr/libexec/mesos".into(),
        "--logbufsecs=0".into(),
        "--logging_level=INFO".into(),
        "--mapped_directory=/mnt/mesos/sandbox".into(),
        "--quiet=false".into(),
        format!("--sandbox_directory={}", sandbox.display()),
        "--stop_timeout=0ns".into(),
        "--task_environment={\"FROM_AGENT\":\"1\"}".into(),
        "--cgroups_enable_cfs=false".into(),
    ]
    .into()
}

/// The executor started as the agent starts it: the argv, the agent's environment and the
/// sandbox as working directory; its standard error goes to `stderr` in the sandbox.
fn start(agent: &AgentSimulator, container: &str, sandbox: &Path) -> tokio::process::Child {
    start_with(agent, container, sandbox, &[])
}

/// [`start`], with `extra` flags after the agent's.
fn start_with(
    agent: &AgentSimulator,
    container: &str,
    sandbox: &Path,
    extra: &[String],
) -> tokio::process::Child {
    let env = agent.env();
    let stderr = std::fs::File::create(sandbox.join("stderr")).unwrap();
    tokio::process::Command::new(binary())
        .args(agent_argv(container, sandbox))
        .args(extra)
        .current_dir(sandbox)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LIBPROCESS_IP", "127.0.0.1")
        .env("MESOS_AGENT_ENDPOINT", &env.agent_endpoint)
        .env("MESOS_FRAMEWORK_ID", &env.framework_id.value)
        .env("MESOS_EXECUTOR_ID", &env.executor_id.value)
        .env("MESOS_DIRECTORY", sandbox)
        .env("MESOS_SANDBOX", sandbox)
        .env("MESOS_CHECKPOINT", "1")
        .env("MESOS_RECOVERY_TIMEOUT", "15mins")
        .env("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs")
        .env("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "10secs")
        .env("MESOS_HTTP_COMMAND_EXECUTOR", "0")
        .env("MESOS_SLAVE_ID", "agent-1")
        .env("MESOS_SLAVE_PID", "slave(1)@127.0.0.1:5051")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("the executor starts")
}

/// Ends a run: after a failed step, kills the executor and fails with its standard error;
/// otherwise waits for it to exit 0 after SHUTDOWN.
async fn exits_cleanly(
    child: &mut tokio::process::Child,
    result: hoist_core::Result<()>,
    stderr: &dyn Fn() -> String,
) {
    if let Err(e) = result {
        let _ = child.start_kill();
        panic!("{e}\nexecutor's stderr:\n{}", stderr());
    }
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the executor exits after SHUTDOWN")
        .unwrap();
    assert!(status.success(), "exit status {status}\n{}", stderr());
}

/// An ordinary Mesos task: `cpus: 0.1`, `mem: 32`.
fn task(id: &str, shell: &str) -> TaskInfoFields {
    let mut info = TaskInfoFields::new(id, "agent-1");
    info.command = Some(CommandInfo::shell(shell));
    info.resources = vec![Resource::scalar("cpus", 0.1), Resource::scalar("mem", 32.0)];
    info
}

/// Launches `info`, waits for TASK_RUNNING, kills it, then shuts the executor down; checks
/// that the task ended with exactly one TASK_KILLED and the executor exited 0. Returns the
/// executor's standard error.
async fn run_then_kill(
    agent: &AgentSimulator,
    sandbox: &Path,
    container: &str,
    info: TaskInfoFields,
) -> String {
    run_check_then_kill(agent, sandbox, container, info, &[], &|| {}).await
}

/// [`run_then_kill`], calling `while_running` once the task is RUNNING (a failed assertion
/// there still stops the executor).
async fn run_check_then_kill(
    agent: &AgentSimulator,
    sandbox: &Path,
    container: &str,
    info: TaskInfoFields,
    extra: &[String],
    while_running: &(dyn Fn() + Sync),
) -> String {
    let mut child = start_with(agent, container, sandbox, extra);
    let id = info.task_id.value.clone();
    let stderr = || std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    let result = async {
        agent.wait_for("a SUBSCRIBE", WAIT, |s| s.connected).await?;
        agent.launch(TaskInfo::from_fields(&info));
        agent
            .wait_for("TASK_RUNNING", WAIT, |s| {
                s.states(&id).contains(&TaskState::Running)
            })
            .await?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(while_running))
            .map_err(|_| hoist_core::Error::invalid("the check while running failed"))?;
        agent.kill(&id, None);
        agent
            .wait_for("TASK_KILLED", WAIT, |s| {
                s.states(&id).contains(&TaskState::Killed)
            })
            .await?;
        agent.shutdown();
        Ok::<(), hoist_core::Error>(())
    }
    .await;
    exits_cleanly(&mut child, result, &stderr).await;
    let s = agent.snapshot();
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    let terminal = s.terminal(&id);
    assert_eq!(terminal.len(), 1, "{:?}", s.states(&id));
    assert_eq!(terminal[0].state, TaskState::Killed);
    assert_eq!(
        s.states(&id)
            .iter()
            .filter(|s| **s == TaskState::Killed)
            .count(),
        1
    );
    stderr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_task_with_cpus_and_mem_runs_and_is_killed_once() {
    let sandbox = tempfile::tempdir().unwrap();
    // The configuration in the working directory (the sandbox), as go-mesos-executor reads it;
    // an unknown key is a warning, not a refusal.
    std::fs::write(
        sandbox.path().join("config.yaml"),
        "Containerizer: process\ndebug: false\nhooks: []\nsomething_else: 1\n",
    )
    .unwrap();
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let container = format!("mesos-process-{}", std::process::id());
    let stderr = run_then_kill(
        &agent,
        sandbox.path(),
        &container,
        task("sleeper", "sleep 300"),
    )
    .await;
    assert!(
        stderr.contains("unknown key `something_else` ignored"),
        "{stderr}"
    );
    assert!(
        stderr.contains("process.resources: enforce")
            || stderr.contains("process.resources: advisory"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("something_else").count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_address_serves_the_engines_and_the_drivers_metrics() {
    let sandbox = tempfile::tempdir().unwrap();
    std::fs::write(
        sandbox.path().join("config.yaml"),
        "containerizer: process\n",
    )
    .unwrap();
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let port = support::free_port();
    let container = format!("mesos-metrics-{}", std::process::id());
    let check = || {
        // STARTING and RUNNING went out; the task runs.
        let deadline = std::time::Instant::now() + WAIT;
        let body = loop {
            if let Some((_, body)) = support::scrape(port)
                && body.contains("hoist_tasks{state=\"running\"} 1")
                && body.contains("hoist_mesos_updates_acknowledged_total 2")
            {
                break body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the metrics never showed the task: {:?}",
                support::scrape(port)
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(body.contains("hoist_mesos_updates_sent_total"), "{body}");
        assert!(body.contains("hoist_task_launches_total 1"), "{body}");
        support::promtool_check(&body);
    };
    run_check_then_kill(
        &agent,
        sandbox.path(),
        &container,
        task("measured", "sleep 300"),
        &[format!("--metrics_address=127.0.0.1:{port}")],
        &check,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_task_with_cpus_and_mem_runs_and_is_killed_once() {
    let Some(docker) = engine_for_test("the drop-in's Docker run").await else {
        return;
    };
    let image = format!("hoist-cli-mesos-e2e:{}", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &image,
        &[],
        WAIT,
    )
    .await
    .unwrap();
    let sandbox = tempfile::tempdir().unwrap();
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let container = format!("mesos-docker-{}", std::process::id());
    let mut info = task(
        "web",
        "test \"$FROM_AGENT\" = 1 && test -d /mnt/mesos/sandbox && sleep 300",
    );
    info.container = Some(ContainerInfo {
        kind: ContainerType::Docker,
        volumes: vec![],
        hostname: None,
        docker: Some(DockerInfo {
            image: image.clone(),
            network: Some(DockerNetwork::None),
            port_mappings: vec![],
            privileged: None,
            parameters: vec![],
            force_pull_image: None,
        }),
        mesos: None,
        network_infos: vec![],
    });
    run_then_kill(&agent, sandbox.path(), &container, info).await;
    // Nothing the test made stays behind.
    for c in docker
        .list_owned(&ExecutorId::new(container.as_str()))
        .await
        .unwrap()
    {
        docker.remove(&c.id, true).await.unwrap();
    }
    remove_image(docker.client(), &image).await.unwrap();
}

/// The drop-in's configuration for the sandbox backend: tasks without an image on a busybox
/// root, state in `state`.
fn sandbox_config(sandbox: &Path, images: &Path, state: &Path) {
    let rootfs = hoist_sandbox::testing::busybox_rootfs(images);
    std::fs::write(
        sandbox.join("config.yaml"),
        format!(
            "containerizer: sandbox\nsandbox:\n  rootfs: {}\n  state_dir: {}\n",
            rootfs.display(),
            state.display()
        ),
    )
    .unwrap();
}

/// The one container folder under the sandbox backend's `state`: the container's id.
fn only_container(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("containers"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The limits the kernel holds for hoist's cgroup `id`: the CFS quota and period in
/// microseconds, and the memory limit in bytes (v1 or v2).
fn cgroup_limits(id: &str) -> (String, String) {
    let root = Path::new("/sys/fs/cgroup");
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_owned()
    };
    if root.join("cgroup.controllers").exists() {
        let dir = root.join("hoist").join(id);
        (read(dir.join("cpu.max")), read(dir.join("memory.max")))
    } else {
        let cpu = root.join("cpu/hoist").join(id);
        (
            format!(
                "{} {}",
                read(cpu.join("cpu.cfs_quota_us")),
                read(cpu.join("cpu.cfs_period_us"))
            ),
            read(
                root.join("memory/hoist")
                    .join(id)
                    .join("memory.limit_in_bytes"),
            ),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_task_with_cpus_and_mem_runs_enforced_and_is_killed_once() {
    let sandbox = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    sandbox_config(sandbox.path(), images.path(), state.path());
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let container = format!("mesos-sandbox-{}", std::process::id());
    // The Mesos sandbox is mounted where the agent maps it; the host's files are not there.
    let info = task(
        "jailed",
        "test \"$FROM_AGENT\" = 1 && test -d /mnt/mesos/sandbox && ! test -e /usr/bin/env \
         && sleep 300",
    );
    let check = || {
        let ids = only_container(state.path());
        assert_eq!(ids.len(), 1, "{ids:?}");
        // cpus 0.1 is a 10 ms quota per 100 ms; mem 32 is 32 MiB.
        let (cpu, memory) = cgroup_limits(&ids[0]);
        assert_eq!(cpu, "10000 100000");
        assert_eq!(memory, (32u64 << 20).to_string());
    };
    let stderr = run_check_then_kill(&agent, sandbox.path(), &container, info, &[], &check).await;
    assert!(
        stderr.contains("sandbox: cpus and mem enforced"),
        "{stderr}"
    );
    assert!(
        only_container(state.path()).is_empty(),
        "the container was not removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_task_over_its_mem_is_killed_and_reported() {
    let sandbox = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    sandbox_config(sandbox.path(), images.path(), state.path());
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let container = format!("mesos-sandbox-hog-{}", std::process::id());
    let mut child = start(&agent, &container, sandbox.path());
    let stderr = || std::fs::read_to_string(sandbox.path().join("stderr")).unwrap_or_default();
    // `tail` keeps the never-ending line of zeros it reads: far more than 32 MiB.
    let info = task("hog", "exec tail /dev/zero");
    let result = async {
        agent.wait_for("a SUBSCRIBE", WAIT, |s| s.connected).await?;
        agent.launch(TaskInfo::from_fields(&info));
        agent
            .wait_for("a terminal update", WAIT, |s| !s.terminal("hog").is_empty())
            .await?;
        agent.shutdown();
        Ok::<(), hoist_core::Error>(())
    }
    .await;
    exits_cleanly(&mut child, result, &stderr).await;
    let s = agent.snapshot();
    let terminal = s.terminal("hog");
    assert_eq!(terminal.len(), 1, "{:?}", s.states("hog"));
    assert_eq!(terminal[0].state, TaskState::Failed, "{:?}", terminal[0]);
    assert_eq!(
        terminal[0].reason,
        Some(Reason::ContainerLimitationMemory),
        "{:?}",
        terminal[0]
    );
    assert!(only_container(state.path()).is_empty());
}

/// The executor run in `dir` with `args` and no environment at all.
fn without_agent(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn help_false_is_ignored_and_help_prints_usage() {
    let out = std::process::Command::new(binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let usage = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--docker_socket",
        "--proc_path",
        "--registering_retry",
        "Exit codes",
    ] {
        assert!(usage.contains(flag), "{usage}");
    }
    let out = std::process::Command::new(binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hoist-mesos-executor "));
    // Without an agent environment: past the flags, a one-line error about the variable.
    let dir = tempfile::tempdir().unwrap();
    let out = without_agent(dir.path(), &["--help=false", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MESOS_"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = std::process::Command::new(binary())
        .arg("--teleport")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown flag `--teleport`"));
}

#[test]
fn a_bad_value_is_one_error_naming_the_key_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[NetNS]\nProc_Path = 3\npath = \"relative\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(binary())
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        err.matches("`NetNS.path` must be an absolute path").count(),
        1,
        "{err}"
    );
}
