//! What every Docker test shares: a connection, a busybox image built for this test process,
//! and a teardown that removes (and then checks for) every container and image the test made.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use hoist_core::{ContainerSpec, ExecutorId};
use hoist_docker::DockerContainerizer;
use hoist_docker::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, RemoveContainerOptionsBuilder,
};
use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};

/// The image label that marks images built by these tests.
pub const RUN_LABEL: &str = "io.hoist-test.run";

/// One test's Docker: the containerizer, its image and a unique name for what it creates.
pub struct Harness {
    pub docker: Arc<DockerContainerizer>,
    pub image: String,
    pub run: String,
    counter: AtomicU32,
}

impl Harness {
    /// A fresh executor id for this test.
    pub fn executor(&self, name: &str) -> ExecutorId {
        ExecutorId::new(format!(
            "{}-{name}-{}",
            self.run,
            self.counter.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// A spec running `script` with the test image's shell.
    pub fn shell(&self, script: &str) -> ContainerSpec {
        let mut spec = ContainerSpec::command(["/bin/sh", "-c", script]);
        spec.image = Some(self.image.clone());
        spec
    }

    /// A unique name for something the test creates (a network).
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.run)
    }
}

/// Connects to the Engine, or says why not: `None` (the test returns early) unless
/// `HOIST_REQUIRE_DOCKER=1`, which makes an unreachable Engine a failure.
pub async fn connect() -> Option<DockerContainerizer> {
    hoist_docker::testing::engine_for_test("a Docker test").await
}

/// Runs `test` with a fresh harness, then removes every container made from the test's image
/// and the image itself, and fails if anything is left.
pub async fn with_docker<F, Fut>(test: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(docker) = connect().await else {
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run = format!(
        "hoist-test-{}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff
    );
    let image = format!("hoist-test-busybox:{}", &run["hoist-test-".len()..]);
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &image,
        &[(RUN_LABEL, &run), ("io.hoist-test.unique", &run)],
        Duration::from_secs(120),
    )
    .await
    .expect("building the busybox test image");
    let harness = Arc::new(Harness {
        docker: Arc::new(docker),
        image,
        run,
        counter: AtomicU32::new(0),
    });
    let outcome = AssertUnwindSafe(test(harness.clone())).catch_unwind().await;
    let leftovers = teardown(&harness).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    if let Err(what) = leftovers {
        panic!("the test left things behind: {what}");
    }
}

/// Removes the test's containers and image; `Err` names what could not be removed.
async fn teardown(h: &Harness) -> Result<(), String> {
    let client = h.docker.client();
    let mut filters = HashMap::new();
    filters.insert("ancestor", vec![h.image.clone()]);
    let list = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = client
        .list_containers(Some(list.clone()))
        .await
        .map_err(|e| e.to_string())?;
    for container in containers {
        if let Some(id) = container.id {
            let options = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            let _ = client.remove_container(&id, Some(options)).await;
        }
    }
    let left = client
        .list_containers(Some(list))
        .await
        .map_err(|e| e.to_string())?;
    remove_image(client, &h.image)
        .await
        .map_err(|e| e.to_string())?;
    let mut image_filters = HashMap::new();
    image_filters.insert("label", vec![format!("{RUN_LABEL}={}", h.run)]);
    let images = client
        .list_images(Some(
            ListImagesOptionsBuilder::new()
                .all(true)
                .filters(&image_filters)
                .build(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    if !left.is_empty() {
        problems.push(format!("{} containers", left.len()));
    }
    if !images.is_empty() {
        problems.push(format!("{} images", images.len()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// Waits (up to 20 s) until the container's logs show `marker`.
pub async fn wait_for_output(h: &Harness, id: &hoist_core::ContainerId, marker: &str) {
    use futures::StreamExt;
    use hoist_core::Containerizer;
    let poll = async {
        loop {
            let mut chunks = h
                .docker
                .logs(id, hoist_core::LogOptions::default())
                .await
                .unwrap();
            let mut out = Vec::new();
            while let Some(chunk) = chunks.next().await {
                out.extend_from_slice(&chunk.unwrap().data);
            }
            if String::from_utf8_lossy(&out).contains(marker) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), poll)
        .await
        .expect("the container printed its marker");
}
