//! EC2, ECS and ELBv2 on Docker, driven by boto3. EC2: two tagged instances of a busybox image,
//! described by filters, limited to their types' sizes (`HostConfig.NanoCpus`, `Memory`),
//! stopped, started again (a new container for the same id) and terminated, the server
//! restarted between steps. ECS: a service of busybox httpd containers behind a target group,
//! one container killed with `docker kill` while no server runs, replaced after the restart,
//! the group following. Skipped (with a note) when the Docker Engine is unreachable, unless
//! HOIST_REQUIRE_DOCKER=1.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hoist_aws::compute::ComputeConfig;
use hoist_core::Containerizer;
use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};
use hoist_docker::{DockerConfig, DockerContainerizer};
use support::{ComputeServer, python};

async fn start(state: &std::path::Path, image: &str) -> ComputeServer {
    let backend = Arc::new(
        DockerContainerizer::connect(DockerConfig::from_env())
            .await
            .unwrap(),
    );
    let config = ComputeConfig {
        image_mapping: BTreeMap::from([("ami-0b0b0b0b".to_owned(), image.to_owned())]),
        ..ComputeConfig::default()
    };
    ComputeServer::start(state, backend, config).await
}

/// Holds, until dropped, the lock that runs this file's tests one at a time: a starting server
/// removes every container of `hoist-ec2` and `hoist-ecs` its store does not name, so two
/// servers on one Docker Engine would remove each other's.
fn one_at_a_time() -> std::fs::File {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compute-docker.lock");
    let file = std::fs::File::create(path).unwrap();
    file.lock().unwrap();
    file
}

/// Builds the image `tag` of Debian's static busybox, labelled as this suite's.
async fn build_busybox(docker: &DockerContainerizer, tag: &str) {
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        tag,
        &[("io.hoist-test.run", "aws")],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_service_on_docker_replaces_a_killed_container_and_its_target() {
    let Some(docker) = hoist_docker::testing::engine_for_test("the ECS service on Docker").await
    else {
        return;
    };
    let _lock = one_at_a_time();
    let image = format!("hoist-aws-test-{}-busybox:1", std::process::id());
    build_busybox(&docker, &image).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &image).await;
    let seen = python(
        "compute_boto3.py",
        &server.endpoint,
        "docker-ecs-setup",
        &[&image],
    )
    .await;
    let tg = seen["tg"].as_str().unwrap().to_owned();
    let killed = seen["tasks"][0].as_str().unwrap().to_owned();
    server.stop().await;

    // While no server runs, one task's container is killed from outside.
    let id = killed.rsplit('/').next().unwrap();
    let owned = docker.list_owned(&"hoist-ecs".into()).await.unwrap();
    let container = owned
        .iter()
        .find(|c| c.owner.task_id.as_str() == format!("{id}/app"))
        .unwrap_or_else(|| panic!("no container for task {id} in {owned:?}"));
    let status = std::process::Command::new("docker")
        .args(["kill", container.id.as_str()])
        .status()
        .unwrap();
    assert!(status.success());

    let server = start(dir.path(), &image).await;
    python(
        "compute_boto3.py",
        &server.endpoint,
        "ecs-replaced",
        &[&tg, &killed],
    )
    .await;
    python("compute_boto3.py", &server.endpoint, "ecs-delete", &[&tg]).await;
    server.stop().await;
    let left = docker.list_owned(&"hoist-ecs".into()).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    remove_image(docker.client(), &image).await.unwrap();
}

/// Builds `tag` from the busybox image `base` with a command that runs until TERM, as an
/// instance's image does.
fn build_instance_image(base: &str, tag: &str) {
    use std::io::Write as _;
    let dockerfile = format!(
        "FROM {base}\nLABEL io.hoist-test.run=aws\n\
         CMD [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 1; done\"]\n"
    );
    let mut child = std::process::Command::new("docker")
        .args(["build", "--quiet", "--tag", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "docker build {tag}");
}

/// `docker inspect --format FORMAT container`, trimmed.
fn docker_inspect(container: &str, format: &str) -> String {
    let output = std::process::Command::new("docker")
        .args(["inspect", "--format", format, container])
        .output()
        .unwrap();
    assert!(output.status.success(), "docker inspect {container}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The running containers of `hoist-ec2`, by instance id.
async fn instance_containers(docker: &DockerContainerizer) -> BTreeMap<String, String> {
    docker
        .list_owned(&"hoist-ec2".into())
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.state == hoist_core::ContainerState::Running)
        .map(|c| {
            (
                c.owner.task_id.as_str().to_owned(),
                c.id.as_str().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_instances_on_docker_run_stop_start_and_terminate() {
    let Some(docker) = hoist_docker::testing::engine_for_test("EC2 on Docker").await else {
        return;
    };
    let _lock = one_at_a_time();
    let base = format!("hoist-aws-test-{}-ec2-busybox:1", std::process::id());
    let image = format!("hoist-aws-test-{}-ec2-instance:1", std::process::id());
    build_busybox(&docker, &base).await;
    build_instance_image(&base, &image);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &image).await;
    let seen = python(
        "compute_boto3.py",
        &server.endpoint,
        "docker-ec2-run",
        &["ami-0b0b0b0b"],
    )
    .await;
    let web = seen["web"].as_str().unwrap().to_owned();
    let db = seen["db"].as_str().unwrap().to_owned();
    let containers = instance_containers(&docker).await;
    assert_eq!(
        containers.keys().collect::<Vec<_>>(),
        {
            let mut both = vec![&web, &db];
            both.sort();
            both
        },
        "{containers:?}"
    );
    // t3.micro is 2 vCPUs and 1 GiB: the container's limits. The other instance's type
    // (m1.small, EC2's default) is 1 vCPU and 1.7 GiB.
    let limits = "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}";
    assert_eq!(
        docker_inspect(&containers[&web], limits),
        format!("2000000000 {}", 1u64 << 30)
    );
    assert_eq!(
        docker_inspect(&containers[&db], limits),
        format!("1000000000 {}", 1740u64 << 20)
    );
    assert_eq!(
        docker_inspect(&containers[&web], "{{.Config.Image}}"),
        image
    );
    let first = containers[&web].clone();

    // A restarted server finds both running.
    server.stop().await;
    let server = start(dir.path(), &image).await;
    python(
        "compute_boto3.py",
        &server.endpoint,
        "docker-ec2-stop",
        &[&web],
    )
    .await;
    let containers = instance_containers(&docker).await;
    assert_eq!(
        containers.keys().collect::<Vec<_>>(),
        [&db],
        "{containers:?}"
    );

    // Started again: the same instance id runs in a new container.
    python(
        "compute_boto3.py",
        &server.endpoint,
        "docker-ec2-start",
        &[&web],
    )
    .await;
    let containers = instance_containers(&docker).await;
    assert!(containers.contains_key(&web), "{containers:?}");
    assert_ne!(containers[&web], first);
    assert_eq!(
        docker_inspect(&containers[&web], "{{.State.Running}}"),
        "true"
    );

    python(
        "compute_boto3.py",
        &server.endpoint,
        "docker-ec2-terminate",
        &[&web, &db],
    )
    .await;
    server.stop().await;
    let left = docker.list_owned(&"hoist-ec2".into()).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    remove_image(docker.client(), &image).await.unwrap();
    remove_image(docker.client(), &base).await.unwrap();
}
