//! Pods launched per second through the Kubernetes backend against the fake API server, next to
//! raw kube `Api::create` calls against the same server in the same run (the baseline); then the
//! same with a 4 KiB code volume copied into a ConfigMap (`HostVolumes::Copy`), against raw
//! creates of the pod and of its ConfigMap.
//!
//! `cargo bench -p hoist-kube --features testing --bench pods` prints a markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hoist_core::{ContainerSpec, Containerizer, ExecutorId, Owner, TaskId, Volume};
use hoist_kube::testing::{FakeApiServer, PodScript};
use hoist_kube::{HostVolumes, KubeConfig, KubeContainerizer};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec};
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

/// A code directory of four 1 KiB files.
fn code_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("part{i}.py")), vec![b'#'; 1024]).expect("write");
    }
    dir
}

fn raw_config_map(i: usize) -> ConfigMap {
    let data = (0..4)
        .map(|n| (format!("f{n}"), ByteString(vec![b'#'; 1024])))
        .collect();
    let mut map = ConfigMap {
        binary_data: Some(data),
        immutable: Some(true),
        ..ConfigMap::default()
    };
    map.metadata.name = Some(format!("raw-{i}-volume-0"));
    map
}

async fn through_backend(concurrency: usize, code: Option<&std::path::Path>) -> Duration {
    let server = server().await;
    let pods = Arc::new(KubeContainerizer::new(
        server.client(),
        KubeConfig {
            default_image: Some("busybox:1.37".into()),
            host_volumes: HostVolumes::Copy,
            ..KubeConfig::default()
        },
    ));
    let mut spec = ContainerSpec::command(["/srv/app"]);
    if let Some(code) = code {
        spec.volumes.push(Volume {
            host_path: code.to_path_buf(),
            container_path: "/var/task".into(),
            read_only: true,
        });
    }
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
    assert_eq!(
        server.config_maps().len(),
        PODS * usize::from(code.is_some())
    );
    elapsed
}

async fn raw_create(concurrency: usize, with_config_map: bool) -> Duration {
    let server = server().await;
    let api: Api<Pod> = Api::default_namespaced(server.client());
    let maps: Api<ConfigMap> = Api::default_namespaced(server.client());
    let started = Instant::now();
    futures::stream::iter(0..PODS)
        .for_each_concurrent(concurrency, |i| {
            let (api, maps) = (api.clone(), maps.clone());
            async move {
                api.create(&PostParams::default(), &raw_pod(i))
                    .await
                    .expect("create");
                if with_config_map {
                    maps.create(&PostParams::default(), &raw_config_map(i))
                        .await
                        .expect("create configmap");
                }
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
    let code = code_dir();
    for copied in [None, Some(code.path())] {
        if copied.is_some() {
            println!("\nWith a 4 KiB code volume copied into a ConfigMap:\n");
            println!(
                "| concurrency | raw pod + ConfigMap creates (pods/s) | `KubeContainerizer` create + start (pods/s) | backend / raw |"
            );
            println!("|---|---|---|---|");
        }
        for concurrency in [1, 16] {
            let mut raw = Vec::new();
            let mut backend = Vec::new();
            for _ in 0..ROUNDS {
                raw.push(raw_create(concurrency, copied.is_some()).await);
                backend.push(through_backend(concurrency, copied).await);
            }
            let rate = |d: Duration| PODS as f64 / d.as_secs_f64();
            let (raw, backend) = (rate(best(&raw)), rate(best(&backend)));
            println!(
                "| {concurrency} | {raw:.0} | {backend:.0} | {:.2} |",
                backend / raw
            );
        }
    }
}
