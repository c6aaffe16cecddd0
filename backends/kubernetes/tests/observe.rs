//! Resource usage, signals and interactive sessions on pods, against the fake API server:
//! `stats` reads `metrics.k8s.io` as metrics-server serves it, `signal` runs `kill -N 1` in
//! the pod, and `exec_stream` speaks the remote-command websocket with input, terminal and
//! resizes (the fake runs an interactive command on this host, so the shell is real).

use std::time::Duration;

use futures::StreamExt as _;
use hoist_core::session::{ExecRequest, TerminalSize};
use hoist_core::{
    ContainerId, ContainerSpec, Containerizer, ErrorKind, ExecutorId, LogStream, Owner, TaskId,
};
use hoist_kube::testing::{FakeApiServer, PodScript, PodUsage};
use hoist_kube::{KubeConfig, KubeContainerizer};
use tokio::io::AsyncWriteExt as _;

const DEADLINE: Duration = Duration::from_secs(10);

async fn backend() -> (FakeApiServer, KubeContainerizer) {
    let server = FakeApiServer::start().await.unwrap();
    let config = KubeConfig {
        default_image: Some("busybox:1.37".into()),
        request_timeout: Duration::from_secs(5),
        ..KubeConfig::default()
    };
    let pods = KubeContainerizer::new(server.client(), config);
    (server, pods)
}

async fn started(pods: &KubeContainerizer, task: &str, line: &str) -> ContainerId {
    let owner = Owner {
        executor_id: ExecutorId::new("observe"),
        task_id: TaskId::new(task),
    };
    let id = pods
        .create(&owner, &ContainerSpec::command(["sh", "-c", line]))
        .await
        .unwrap();
    pods.start(&id).await.unwrap();
    id
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {DEADLINE:?}"))
}

#[tokio::test]
async fn stats_read_the_pods_metrics_once_it_has_a_sample_and_end_with_it() {
    let (server, pods) = backend().await;
    let usage = PodUsage {
        cpu_nanocores: 250_000_000,
        memory_bytes: 48 << 20,
    };
    server.script("busy-", PodScript::default().pending().uses(Some(usage)));
    let id = started(&pods, "busy-1", "exec sleep 1000").await;
    let mut samples = pods.stats(&id, Duration::from_millis(20)).await.unwrap();
    let first = tokio::spawn(async move {
        let first = samples.next().await;
        (first, samples)
    });
    // Pending: metrics-server has no sample (404), so the stream keeps asking and waits.
    within("metrics requests while pending", async {
        while server.requests("metrics") < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(!first.is_finished(), "no sample before the pod runs");
    assert!(server.set_running(id.as_str()));
    let (sample, mut samples) = within("the first sample", first).await.unwrap();
    let sample = sample.expect("a sample").unwrap();
    assert_eq!(sample.cpu.percent, Some(25.0));
    assert_eq!(sample.memory.usage, Some(48 << 20));
    assert_eq!(sample.measured(), vec!["cpu.percent", "memory.usage"]);
    assert!(server.exit(id.as_str(), 0));
    within("the end of the stream", async {
        while let Some(sample) = samples.next().await {
            sample.unwrap();
        }
    })
    .await;
    pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn stats_without_metrics_server_is_unavailable_and_name_the_api() {
    let (server, pods) = backend().await;
    server.without_metrics_api();
    let id = started(&pods, "plain", "exec sleep 1000").await;
    let err = pods
        .stats(&id, Duration::from_millis(20))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("metrics.k8s.io"), "{err}");
    pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn signals_reach_the_pods_main_process_through_kill() {
    let (server, pods) = backend().await;
    let id = started(
        &pods,
        "trapper",
        "trap 'echo reloaded' HUP; echo ready; while true; do sleep 1; done",
    )
    .await;
    pods.signal(&id, 1).await.unwrap();
    assert_eq!(server.signals(id.as_str()), vec![1]);
    let log = server.pod_log(id.as_str());
    assert!(log.contains("ready\nreloaded\n"), "{log:?}");
    // An untrapped signal to a container's init does nothing; KILL ends it.
    pods.signal(&id, 10).await.unwrap();
    assert!(
        server
            .pod(id.as_str())
            .is_some_and(|p| { p.status.and_then(|s| s.phase).as_deref() == Some("Running") })
    );
    for bad in [0, 65, -1] {
        let err = pods.signal(&id, bad).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("signal"), "{err}");
    }
    pods.signal(&id, 9).await.unwrap();
    let exit = within("the end after KILL", pods.wait(&id)).await.unwrap();
    assert_eq!(exit.signal, Some(9), "{exit}");
    assert_eq!(server.signals(id.as_str()), vec![1, 10, 9]);
    let err = pods.signal(&id, 1).await.err().unwrap();
    assert!(
        matches!(err.kind(), ErrorKind::InvalidState | ErrorKind::NotFound),
        "{err}"
    );
    pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn an_interactive_session_on_a_terminal_answers_resizes_and_exits() {
    let (server, pods) = backend().await;
    let id = started(&pods, "shell", "exec sleep 1000").await;
    let request = ExecRequest::new(["sh"])
        .stdin()
        .tty(TerminalSize { rows: 24, cols: 80 });
    let mut session = pods.exec_stream(&id, request).await.unwrap();
    let mut input = session.take_input().expect("an input");
    let mut output = session.take_output().expect("an output");
    session
        .resize(TerminalSize {
            rows: 50,
            cols: 132,
        })
        .await
        .unwrap();
    // Both sizes reach the server while the shell waits for its input.
    within("the resizes", async {
        while server.resizes().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(server.resizes(), vec![(24, 80), (50, 132)]);
    input
        .write_all(b"echo answer-$((6 * 7)); echo oops >&2; exit 4\n")
        .await
        .unwrap();
    input.shutdown().await.unwrap();
    let said = within("the session's output", async {
        let mut said = String::new();
        while let Some(chunk) = output.next().await {
            let chunk = chunk.unwrap();
            // On a terminal, standard error comes on the one output stream.
            assert_eq!(chunk.stream, LogStream::Stdout);
            said.push_str(&String::from_utf8_lossy(&chunk.data));
        }
        said
    })
    .await;
    assert!(said.contains("answer-42"), "{said:?}");
    assert!(said.contains("oops"), "{said:?}");
    let exit = within("the session's exit", session.wait()).await.unwrap();
    assert_eq!(exit.code, Some(4), "{exit}");
    pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn a_session_in_a_pod_that_is_not_running_is_refused() {
    let (server, pods) = backend().await;
    server.script("late-", PodScript::default().pending());
    let id = started(&pods, "late-1", "exec sleep 1000").await;
    let err = pods
        .exec_stream(&id, ExecRequest::new(["sh"]).stdin())
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    let err = pods
        .exec_stream(&id, ExecRequest::new(Vec::<String>::new()))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    pods.remove(&id, true).await.unwrap();
}
