//! Pod profiles (LocalStack's `LOCALSTACK_K8S_POD_CONFIG`) and the other `LOCALSTACK_K8S_*`
//! variables, against the fake API server: every field reaches the pod the server holds, the
//! profile is chosen by service then architecture then default, hoist's own labels win, and bad
//! documents are refused before any pod is made.

use std::collections::BTreeMap;

use hoist_core::{ContainerSpec, Containerizer, ErrorKind, ExecutorId, Owner, TaskId};
use hoist_kube::testing::FakeApiServer;
use hoist_kube::{BuildStep, KubeConfig, KubeContainerizer};
use k8s_openapi::api::core::v1::Pod;

const SERVICE: &str = hoist_core::labels::SERVICE;
const ARCHITECTURE: &str = hoist_core::labels::ARCHITECTURE;

fn owner(task: &str) -> Owner {
    Owner {
        executor_id: ExecutorId::new("hoist-ec2"),
        task_id: TaskId::new(task),
    }
}

/// A spec of `service` (and `architecture`, if given) with its own resources and a label.
fn spec(service: Option<&str>, architecture: Option<&str>) -> ContainerSpec {
    let mut spec = ContainerSpec::command(["sleep", "1000"]);
    spec.image = Some("busybox:1.37".into());
    spec.resources.cpus = Some(2.0);
    spec.resources.memory = Some(1 << 30);
    spec.labels.insert("team".into(), "spec".into());
    if let Some(service) = service {
        spec.labels.insert(SERVICE.into(), service.into());
    }
    if let Some(architecture) = architecture {
        spec.labels.insert(ARCHITECTURE.into(), architecture.into());
    }
    spec
}

/// Creates and starts a pod for `spec` with `steps`; returns it as the server holds it.
async fn pod_of(
    server: &FakeApiServer,
    pods: &KubeContainerizer,
    task: &str,
    spec: &ContainerSpec,
    steps: &[BuildStep],
) -> Pod {
    let id = pods
        .create_with_build(&owner(task), spec, steps)
        .await
        .unwrap();
    pods.start(&id).await.unwrap();
    server.pod(id.as_str()).unwrap()
}

const FULL: &str = r#"{
    "profiles": {
        "full": {
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "hoist", "effect": "NoSchedule"}],
            "nodeSelector": {"pool": "ec2"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}],
            "priorityClassName": "batch-high",
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "labels": {"team": "profile", "cost-centre": "42"},
            "annotations": {"prometheus.io/scrape": "true", "note": "profile"}
        }
    },
    "services": {"ec2": {"profile": "full"}}
}"#;

