//! What the process backend reports of a running container and how it reaches into one:
//! usage read back from `/proc` (and the cgroup, where the policy enforces limits), signals,
//! and interactive sessions on a terminal.

use std::time::Duration;

use futures::StreamExt;
use hoist_core::observe::ResourceUsage;
use hoist_core::session::{ExecRequest, TerminalSize};
use hoist_core::{ContainerId, ContainerSpec, Containerizer, ErrorKind, Owner};
use hoist_process::{Cgroups, ProcessContainerizer, ResourcePolicy};
use tokio::io::AsyncWriteExt;

const DEADLINE: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

fn owner(task: &str) -> Owner {
    Owner {
        executor_id: "observe-test".into(),
        task_id: task.into(),
    }
}

fn shell(script: &str) -> ContainerSpec {
    ContainerSpec::command(["/bin/sh", "-c", script])
}

/// KILLs a started container's process group when a test ends, passed or failed, so that a
/// failed assertion never leaves a busy loop behind (containers outlive their containerizer).
struct Reaper(Option<u32>);

impl Reaper {
    async fn of(backend: &ProcessContainerizer, id: &ContainerId) -> Reaper {
        Reaper(backend.inspect(id).await.unwrap().pid)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// 48 MiB held by `tail` (its one line never ends, so it keeps it all) and a busy loop.
const HOG: &str = "(head -c 50331648 /dev/zero; sleep 1000) | tail > /dev/null & \
                   while :; do :; done";

/// Reads samples until one holds at least 48 MiB (the fill takes a moment), then one more, so
/// the last has a CPU percentage over a full interval.
async fn filled(backend: &ProcessContainerizer, id: &ContainerId) -> ResourceUsage {
    let mut samples = backend.stats(id, Duration::from_millis(500)).await.unwrap();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let sample = samples
                .next()
                .await
                .expect("samples while it runs")
                .unwrap();
            let held = sample.memory.usage.or(sample.memory.rss).unwrap_or(0);
            if held >= 48 * MIB && sample.cpu.percent.is_some() {
                return samples.next().await.expect("one more sample").unwrap();
            }
        }
    })
    .await
    .expect("48 MiB within the deadline")
}

#[tokio::test]
async fn stats_read_back_what_a_process_group_uses() {
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path()).unwrap();
    let id = backend.create(&owner("hog"), &shell(HOG)).await.unwrap();
    backend.start(&id).await.unwrap();
    let _reaper = Reaper::of(&backend, &id).await;
    let usage = filled(&backend, &id).await;
    let measured = usage.measured();
    for field in [
        "cpu.user",
        "cpu.system",
        "cpu.total",
        "cpu.percent",
        "memory.rss",
        "pids",
    ] {
        assert!(measured.contains(&field), "{field} not measured: {usage:?}");
    }
    let rss = usage.memory.rss.unwrap();
    assert!(
        (48 * MIB..=(48 + 32) * MIB).contains(&rss),
        "rss {rss} is not 48 MiB plus a little"
    );
    // One core busy; the machine is shared, so only a wide band is asserted.
    let percent = usage.cpu.percent.unwrap();
    assert!((25.0..=110.0).contains(&percent), "cpu {percent}%");
    // sh, tail, and sleep (the subshell's last command, which it may exec in its place).
    assert!(usage.pids.unwrap() >= 3, "{usage:?}");

    let mut samples = backend
        .stats(&id, Duration::from_millis(100))
        .await
        .unwrap();
    backend.stop(&id, Duration::from_secs(1)).await.unwrap();
    let ended = tokio::time::timeout(DEADLINE, async { while samples.next().await.is_some() {} });
    assert!(
        ended.await.is_ok(),
        "the stream ends once the container has stopped"
    );
    let Err(err) = backend.stats(&id, Duration::from_millis(100)).await else {
        panic!("stats of an exited container");
    };
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    backend.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn with_enforced_limits_the_cgroup_counts_too() {
    let cgroups = match Cgroups::detect() {
        Ok(cgroups) => cgroups,
        Err(e) if std::env::var("HOIST_REQUIRE_CGROUPS").as_deref() != Ok("1") => {
            eprintln!("no writable cgroup tree, cgroup usage not tested: {e}");
            return;
        }
        Err(e) => panic!("HOIST_REQUIRE_CGROUPS=1 but: {e}"),
    };
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path())
        .unwrap()
        .with_resources(ResourcePolicy::Enforce(cgroups));
    let mut spec = shell(HOG);
    spec.resources.memory = Some(256 * MIB);
    spec.resources.cpus = Some(1.0);
    let id = backend.create(&owner("limited"), &spec).await.unwrap();
    backend.start(&id).await.unwrap();
    let _reaper = Reaper::of(&backend, &id).await;
    let usage = filled(&backend, &id).await;
    let measured = usage.measured();
    for field in [
        "memory.usage",
        "memory.max_usage",
        "cpu.total",
        "cpu.throttled_periods",
    ] {
        assert!(measured.contains(&field), "{field} not measured: {usage:?}");
    }
    let charged = usage.memory.usage.unwrap();
    assert!(
        (48 * MIB..=(48 + 48) * MIB).contains(&charged),
        "the cgroup's usage {charged} is not 48 MiB plus a little"
    );
    assert!(usage.memory.max_usage.unwrap() >= charged);
    backend.stop(&id, Duration::from_secs(1)).await.unwrap();
    backend.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn signals_are_checked_and_need_a_running_container() {
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path()).unwrap();
    let id = backend
        .create(&owner("sleeper"), &shell("sleep 1000"))
        .await
        .unwrap();
    let err = backend.signal(&id, 1).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidState,
        "not started yet: {err}"
    );
    backend.start(&id).await.unwrap();
    let _reaper = Reaper::of(&backend, &id).await;
    let err = backend.signal(&id, 4242).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.context_value("field"), Some("signal"));
    // TERM through signal ends it as any TERM would.
    backend.signal(&id, 15).await.unwrap();
    let exit = tokio::time::timeout(DEADLINE, backend.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(15), "{exit}");
    backend.remove(&id, false).await.unwrap();
}

