//! The kube-executor example, built and run as a process against the fake Kubernetes API
//! server: the task runs as a pod in the namespace and with the labels it was given, a copied
//! host directory reaches the pod through a ConfigMap the pod owns, and nothing is left.

#![cfg(all(feature = "kube", feature = "testing"))]

use std::path::Path;
use std::time::{Duration, Instant};

use hoist::kube::testing::FakeApiServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_a_task_as_a_pod_and_leaves_nothing() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "-p",
        "hoist",
        "--example",
        "kube-executor",
        "--all-features",
    ];
    let example = hoist::testing::cargo_build(workspace, &args, "examples/kube-executor").unwrap();

    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>hi</h1>\n").unwrap();

    // The fake plays the command as it reads: prints, runs for a second, exits 3.
    let child = tokio::process::Command::new(&example)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .args(["--namespace", "jobs", "--labels", "team=data", "--copy"])
        .arg(format!("{}:/srv/site", site.display()))
        .args(["busybox:1.37", "sh", "-c", "echo hello; sleep 1; exit 3"])
        .kill_on_drop(true)
        .output();
    let run = tokio::spawn(child);

    // While it runs: the pod, its labels and its copied files.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pod = loop {
        if let Some(pod) = server.pods().pop() {
            break pod;
        }
        assert!(Instant::now() < deadline, "no pod was created");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let name = pod.metadata.name.clone().unwrap();
    assert_eq!(pod.metadata.namespace.as_deref(), Some("jobs"));
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["team"], "data");
    let volume = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    let copied = volume.config_map.as_ref().expect("the site is copied");
    // The ConfigMap follows the pod (it names the pod's uid as its owner).
    let map = loop {
        if let Some(map) = server.config_map(&copied.name) {
            break map;
        }
        assert!(Instant::now() < deadline, "the site's ConfigMap never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(map.binary_data.unwrap()["f0"].0, b"<h1>hi</h1>\n");

    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the example ends")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("example running"), "{stdout}");
    assert!(stdout.contains("example failed"), "{stdout}");
    assert!(stdout.contains("exited with code 3"), "{stdout}");
    assert!(
        stdout.contains("hello"),
        "the pod's log is printed: {stdout}"
    );
    assert!(server.pod(&name).is_none(), "the pod is left");
    assert!(server.config_maps().is_empty(), "its ConfigMap is left");
}
