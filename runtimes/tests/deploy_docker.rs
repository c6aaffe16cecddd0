//! Every example function deployed on the Docker backend: init containers sharing the work
//! directory, then the runtime container; the host's interpreters are mounted read-only into
//! a local busybox image (no registry is reachable).

mod support;

use std::sync::Arc;
use std::time::Duration;

use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};
use hoist_docker::{DockerConfig, DockerContainerizer};
use support::deploy::{DockerHost, Host, run_examples};

async fn docker_host(language: &str) -> Option<(Host, String)> {
    let docker = match DockerContainerizer::connect(DockerConfig::new()).await {
        Ok(docker) => docker,
        Err(e) if std::env::var("HOIST_REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("HOIST_REQUIRE_DOCKER=1 but the Docker Engine is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("note: skipping the Docker deploy test, the Engine is unreachable: {e}");
            return None;
        }
    };
    let tag = format!("hoist-runtimes-test-{language}:{}", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &tag,
        &[],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    let host = Host {
        backend: Arc::new(docker),
        docker: Some(DockerHost { image: tag.clone() }),
    };
    Some((host, tag))
}

async fn run(language: &'static str, runtime: &'static str) {
    let Some((host, tag)) = docker_host(language).await else {
        return;
    };
    let outcome = tokio::spawn(async move {
        run_examples(&host, language, runtime).await;
        host
    })
    .await;
    let docker = DockerContainerizer::connect(DockerConfig::new())
        .await
        .unwrap();
    remove_image(docker.client(), &tag).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_examples_on_docker() {
    run("python", "python3.11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_examples_on_docker() {
    run("nodejs", "nodejs20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_examples_on_docker() {
    run("rust", "rust1").await;
}