#[tokio::test]
async fn every_profile_field_and_variable_reaches_the_pod() {
    let server = FakeApiServer::start().await.unwrap();
    let config = KubeConfig::from_vars([
        ("LOCALSTACK_K8S_POD_CONFIG", FULL),
        ("LOCALSTACK_K8S_NAMESPACE", "workloads"),
        ("LOCALSTACK_K8S_LABELS", "team=config,env=dev"),
        ("LOCALSTACK_K8S_ANNOTATIONS", "note=config,owner=platform"),
        (
            "K8S_CONTAINER_SECURITY_CONTEXT",
            r#"{"runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}"#,
        ),
    ])
    .unwrap();
    let pods = KubeContainerizer::new(server.client(), config);
    let step = BuildStep {
        name: "install".into(),
        image: "busybox:1.37".into(),
        command: vec!["true".into()],
        env: BTreeMap::new(),
    };
    let pod = pod_of(
        &server,
        &pods,
        "i-0123",
        &spec(Some("ec2"), Some("amd64")),
        &[step],
    )
    .await;

    assert_eq!(pod.metadata.namespace.as_deref(), Some("workloads"));
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["team"], "profile",
        "the profile's labels over the config's and the spec's"
    );
    assert_eq!(labels["cost-centre"], "42");
    assert_eq!(labels["env"], "dev", "LOCALSTACK_K8S_LABELS");
    assert_eq!(labels[SERVICE], "ec2");
    let annotations = pod.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["note"], "profile",
        "the profile's over LOCALSTACK_K8S_ANNOTATIONS"
    );
    assert_eq!(
        annotations["owner"], "platform",
        "LOCALSTACK_K8S_ANNOTATIONS"
    );
    assert_eq!(annotations[hoist_core::labels::TASK_ID], "i-0123");

    let spec = pod.spec.unwrap();
    let toleration = &spec.tolerations.unwrap()[0];
    assert_eq!(
        (
            toleration.key.as_deref(),
            toleration.operator.as_deref(),
            toleration.value.as_deref(),
            toleration.effect.as_deref()
        ),
        (
            Some("dedicated"),
            Some("Equal"),
            Some("hoist"),
            Some("NoSchedule")
        )
    );
    assert_eq!(spec.node_selector.unwrap()["pool"], "ec2");
    let required = spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap();
    let expression = &required.node_selector_terms[0]
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(expression.key, "kubernetes.io/arch");
    assert_eq!(
        expression.values.as_deref(),
        Some(&["amd64".to_owned()][..])
    );
    let spread = &spec.topology_spread_constraints.unwrap()[0];
    assert_eq!(spread.max_skew, 1);
    assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
    assert_eq!(
        spread
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app"],
        "web"
    );
    assert_eq!(spec.priority_class_name.as_deref(), Some("batch-high"));

    // The profile's resources replace the spec's on the main container; the build step keeps
    // its own (none).
    let main = &spec.containers[0];
    let resources = main.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    let limits = resources.limits.as_ref().unwrap();
    assert_eq!(
        (requests["cpu"].0.as_str(), requests["memory"].0.as_str()),
        ("250m", "256Mi")
    );
    assert_eq!(
        (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
        ("1", "1Gi")
    );
    let init = &spec.init_containers.unwrap()[0];
    assert!(init.resources.is_none(), "{init:?}");

    // K8S_CONTAINER_SECURITY_CONTEXT on every container.
    for container in [main, init] {
        let context = container.security_context.as_ref().unwrap();
        assert_eq!(context.run_as_user, Some(1000), "{}", container.name);
        assert_eq!(context.run_as_non_root, Some(true));
        assert_eq!(context.allow_privilege_escalation, Some(false));
        assert_eq!(context.read_only_root_filesystem, Some(true));
    }
}

#[tokio::test]
async fn profiles_resolve_by_service_then_architecture_then_default() {
    let server = FakeApiServer::start().await.unwrap();
    let document = r#"{
        "profiles": {
            "default": {"priorityClassName": "default"},
            "defaultAmd64": {"priorityClassName": "default-amd64"},
            "defaultArm64": {"priorityClassName": "default-arm64"},
            "lambda-arm": {"priorityClassName": "lambda-arm"},
            "ecs-tasks": {"priorityClassName": "ecs-tasks"}
        },
        "services": {
            "lambda": {"arm64": "lambda-arm"},
            "ecs": {"profile": "ecs-tasks", "amd64": "lambda-arm"}
        }
    }"#;
    let config = KubeConfig::from_vars([("LOCALSTACK_K8S_POD_CONFIG", document)]).unwrap();
    let pods = KubeContainerizer::new(server.client(), config);
    for (i, (service, architecture, expected)) in [
        (Some("ecs"), Some("amd64"), Some("ecs-tasks")),
        (Some("ecs"), None, Some("ecs-tasks")),
        (Some("lambda"), Some("arm64"), Some("lambda-arm")),
        (Some("lambda"), Some("amd64"), Some("default-amd64")),
        (Some("ec2"), Some("arm64"), Some("default-arm64")),
        (Some("lambda"), None, Some("default")),
        (None, None, Some("default")),
        (Some("ec2"), Some("sparc"), Some("default")),
    ]
    .into_iter()
    .enumerate()
    {
        let pod = pod_of(
            &server,
            &pods,
            &format!("t{i}"),
            &spec(service, architecture),
            &[],
        )
        .await;
        assert_eq!(
            pod.spec.unwrap().priority_class_name.as_deref(),
            expected,
            "{service:?} {architecture:?}"
        );
    }

    // With no profile at all, the pod keeps the spec's resources and the backend's scheduling.
    let config = KubeConfig {
        node_selector: BTreeMap::from([("pool".into(), "config".into())]),
        ..KubeConfig::from_vars([(
            "LOCALSTACK_K8S_POD_CONFIG",
            r#"{"profiles": {"ecs-only": {"nodeSelector": {"pool": "ecs"}}}, "services": {"ecs": {"profile": "ecs-only"}}}"#,
        )])
        .unwrap()
    };
    let pods = KubeContainerizer::new(server.client(), config);
    let plain = pod_of(
        &server,
        &pods,
        "plain",
        &spec(Some("lambda"), Some("arm64")),
        &[],
    )
    .await;
    let plain = plain.spec.unwrap();
    assert_eq!(plain.node_selector.unwrap()["pool"], "config");
    assert!(plain.priority_class_name.is_none());
    let limits = plain.containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["cpu"].0, "2000m");
    assert_eq!(limits["memory"].0, (1u64 << 30).to_string());
    let ecs = pod_of(&server, &pods, "ecs", &spec(Some("ecs"), None), &[]).await;
    assert_eq!(ecs.spec.unwrap().node_selector.unwrap()["pool"], "ecs");
}

