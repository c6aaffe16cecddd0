//! End to end: the `mesos-executor` example, as a separate process on the Docker backend,
//! against the agent simulator.
//!
//! The test builds the example with `cargo build` and a `FROM scratch` image holding Debian's
//! static busybox through the Engine API. Without a reachable Docker Engine it returns early
//! with a note, unless `HOIST_REQUIRE_DOCKER=1`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use hoist_core::labels;
use hoist_mesos::testing::{AgentSimulator, SimulatorOptions};
use hoist_mesos::wire::{
    CommandInfo, ContainerInfo, ContainerType, DockerInfo, DockerNetwork, HealthCheckInfo,
    HealthCheckType, TaskInfo, TaskInfoFields, TaskState,
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

const SOCKET: &str = "/var/run/docker.sock";
const IMAGE: &str = "hoist-mesos-e2e:busybox";
const WAIT: Duration = Duration::from_secs(60);

/// One request to the Engine API; the status and body.
async fn docker(
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let stream = UnixStream::connect(SOCKET).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "docker")
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(std::io::Error::other)?;
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}

/// A ustar archive of `(name, mode, contents)` files.
fn tar(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = vec![];
    for (name, mode, data) in files {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

async fn build_image() -> std::io::Result<()> {
    let busybox = std::fs::read("/usr/bin/busybox")?;
    let dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";
    let context = tar(&[
        ("Dockerfile", 0o644, dockerfile),
        ("busybox", 0o755, &busybox),
    ]);
    let (status, body) = docker(
        "POST",
        &format!("/build?t={IMAGE}&rm=1&forcerm=1"),
        "application/x-tar",
        context,
    )
    .await?;
    let text = String::from_utf8_lossy(&body);
    if status != 200 || text.contains("\"error\"") {
        return Err(std::io::Error::other(format!(
            "image build failed ({status}): {text}"
        )));
    }
    Ok(())
}

async fn remove_containers(owner: &str) {
    let filters = format!("{{\"label\":[\"{}={owner}\"]}}", labels::EXECUTOR_ID);
    let path = format!("/containers/json?all=1&filters={}", urlencode(&filters));
    let Ok((_, body)) = docker("GET", &path, "application/json", vec![]).await else {
        return;
    };
    let list: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
    for c in list {
        if let Some(id) = c["Id"].as_str() {
            let _ = docker(
                "DELETE",
                &format!("/containers/{id}?force=1"),
                "application/json",
                vec![],
            )
            .await;
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Builds the example (a no-op when the test run already built it) and returns its path.
fn build_example() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "-p",
        "hoist",
        "--example",
        "mesos-executor",
        "--all-features",
    ];
    hoist_core::testing::cargo_build(crate_dir, &args, "examples/mesos-executor").unwrap()
}

fn docker_task(id: &str, shell: &str) -> TaskInfoFields {
    let mut info = TaskInfoFields::new(id, "agent-1");
    info.container = Some(ContainerInfo {
        kind: ContainerType::Docker,
        volumes: vec![],
        hostname: None,
        docker: Some(DockerInfo {
            image: IMAGE.into(),
            network: Some(DockerNetwork::None),
            port_mappings: vec![],
            privileged: None,
            parameters: vec![],
            force_pull_image: None,
        }),
        mesos: None,
        network_infos: vec![],
    });
    info.command = Some(CommandInfo::shell(shell));
    info
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_docker_tasks_for_the_simulated_agent() {
    let reachable = docker("GET", "/_ping", "text/plain", vec![])
        .await
        .is_ok_and(|(s, _)| s == 200);
    if !reachable {
        assert!(
            std::env::var("HOIST_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "the Docker Engine is unreachable"
        );
        eprintln!("note: no Docker Engine at {SOCKET}; skipping the end-to-end run");
        return;
    }
    build_image().await.unwrap();
    let binary = build_example();
    let agent = AgentSimulator::start(SimulatorOptions::default())
        .await
        .unwrap();
    let env = agent.env();
    let owner = format!("mesos-e2e-{}", std::process::id());
    let mut child = tokio::process::Command::new(&binary)
        .arg(format!("--container={owner}"))
        .arg("--docker=/usr/bin/docker")
        .arg("--stop_timeout=2secs")
        .env("MESOS_FRAMEWORK_ID", &env.framework_id.value)
        .env("MESOS_EXECUTOR_ID", &env.executor_id.value)
        .env("MESOS_AGENT_ENDPOINT", &env.agent_endpoint)
        .env("MESOS_CHECKPOINT", "1")
        .env("MESOS_SUBSCRIPTION_BACKOFF_MAX", "200ms")
        .env("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "10secs")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let result = async {
        agent.wait_for("a SUBSCRIBE", WAIT, |s| s.connected).await?;

        let mut web = docker_task("web", "sleep 300");
        web.health_check = Some(HealthCheckInfo {
            kind: Some(HealthCheckType::Command),
            delay_seconds: Some(0.0),
            interval_seconds: Some(0.5),
            timeout_seconds: Some(10.0),
            consecutive_failures: None,
            grace_period_seconds: Some(5.0),
            command: Some(CommandInfo::shell("test -x /bin/busybox")),
            http: None,
            tcp: None,
        });
        agent.launch(TaskInfo::from_fields(&web));
        agent.launch(TaskInfo::from_fields(&docker_task("job", "echo done")));
        agent.launch(TaskInfo::from_fields(&docker_task("oops", "exit 3")));
        agent
            .wait_for("web healthy", WAIT, |s| {
                s.distinct("web").iter().any(|u| u.healthy == Some(true))
            })
            .await?;
        agent
            .wait_for("job finished", WAIT, |s| {
                s.states("job").contains(&TaskState::Finished)
            })
            .await?;
        agent
            .wait_for("oops failed", WAIT, |s| {
                s.states("oops").contains(&TaskState::Failed)
            })
            .await?;
        agent.kill("web", None);
        agent
            .wait_for("web killed", WAIT, |s| {
                s.states("web").contains(&TaskState::Killed)
            })
            .await?;
        agent.shutdown();
        Ok::<(), hoist_core::Error>(())
    }
    .await;
    let exit = tokio::time::timeout(WAIT, child.wait()).await;
    remove_containers(&owner).await;
    // Nothing the test made stays behind: its containers, then its image.
    let (status, _) = docker(
        "DELETE",
        &format!("/images/{IMAGE}?force=1"),
        "application/json",
        vec![],
    )
    .await
    .unwrap();
    assert!(
        matches!(status, 200 | 404),
        "removing {IMAGE} answered {status}"
    );
    result.unwrap();
    let status = exit.expect("the executor exits after SHUTDOWN").unwrap();
    assert!(status.success(), "exit status {status}");
    let s = agent.snapshot();
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    assert_eq!(
        s.states("job"),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    assert_eq!(s.states("oops").last(), Some(&TaskState::Failed));
    assert!(
        s.terminal("oops")[0]
            .message
            .as_ref()
            .unwrap()
            .contains('3'),
        "{:?}",
        s.terminal("oops")
    );
    for task in ["web", "job", "oops"] {
        assert_eq!(s.terminal(task).len(), 1, "{task}: {:?}", s.states(task));
    }
}
