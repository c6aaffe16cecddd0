//! Cold start of a container, in one run: the sandbox backend (create + start until the
//! container's process has written its first line), the process backend (the same, as a plain
//! process) and the Docker Engine (create + start of the same busybox image through its API,
//! which answers the start once the process runs). p50 and p95 of each.
//!
//! `cargo bench -p hoist-sandbox --bench coldstart` as root (set `HOIST_BENCH_RUNS` for more
//! runs than 40). Docker is left out when its socket does not answer.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use hoist_core::{ContainerSpec, Containerizer, Owner};
use hoist_process::ProcessContainerizer;
use hoist_sandbox::SandboxContainerizer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCRIPT: &str = "echo up; exec sleep 1000";
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// create + start, then until `stdout.log` in the container's folder under `dir` has a line;
/// and the part of it that `create` took.
async fn cold_start(
    c: &dyn Containerizer,
    dir: &Path,
    spec: &ContainerSpec,
) -> (Duration, Duration) {
    let owner = Owner {
        executor_id: "bench".into(),
        task_id: "cold".into(),
    };
    let started = Instant::now();
    let id = c.create(&owner, spec).await.unwrap();
    let created = started.elapsed();
    c.start(&id).await.unwrap();
    let log = dir.join(id.as_str()).join("stdout.log");
    while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no output from {id}"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let took = started.elapsed();
    c.remove(&id, true).await.unwrap();
    (took, created)
}

/// One HTTP/1.1 request to the Docker Engine's socket: the status and the body.
async fn docker(method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::UnixStream::connect(DOCKER_SOCKET)
        .await
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Builds the busybox root as a local image; its tag.
fn docker_image(rootfs: &Path) -> String {
    let tag = "hoist-bench-busybox:latest".to_owned();
    common::docker_build(rootfs.parent().unwrap(), &tag, "");
    tag
}

async fn docker_cold_start(image: &str) -> Duration {
    let body = serde_json::json!({
        "Image": image,
        "Cmd": ["/bin/sh", "-c", SCRIPT],
        "HostConfig": {"NetworkMode": "host", "Init": true},
    })
    .to_string();
    let started = Instant::now();
    let (status, created) = docker("POST", "/containers/create", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created.split("\"Id\":\"").nth(1).unwrap()[..64].to_owned();
    let (status, text) = docker("POST", &format!("/containers/{id}/start"), "").await;
    assert_eq!(status, 204, "{text}");
    let took = started.elapsed();
    docker("DELETE", &format!("/containers/{id}?force=1"), "").await;
    took
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let (p50, p95) = (percentile(&samples, 0.5), percentile(&samples, 0.95));
    println!(
        "{name:<28} p50 {:>8.2} ms   p95 {:>8.2} ms",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3
    );
    p50
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("HOIST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let images = tempfile::tempdir().unwrap();
    let rootfs = common::busybox_rootfs(images.path());
    let state = tempfile::tempdir().unwrap();
    let sandbox = SandboxContainerizer::new(state.path().join("sandbox")).unwrap();
    let processes = ProcessContainerizer::new(state.path().join("process")).unwrap();
    let mut sandboxed = ContainerSpec::command(["/bin/sh", "-c", SCRIPT]);
    sandboxed.image = Some(rootfs.display().to_string());
    let plain = ContainerSpec::command(["/bin/sh", "-c", SCRIPT]);
    let docker_up = tokio::net::UnixStream::connect(DOCKER_SOCKET).await.is_ok();
    let image = docker_up.then(|| docker_image(&rootfs));

    let (mut s, mut p, mut d) = (Vec::new(), Vec::new(), Vec::new());
    let mut s_create = Vec::new();
    // Warm-up rounds, then the measured ones, interleaved so load hits all three alike.
    for round in 0..runs + 3 {
        let a = cold_start(&sandbox, sandbox.containers_dir(), &sandboxed).await;
        let b = cold_start(&processes, processes.state_dir(), &plain).await;
        let c = match &image {
            Some(image) => Some(docker_cold_start(image).await),
            None => None,
        };
        if round >= 3 {
            s.push(a.0);
            s_create.push(a.1);
            p.push(b.0);
            d.extend(c);
        }
    }
    println!("cold start, {runs} runs each (create + start until the process runs)");
    let sandbox_p50 = report("sandbox (runc)", s);
    report("  of which sandbox create", s_create);
    report("process", p);
    if d.is_empty() {
        println!("docker: skipped, {DOCKER_SOCKET} does not answer");
    } else {
        let docker_p50 = report("docker engine (create+start)", d);
        println!(
            "sandbox / docker at p50: {:.2}",
            sandbox_p50.as_secs_f64() / docker_p50.as_secs_f64()
        );
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", "hoist-bench-busybox:latest"])
            .output();
    }
}
