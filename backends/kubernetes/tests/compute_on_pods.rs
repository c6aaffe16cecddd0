//! LocalStack's EC2- and ECS-style executors on pods: hoist-compute's managers driving the
//! Kubernetes backend against the fake API server.

use std::sync::Arc;
use std::time::Duration;

use hoist_compute::instances::{InstanceManager, InstanceState};
use hoist_compute::tasks::{InMemoryTargetGroup, TaskRunner};
use hoist_core::{ContainerSpec, Containerizer, PortMapping};
use hoist_kube::testing::{FakeApiServer, PodScript};
use hoist_kube::{KubeConfig, KubeContainerizer};

fn backend(server: &FakeApiServer) -> Arc<dyn Containerizer> {
    Arc::new(KubeContainerizer::new(
        server.client(),
        KubeConfig {
            default_image: Some("example/app:1".into()),
            ..KubeConfig::default()
        },
    ))
}

#[tokio::test]
async fn instances_are_backed_by_pods() {
    let server = FakeApiServer::start().await.unwrap();
    let instances = InstanceManager::new(backend(&server), "ec2");
    let id = instances
        .run(ContainerSpec::command(["/sbin/init"]))
        .await
        .unwrap();
    assert_eq!(server.pods().len(), 1);
    let first_pod = server.pods()[0].metadata.name.clone();

    instances.stop(&id, Duration::from_secs(5)).await.unwrap();
    assert!(server.pods().is_empty(), "a stopped instance has no pod");
    let described = instances.describe_one(&id).await.unwrap();
    assert_eq!(described.state, InstanceState::Stopped);
    assert_eq!(described.last_exit.and_then(|e| e.signal), Some(15));

    instances.start(&id).await.unwrap();
    let pods = server.pods();
    assert_eq!(pods.len(), 1);
    assert_ne!(
        pods[0].metadata.name, first_pod,
        "a restarted instance runs in a new pod"
    );
    assert_eq!(
        instances.describe_one(&id).await.unwrap().state,
        InstanceState::Running
    );

    instances
        .terminate(&id, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(server.pods().is_empty());
    assert!(instances.describe().await.unwrap().is_empty());
}

#[tokio::test]
async fn ecs_tasks_register_pod_addresses() {
    let server = FakeApiServer::start().await.unwrap();
    let group = Arc::new(InMemoryTargetGroup::default());
    let tasks = TaskRunner::new(backend(&server), "ecs", group.clone());
    let mut spec = ContainerSpec::command(["/srv/web"]);
    spec.ports.push(PortMapping::tcp(8080, None));
    // The pod is scheduled (and gets its IP) a while after it is created: run waits for it.
    let scheduling = PodScript {
        start_after: Some(Duration::from_millis(300)),
        ..PodScript::default()
    };
    server.script("task-", scheduling);
    let task = tasks.run(spec).await.unwrap();
    let targets = group.targets();
    assert_eq!(targets.len(), 1);
    let pod = &server.pods()[0];
    let pod_ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_eq!(targets[0].address.to_string(), pod_ip);
    assert_eq!(targets[0].port, 8080);
    tasks.stop(&task, Duration::from_secs(5)).await.unwrap();
    assert!(group.targets().is_empty());
    assert!(server.pods().is_empty());
}