/// Reads the session's output until it holds `wanted`, returning what was read.
async fn read_until(
    output: &mut futures::stream::BoxStream<'static, hoist_core::Result<hoist_core::LogChunk>>,
    seen: &mut String,
    wanted: &str,
) {
    tokio::time::timeout(DEADLINE, async {
        while !seen.contains(wanted) {
            let chunk = output
                .next()
                .await
                .expect("output until the answer")
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk.data));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} in {seen:?}"));
}

#[tokio::test]
async fn a_terminal_session_answers_resizes_and_exits_with_its_code() {
    let state = tempfile::tempdir().unwrap();
    let backend = ProcessContainerizer::new(state.path()).unwrap();
    let id = backend
        .create(&owner("box"), &shell("sleep 1000"))
        .await
        .unwrap();
    backend.start(&id).await.unwrap();
    let _reaper = Reaper::of(&backend, &id).await;
    let request = ExecRequest::new(["/bin/sh"])
        .tty(TerminalSize { rows: 24, cols: 80 })
        .stdin();
    let mut session = backend.exec_stream(&id, request).await.unwrap();
    let mut input = session.take_input().unwrap();
    let mut output = session.take_output().unwrap();
    let mut seen = String::new();

    // `[ -t 0 ]`: the shell's input is a terminal; the answer is computed, so the echo of the
    // typed line cannot be mistaken for it.
    input
        .write_all(b"[ -t 0 ] && echo tty-$((6 * 7)); stty size\n")
        .await
        .unwrap();
    read_until(&mut output, &mut seen, "tty-42").await;
    read_until(&mut output, &mut seen, "24 80").await;
    session
        .resize(TerminalSize {
            rows: 30,
            cols: 100,
        })
        .await
        .unwrap();
    input.write_all(b"stty size\n").await.unwrap();
    read_until(&mut output, &mut seen, "30 100").await;
    input.write_all(b"exit 5\n").await.unwrap();
    let exit = tokio::time::timeout(DEADLINE, session.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, Some(5), "{exit}");
    let rest = tokio::time::timeout(DEADLINE, async { while output.next().await.is_some() {} });
    assert!(
        rest.await.is_ok(),
        "the output ends once the shell has gone"
    );

    backend.stop(&id, Duration::from_secs(1)).await.unwrap();
    let err = backend
        .exec_stream(&id, ExecRequest::new(["/bin/sh"]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    backend.remove(&id, false).await.unwrap();
}
