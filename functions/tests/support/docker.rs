//! The Docker side of the tests: the engine (or a skip note), a `FROM scratch` busybox image
//! built by the test, the host's libraries to mount, and checks that no container is left.

use std::path::Path;
use std::time::Duration;

use hoist_core::Volume;
use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};
use hoist_docker::{DockerConfig, DockerContainerizer};

/// The Docker Engine, or `None` (with a note) when it is unreachable, unless
/// `HOIST_REQUIRE_DOCKER=1`, which makes that a failure.
pub async fn engine(what: &str) -> Option<DockerContainerizer> {
    hoist_docker::testing::engine_for_test(what).await
}

/// Builds the busybox image `hoist-functions-test-<pid>-<name>:1` and returns its tag.
pub async fn busybox_image(docker: &DockerContainerizer, name: &str) -> String {
    let tag = format!("hoist-functions-test-{}-{name}:1", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &tag,
        &[("io.hoist-test.run", "functions")],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    tag
}

/// Removes the image `tag` (with a fresh connection: the executor's may be gone).
pub async fn remove_test_image(tag: &str) {
    let docker = DockerContainerizer::connect(DockerConfig::from_env())
        .await
        .unwrap();
    remove_image(docker.client(), tag).await.unwrap();
}

/// Read-only mounts of `paths` that exist on the host, at the same place.
pub fn host_mounts(paths: &[&Path]) -> Vec<Volume> {
    paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| Volume {
            host_path: p.to_path_buf(),
            container_path: p.to_path_buf(),
            read_only: true,
        })
        .collect()
}

/// The host's C libraries, for dynamically linked programs.
pub fn c_libraries() -> Vec<Volume> {
    host_mounts(&[
        Path::new("/lib/x86_64-linux-gnu"),
        Path::new("/lib64"),
        Path::new("/usr/lib/x86_64-linux-gnu"),
    ])
}

/// Runs the `docker` CLI and returns what it printed.
pub fn docker_cli(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills a container, as an outside event.
pub fn kill(container: &str) {
    docker_cli(&["kill", container]);
}

/// The containers (any state) of `function`.
pub fn containers_of(function: &str) -> Vec<String> {
    docker_cli(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label={}={function}", hoist_core::labels::FUNCTION),
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Waits up to 10 s for every container of `functions` to be removed.
pub async fn wait_until_gone(functions: &[&str]) {
    for _ in 0..100 {
        if functions.iter().all(|f| containers_of(f).is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "containers were left behind: {:?}",
        functions
            .iter()
            .map(|f| containers_of(f))
            .collect::<Vec<_>>()
    );
}
