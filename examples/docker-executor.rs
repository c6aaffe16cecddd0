//! Runs one task in a Docker container and prints its statuses.
//!
//! ```text
//! cargo run --example docker-executor --features docker -- busybox:1.36 sh -c 'echo hi; sleep 2'
//! ```
//!
//! The Engine is found the way the Docker CLI finds it (`DOCKER_HOST`, else the local socket).
//! The container is removed once the task has ended.

use std::sync::Arc;

use hoist::docker::{DockerConfig, DockerContainerizer};
use hoist::{ContainerSpec, Containerizer, Executor, TaskSpec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut args = std::env::args().skip(1);
    let Some(image) = args.next() else {
        eprintln!("usage: docker-executor IMAGE [COMMAND...]");
        std::process::exit(2);
    };
    let mut container = ContainerSpec::command(args.collect::<Vec<_>>());
    container.image = Some(image);

    let docker = Arc::new(DockerContainerizer::connect(DockerConfig::from_env()).await?);
    println!(
        "connected to the Docker Engine (API {})",
        docker.api_version()
    );
    let executor = Executor::builder(docker.clone())
        .executor_id("docker-example")
        .build()?;
    let mut statuses = executor.statuses();
    executor.launch(TaskSpec::new("example", container))?;

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut container_id = None;
    let mut killing = false;
    loop {
        tokio::select! {
            status = statuses.recv() => {
                let Some(status) = status else { break };
                println!("{status}");
                container_id = status.container_id.clone().or(container_id);
                if status.state.is_terminal() {
                    break;
                }
            }
            // Once: the future is done after the first Ctrl-C.
            _ = &mut ctrl_c, if !killing => {
                killing = true;
                executor.kill(&"example".into(), None)?;
            }
        }
    }
    if let Some(id) = container_id {
        docker.remove(&id, true).await?;
    }
    Ok(())
}
