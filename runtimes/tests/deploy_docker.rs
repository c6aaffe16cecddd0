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
    let docker = hoist_docker::testing::engine_for_test("the Docker deploy test").await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_steps_write_the_work_directory_as_its_owner() {
    use hoist_core::catalog::{InMemoryCatalog, PhaseKind, Runtime, RuntimePhase};
    use hoist_core::{Owner, TaskId};
    use hoist_runtimes::function::{FunctionSpec, Source};
    use hoist_runtimes::plan::{BuildPlan, Target};

    // A work directory owned by someone other than the executor's user (root here), made
    // before the image, which a failure here would otherwise leave behind.
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(work.path(), Some(4321), Some(4322)).unwrap();
    let Some((host, tag)) = docker_host("owner").await else {
        return;
    };
    let phase = |phase, command: &str| RuntimePhase {
        phase,
        image: tag.clone(),
        command: Some(command.into()),
        env: Default::default(),
        secrets: vec![],
    };
    let catalog = InMemoryCatalog::new([Runtime {
        name: "sh1".into(),
        aliases: vec![],
        phases: vec![
            phase(
                PhaseKind::Installation,
                "touch installed && id -u > uid && id -g > gid",
            ),
            phase(PhaseKind::Runtime, "sleep 60"),
        ],
        deps_file: Some("deps.txt".into()),
        file_suffix: Some(".sh".into()),
        compiled: false,
        probe: None,
    }])
    .unwrap();
    let mut spec = FunctionSpec::new("owned", "sh1", "main.run", Source::text("true"));
    spec.deps = Some("a-package\n".into());

    let target = Target::docker(work.path());
    let plan = BuildPlan::new(&spec, &catalog).unwrap();
    let rendering = plan.render(&target, 8080).unwrap();
    let owner = Owner {
        executor_id: "runtimes-test".into(),
        task_id: TaskId::new("owned"),
    };
    let built = plan
        .build(
            host.backend.as_ref(),
            &owner,
            &target,
            &rendering,
            Duration::from_secs(60),
        )
        .await;
    let docker = DockerContainerizer::connect(DockerConfig::new())
        .await
        .unwrap();
    remove_image(docker.client(), &tag).await.unwrap();
    built.unwrap();

    use std::os::unix::fs::MetadataExt;
    let installed = std::fs::metadata(work.path().join("installed")).unwrap();
    assert_eq!((installed.uid(), installed.gid()), (4321, 4322));
    let read = |name: &str| std::fs::read_to_string(work.path().join(name)).unwrap();
    assert_eq!(read("uid").trim(), "4321");
    assert_eq!(read("gid").trim(), "4322");
}
