//! LocalStack's EC2- and ECS-style executors on the embedded process backend: an instance is
//! run, stopped, started again and terminated; two ECS-style tasks are registered with a
//! target group while they run and deregistered before they stop. Every step is printed.
//!
//! ```text
//! cargo run --example compute --features compute
//! ```
//!
//! The same managers take any backend: pass a Docker or Kubernetes containerizer instead.

use std::sync::Arc;
use std::time::Duration;

use hoist::compute::instances::InstanceManager;
use hoist::compute::tasks::{InMemoryTargetGroup, TaskRunner};
use hoist::process::ProcessContainerizer;
use hoist::{ContainerSpec, Containerizer, PortMapping};

const GRACE: Duration = Duration::from_secs(2);

/// Runs the whole demo on `backend`, calling `say` with each step.
async fn demo(backend: Arc<dyn Containerizer>, mut say: impl FnMut(String)) -> hoist::Result<()> {
    // EC2: run (define and start), stop (keep the definition), start, terminate (forget).
    let instances = InstanceManager::new(backend.clone(), "ec2-example");
    let id = instances
        .run(ContainerSpec::command(["sleep", "600"]))
        .await?;
    let describe = |d: &hoist::compute::instances::InstanceDescription| {
        let pid = d.container.as_ref().and_then(|c| c.pid);
        let pid = pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let last = d
            .last_exit
            .map_or_else(|| "-".to_owned(), |e| e.to_string());
        format!("{} {:?}, pid {pid}, last exit: {last}", d.id, d.state)
    };
    say(format!(
        "run       {}",
        describe(&instances.describe_one(&id).await?)
    ));
    instances.stop(&id, GRACE).await?;
    say(format!(
        "stop      {}",
        describe(&instances.describe_one(&id).await?)
    ));
    instances.start(&id).await?;
    let restarted = instances.describe_one(&id).await?;
    say(format!("start     {}", describe(&restarted)));
    instances.terminate(&id, GRACE).await?;
    say(format!(
        "terminate {id}: {} instances left",
        instances.describe().await?.len()
    ));

    // ECS: each running task's first port on its address is a target of the group.
    let group = Arc::new(InMemoryTargetGroup::default());
    let tasks = TaskRunner::new(backend, "ecs-example", group.clone());
    let mut ids = Vec::new();
    for port in [8080, 8081] {
        let mut spec = ContainerSpec::command(["sleep", "600"]);
        spec.ports.push(PortMapping::tcp(port, None));
        ids.push(tasks.run(spec).await?);
    }
    let targets = |group: &InMemoryTargetGroup| {
        let targets: Vec<_> = group
            .targets()
            .iter()
            .map(|t| format!("{}:{}", t.address, t.port))
            .collect();
        targets.join(", ")
    };
    say(format!("targets   [{}]", targets(&group)));
    for id in &ids {
        let exit = tasks.stop(id, GRACE).await?;
        say(format!(
            "stop      {id} ({exit}); targets [{}]",
            targets(&group)
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let backend = Arc::new(ProcessContainerizer::new(state.path())?);
    demo(backend, |line| println!("{line}")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_demo_runs_on_processes_and_leaves_nothing() {
        let state = tempfile::tempdir().unwrap();
        let backend = Arc::new(ProcessContainerizer::new(state.path()).unwrap());
        let mut lines = Vec::new();
        demo(backend.clone(), |line| lines.push(line))
            .await
            .unwrap();
        let text = lines.join("\n");
        assert!(lines[0].contains("Running, pid "), "{text}");
        assert!(lines[0].ends_with("last exit: -"), "{text}");
        assert!(
            lines[1].ends_with("Stopped, pid -, last exit: killed by signal 15"),
            "{text}"
        );
        assert!(lines[2].contains("Running, pid "), "{text}");
        assert!(
            lines[2].ends_with("last exit: killed by signal 15"),
            "{text}"
        );
        assert!(lines[3].ends_with(": 0 instances left"), "{text}");
        assert_eq!(lines[4], "targets   [127.0.0.1:8080, 127.0.0.1:8081]");
        assert!(lines[5].ends_with("targets [127.0.0.1:8081]"), "{text}");
        assert!(lines[6].ends_with("targets []"), "{text}");
        for executor in ["ec2-example", "ecs-example"] {
            let left = backend.list_owned(&executor.into()).await.unwrap();
            assert!(left.is_empty(), "{executor} left {left:?}");
        }
    }
}
