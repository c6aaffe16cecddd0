//! ECS and ELBv2 on Docker, driven by boto3: a service of busybox httpd containers behind a
//! target group, one container killed with `docker kill` while no server runs, replaced after
//! the restart, the group following. Skipped (with a note) when the Docker Engine is
//! unreachable, unless HOIST_REQUIRE_DOCKER=1.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_service_on_docker_replaces_a_killed_container_and_its_target() {
    let Some(docker) = hoist_docker::testing::engine_for_test("the ECS service on Docker").await
    else {
        return;
    };
    let image = format!("hoist-aws-test-{}-busybox:1", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &image,
        &[("io.hoist-test.run", "aws")],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
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
