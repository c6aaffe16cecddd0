//! The docker-executor example, built and run as a process against the local Docker Engine with
//! a busybox image the test builds: the task's statuses are printed, its exit decides the
//! example's, and its container is removed.

#![cfg(all(feature = "docker", feature = "testing"))]

use std::path::Path;
use std::time::Duration;

use hoist::Containerizer;

use hoist::docker::testing::{
    DEBIAN_STATIC_BUSYBOX, build_busybox_image, engine_for_test, remove_image,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_a_task_in_a_container_and_removes_it() {
    let Some(docker) = engine_for_test("the docker-executor example").await else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "-p",
        "hoist",
        "--example",
        "docker-executor",
        "--all-features",
    ];
    let example =
        hoist::testing::cargo_build(workspace, &args, "examples/docker-executor").unwrap();
    let tag = format!("hoist-example-test-{}:1", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &tag,
        &[],
        Duration::from_secs(120),
    )
    .await
    .unwrap();

    let run = tokio::process::Command::new(&example)
        .env("RUST_LOG", "warn")
        .args([tag.as_str(), "sh", "-c", "echo hello from busybox; exit 0"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await;
    let leftover = docker.list_owned(&"docker-example".into()).await.unwrap();
    remove_image(docker.client(), &tag).await.unwrap();

    let output = output.expect("the example ends").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("connected to the Docker Engine"),
        "{stdout}"
    );
    assert!(stdout.contains("example running"), "{stdout}");
    assert!(stdout.contains("example finished"), "{stdout}");
    assert!(stdout.contains("exited with code 0"), "{stdout}");
    assert!(leftover.is_empty(), "the container is left: {leftover:?}");
}
