//! Pods launched per second through the Kubernetes backend against the fake API server, next to
//! raw kube `Api::create` calls against the same server in the same run (the baseline).
//!
//! `cargo bench -p hoist-kube --features testing --bench pods` prints a markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hoist_core::{ContainerSpec, Containerizer, ExecutorId, Owner, TaskId};
use hoist_kube::testing::{FakeApiServer, PodScript};
use hoist_kube::{KubeConfig, KubeContainerizer};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, PostParams};

const PODS: usize = 400;
const ROUNDS: usize = 3;

fn raw_pod(i: usize) -> Pod {
    let mut pod = Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox:1.37".into()),
                command: Some(vec!["/srv/app".into()]),
                ..Container::default()
            }],
            restart_policy: Some("Never".into()),
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pod.metadata.name = Some(format!("raw-{i}"));
    pod
}

async fn server() -> FakeApiServer {
    let server = FakeApiServer::start().await.expect("fake API server");
    // Pods stay pending: the fake does no work after create in either path.
    server.default_script(|_| PodScript::default().pending());
    server
}

async fn through_backend(concurrency: usize) -> Duration {
    let server = server().await;
    let pods = Arc::new(KubeContainerizer::new(
        server.client(),
        KubeConfig {
            default_image: Some("busybox:1.37".into()),
            ..KubeConfig::default()
        },
    ));
    let spec = ContainerSpec::command(["/srv/app"]);
    let started = Instant::now();
    futures::stream::iter(0..PODS)
        .for_each_concurrent(concurrency, |i| {
            let pods = pods.clone();
            let spec = spec.clone();
            async move {
                let owner = Owner {
                    executor_id: ExecutorId::new("bench"),
                    task_id: TaskId::new(format!("task-{i}")),
                };
                let id = pods.create(&owner, &spec).await.expect("create");
                pods.start(&id).await.expect("start");
            }
        })
        .await;
    let elapsed = started.elapsed();
    assert_eq!(server.pods().len(), PODS);
    elapsed
}

async fn raw_create(concurrency: usize) -> Duration {
    let server = server().await;
    let api: Api<Pod> = Api::default_namespaced(server.client());
    let started = Instant::now();
    futures::stream::iter(0..PODS)
        .for_each_concurrent(concurrency, |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &raw_pod(i))
                    .await
                    .expect("create");
            }
        })
        .await;
    let elapsed = started.elapsed();
    assert_eq!(server.pods().len(), PODS);
    elapsed
}

fn best(runs: &[Duration]) -> Duration {
    runs.iter().copied().min().unwrap_or_default()
}

#[tokio::main]
async fn main() {
    println!("{PODS} pods per round, best of {ROUNDS} rounds, fake API server on loopback\n");
    println!(
        "| concurrency | raw `Api::create` (pods/s) | `KubeContainerizer` create + start (pods/s) | backend / raw |"
    );
    println!("|---|---|---|---|");
    for concurrency in [1, 16] {
        let mut raw = Vec::new();
        let mut backend = Vec::new();
        for _ in 0..ROUNDS {
            raw.push(raw_create(concurrency).await);
            backend.push(through_backend(concurrency).await);
        }
        let rate = |d: Duration| PODS as f64 / d.as_secs_f64();
        let (raw, backend) = (rate(best(&raw)), rate(best(&backend)));
        println!(
            "| {concurrency} | {raw:.0} | {backend:.0} | {:.2} |",
            backend / raw
        );
    }
}