#[tokio::test]
async fn hoists_own_labels_and_annotations_win_over_the_profiles() {
    let server = FakeApiServer::start().await.unwrap();
    let document = r#"{"profiles": {"default": {
        "labels": {"io.hoist.task-id": "stolen", "io.hoist.service": "stolen",
                   "io.hoist.function": "stolen", "team": "profile"},
        "annotations": {"io.hoist.executor-id": "stolen"}
    }}}"#;
    let config = KubeConfig::from_vars([("LOCALSTACK_K8S_POD_CONFIG", document)]).unwrap();
    let pods = KubeContainerizer::new(server.client(), config);
    let mut lambda = spec(Some("lambda"), None);
    lambda
        .labels
        .insert(hoist_core::labels::FUNCTION.into(), "hello".into());
    let pod = pod_of(&server, &pods, "env-1", &lambda, &[]).await;
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels[hoist_core::labels::TASK_ID], "env-1");
    assert_eq!(labels[hoist_core::labels::EXECUTOR_ID], "hoist-ec2");
    assert_eq!(labels[SERVICE], "lambda");
    assert_eq!(labels[hoist_core::labels::FUNCTION], "hello");
    assert_eq!(labels["team"], "profile");
    let annotations = pod.metadata.annotations.unwrap();
    assert_eq!(annotations[hoist_core::labels::EXECUTOR_ID], "hoist-ec2");
    // The pod is still found as hoist's.
    let owned = pods.list_owned(&"hoist-ec2".into()).await.unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].owner.task_id.as_str(), "env-1");
}

#[tokio::test]
async fn bad_documents_fail_before_any_pod_naming_the_problem() {
    for (variable, value, named) in [
        (
            "LOCALSTACK_K8S_POD_CONFIG",
            r#"{"profiles": {"p": {"tolerations": [{"key": "k", "opertor": "Exists"}]}}, "servics": {}}"#,
            "`profiles.p.tolerations[0].opertor`, `servics`",
        ),
        (
            "LOCALSTACK_K8S_POD_CONFIG",
            r#"{"profiles": {"p": {}}, "services": {"lambda": {"arm64": "q"}}}"#,
            "`q` at `services.lambda.arm64`",
        ),
        (
            "K8S_CONTAINER_SECURITY_CONTEXT",
            r#"{"runAsUser": 1000, "privilegd": true}"#,
            "`privilegd`",
        ),
    ] {
        let err = KubeConfig::from_vars([(variable, value)]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("field"), Some(variable));
        assert!(err.to_string().contains(named), "{err}");
    }
}
