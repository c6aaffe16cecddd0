//! The Kubernetes backend against the fake API server: pod rendering, the lifecycle, waits that
//! survive watch expiry and reconnects, stop with grace, exec, logs and ownership.

use std::time::{Duration, Instant};

use futures::StreamExt;
use hoist_core::{
    ContainerId, ContainerSpec, ContainerState, Containerizer, ContainerizerExt, ErrorKind,
    ExecutorId, LogOptions, Owner, PortMapping, TaskId,
};
use hoist_kube::testing::{ExecReply, FakeApiServer, OnTerm, PodScript};
use hoist_kube::{Backoff, BuildStep, HostVolumes, KubeConfig, KubeContainerizer, parse_labels};

struct Fixture {
    server: FakeApiServer,
    pods: KubeContainerizer,
}

async fn fixture() -> Fixture {
    fixture_with(KubeConfig::default()).await
}

async fn fixture_with(config: KubeConfig) -> Fixture {
    let server = FakeApiServer::start().await.unwrap();
    let config = KubeConfig {
        default_image: Some("busybox:1.37".into()),
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        request_timeout: Duration::from_secs(5),
        stop_slack: Duration::from_secs(5),
        ..config
    };
    let pods = KubeContainerizer::new(server.client(), config);
    Fixture { server, pods }
}

fn owner(task: &str) -> Owner {
    Owner {
        executor_id: ExecutorId::new("exec-1"),
        task_id: TaskId::new(task),
    }
}

fn shell(line: &str) -> ContainerSpec {
    ContainerSpec::command(["sh", "-c", line])
}

async fn started(f: &Fixture, task: &str, spec: &ContainerSpec) -> ContainerId {
    let id = f.pods.create(&owner(task), spec).await.unwrap();
    f.pods.start(&id).await.unwrap();
    id
}

/// Waits for the container in a task of its own.
fn spawn_wait(
    f: &Fixture,
    id: &ContainerId,
) -> tokio::task::JoinHandle<hoist_core::Result<hoist_core::ExitStatus>> {
    let pods = f.pods.clone();
    let id = id.clone();
    tokio::spawn(async move { pods.wait(&id).await })
}

/// Polls the fake server until `check` holds for the pod, for at most five seconds.
async fn until(f: &Fixture, id: &ContainerId, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let phase = f
            .server
            .pod(id.as_str())
            .and_then(|p| p.status.and_then(|s| s.phase))
            .unwrap_or_default();
        if check(&phase) {
            return;
        }
        assert!(Instant::now() < deadline, "pod {id} stayed {phase}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn start_submits_the_rendered_pod() {
    let f = fixture_with(KubeConfig {
        namespace: "functions".into(),
        labels: parse_labels("team=data,tier=lambda").unwrap(),
        image_pull_secrets: vec!["regcred".into()],
        ..KubeConfig::default()
    })
    .await;
    let mut spec = ContainerSpec::command(["/srv/web"]);
    spec.image = Some("example/web:2".into());
    spec.ports.push(PortMapping::tcp(8080, None));
    spec.env.insert("MODE".into(), "test".into());
    let id = f.pods.create(&owner("web.1"), &spec).await.unwrap();
    assert!(
        f.server.pod(id.as_str()).is_none(),
        "create must not start the pod"
    );
    assert_eq!(
        f.pods.inspect(&id).await.unwrap().state,
        ContainerState::Created
    );
    f.pods.start(&id).await.unwrap();
    let pod = f.server.pod(id.as_str()).expect("start submits the pod");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("functions"));
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels["tier"], "lambda");
    assert_eq!(labels["io.hoist.task-id"], "web.1");
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.image_pull_secrets.unwrap()[0].name, "regcred");
    let main = &spec.containers[0];
    assert_eq!(main.image.as_deref(), Some("example/web:2"));
    assert_eq!(
        main.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    f.pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn wait_reports_exit_codes_and_oom_kills() {
    let f = fixture().await;
    let ok = started(&f, "ok", &shell("echo done; exit 0")).await;
    assert!(f.pods.wait(&ok).await.unwrap().success());
    let three = started(&f, "three", &shell("sleep 0.05; exit 3")).await;
    assert_eq!(f.pods.wait(&three).await.unwrap().code, Some(3));
    // A second wait on an exited pod returns at once with the same answer.
    assert_eq!(f.pods.wait(&three).await.unwrap().code, Some(3));
    let info = f.pods.inspect(&three).await.unwrap();
    assert_eq!(info.state, ContainerState::Exited);
    assert_eq!(info.details["phase"], "Failed");

    let hog = started(&f, "hog", &ContainerSpec::command(["/bin/hog"])).await;
    until(&f, &hog, |p| p == "Running").await;
    let waiting = spawn_wait(&f, &hog);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(f.server.oom_kill(hog.as_str()));
    let status = waiting.await.unwrap().unwrap();
    assert!(status.oom_killed, "{status}");
    assert_eq!(status.code, Some(137));
    for id in [ok, three, hog] {
        f.pods.remove(&id, false).await.unwrap();
    }
    assert!(f.server.pods().is_empty());
}

#[tokio::test]
async fn phases_driven_by_the_test_reach_inspect_and_wait() {
    let f = fixture().await;
    f.server.script("slow", PodScript::default().pending());
    let id = started(&f, "slow", &ContainerSpec::command(["/srv/app"])).await;
    assert!(
        f.server
            .set_waiting(id.as_str(), "ErrImagePull", "registry unreachable")
    );
    let info = f.pods.inspect(&id).await.unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.details["phase"], "Pending");
    assert!(info.addresses.is_empty());
    assert!(f.server.set_running(id.as_str()));
    let info = f.pods.inspect(&id).await.unwrap();
    assert_eq!(info.details["phase"], "Running");
    assert_eq!(info.addresses.len(), 1);
    assert_eq!(info.details["pod_ip"], info.addresses[0].to_string());
    assert!(f.server.exit(id.as_str(), 0));
    assert!(f.pods.wait(&id).await.unwrap().success());
    assert_eq!(
        f.pods.inspect(&id).await.unwrap().details["phase"],
        "Succeeded"
    );
    f.pods.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn wait_survives_watch_expiry_and_disconnects() {
    let f = fixture().await;
    let id = started(&f, "long", &ContainerSpec::command(["/srv/long"])).await;
    until(&f, &id, |p| p == "Running").await;
    let waiting = spawn_wait(&f, &id);
    let watches = |f: &Fixture| f.server.requests("watch");
    let before = loop {
        let n = watches(&f);
        if n > 0 {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Expire the watch: the open stream gets a 410 and the history is compacted away.
    f.server.expire_watches();
    while watches(&f) == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Drop the connection: the backend re-watches.
    f.server.disconnect_watches();
    while watches(&f) <= before + 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!waiting.is_finished());
    f.server.exit(id.as_str(), 7);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("wait returns after reconnecting")
        .unwrap()
        .unwrap();
    assert_eq!(status.code, Some(7));
    assert!(
        f.server.requests("get") >= 3,
        "each re-watch starts from a fresh read"
    );
    f.pods.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn stop_deletes_with_grace_and_remembers_the_end() {
    let f = fixture().await;
    let polite = started(&f, "polite", &ContainerSpec::command(["/srv/polite"])).await;
    until(&f, &polite, |p| p == "Running").await;
    let t = Instant::now();
    f.pods.stop(&polite, Duration::from_secs(10)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "TERM ends it at once");
    assert!(
        f.server.pod(polite.as_str()).is_none(),
        "stop deletes the pod"
    );
    let status = f.pods.wait(&polite).await.unwrap();
    assert_eq!(status.signal, Some(15), "{status}");
    assert_eq!(
        f.pods.inspect(&polite).await.unwrap().state,
        ContainerState::Exited
    );
    // Stop is idempotent, and remove forgets.
    f.pods.stop(&polite, Duration::from_secs(1)).await.unwrap();
    f.pods.remove(&polite, false).await.unwrap();
    f.pods.remove(&polite, false).await.unwrap();
    assert_eq!(
        f.pods.inspect(&polite).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    f.server
        .script("stubborn", PodScript::default().on_term(OnTerm::Ignore));
    let stubborn = started(&f, "stubborn", &ContainerSpec::command(["/srv/stubborn"])).await;
    until(&f, &stubborn, |p| p == "Running").await;
    let t = Instant::now();
    f.pods
        .stop(&stubborn, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "a TERM-ignoring pod lasts the grace"
    );
    assert_eq!(f.pods.wait(&stubborn).await.unwrap().signal, Some(9));
    f.pods.remove(&stubborn, true).await.unwrap();
    assert!(f.server.pods().is_empty());
}

#[tokio::test]
async fn a_command_trapping_term_is_killed_after_the_grace() {
    let f = fixture().await;
    let id = started(&f, "trap", &shell("trap '' TERM; sleep infinity")).await;
    until(&f, &id, |p| p == "Running").await;
    let pod = f.server.pod(id.as_str()).unwrap();
    assert!(pod.metadata.deletion_timestamp.is_none());
    let stopping = tokio::spawn({
        let pods = f.pods.clone();
        let id = id.clone();
        async move { pods.stop(&id, Duration::from_secs(1)).await }
    });
    // The pod is first marked for deletion with the grace, and is gone only after it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let terminating = loop {
        let pod = f
            .server
            .pod(id.as_str())
            .expect("still terminating within the grace");
        if pod.metadata.deletion_timestamp.is_some() {
            break pod;
        }
        assert!(
            Instant::now() < deadline,
            "the pod is never marked for deletion"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(1));
    stopping.await.unwrap().unwrap();
    assert_eq!(f.pods.wait(&id).await.unwrap().signal, Some(9));
    f.pods.remove(&id, false).await.unwrap();
}

#[tokio::test]
async fn remove_needs_force_for_running_pods_and_is_idempotent() {
    let f = fixture().await;
    let id = started(&f, "r", &ContainerSpec::command(["/srv/r"])).await;
    until(&f, &id, |p| p == "Running").await;
    let err = f.pods.remove(&id, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    f.pods.remove(&id, true).await.unwrap();
    assert!(f.server.pod(id.as_str()).is_none());
    f.pods.remove(&id, true).await.unwrap();
    let never_started = f.pods.create(&owner("n"), &shell("true")).await.unwrap();
    f.pods.remove(&never_started, false).await.unwrap();
    assert_eq!(f.server.requests("create"), 1);
}

#[tokio::test]
async fn wait_on_a_pod_deleted_outside_is_not_found() {
    let f = fixture().await;
    f.server.script("gone", PodScript::default().pending());
    let id = started(&f, "gone", &ContainerSpec::command(["/srv/x"])).await;
    let waiting = spawn_wait(&f, &id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::default_namespaced(f.server.client());
    api.delete(id.as_str(), &Default::default()).await.unwrap();
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn exec_runs_commands_through_the_websocket_protocol() {
    let f = fixture().await;
    f.server.script(
        "probe",
        PodScript::default().exec(|argv| match argv.first().map(String::as_str) {
            Some("check") => ExecReply {
                code: 0,
                stdout: "healthy\n".into(),
                stderr: "warned\n".into(),
                delay: Duration::ZERO,
            },
            Some("slow") => ExecReply {
                delay: Duration::from_secs(30),
                ..ExecReply::new(0, "")
            },
            _ => ExecReply::new(3, "bad\n"),
        }),
    );
    let id = started(&f, "probe", &ContainerSpec::command(["/srv/p"])).await;
    until(&f, &id, |p| p == "Running").await;
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let out = f
        .pods
        .exec(&id, &argv(&["check"]), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(&out.stdout[..], b"healthy\n");
    assert_eq!(&out.stderr[..], b"warned\n");
    let out = f
        .pods
        .exec(&id, &argv(&["other"]), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(&out.stdout[..], b"bad\n");
    let t = Instant::now();
    let err = f
        .pods
        .exec(&id, &argv(&["slow"]), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        f.pods
            .exec(&id, &[], Duration::from_secs(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    f.server.exit(id.as_str(), 0);
    let err = f
        .pods
        .exec(&id, &argv(&["check"]), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.to_string().contains("not running"), "{err}");
    f.pods.remove(&id, false).await.unwrap();
}

async fn collect(chunks: hoist_core::LogChunks) -> String {
    let parts: Vec<_> = chunks.collect().await;
    parts
        .into_iter()
        .map(|c| String::from_utf8(c.unwrap().data.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn logs_read_tail_and_follow() {
    let f = fixture().await;
    let id = started(
        &f,
        "talker",
        &shell("echo one; echo two; echo three; sleep 1"),
    )
    .await;
    until(&f, &id, |p| p == "Running").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let all = collect(f.pods.logs(&id, LogOptions::default()).await.unwrap()).await;
    assert_eq!(all, "one\ntwo\nthree\n");
    let tail = LogOptions {
        follow: false,
        tail: Some(1),
    };
    assert_eq!(
        collect(f.pods.logs(&id, tail).await.unwrap()).await,
        "three\n"
    );
    let follow = LogOptions {
        follow: true,
        tail: None,
    };
    let following = tokio::spawn(collect(f.pods.logs(&id, follow).await.unwrap()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.server.append_log(id.as_str(), "four\n");
    let followed = tokio::time::timeout(Duration::from_secs(5), following)
        .await
        .expect("a followed log ends when the container exits")
        .unwrap();
    assert_eq!(followed, "one\ntwo\nthree\nfour\n");
    f.pods.remove(&id, false).await.unwrap();

    f.server.script("quiet", PodScript::default().pending());
    let pending = started(&f, "quiet", &ContainerSpec::command(["/srv/q"])).await;
    let err = f
        .pods
        .logs(&pending, LogOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("waiting to start"), "{err}");
    f.pods.remove(&pending, true).await.unwrap();
}

#[tokio::test]
async fn list_owned_finds_this_executors_pods_only() {
    let f = fixture().await;
    let mine = started(
        &f,
        "a task/with spaces",
        &ContainerSpec::command(["/srv/a"]),
    )
    .await;
    let created = f
        .pods
        .create(&owner("later"), &shell("true"))
        .await
        .unwrap();
    let other = Owner {
        executor_id: ExecutorId::new("exec-2"),
        task_id: TaskId::new("b"),
    };
    let theirs = f
        .pods
        .create(&other, &ContainerSpec::command(["/srv/b"]))
        .await
        .unwrap();
    f.pods.start(&theirs).await.unwrap();
    let owned = f.pods.list_owned(&ExecutorId::new("exec-1")).await.unwrap();
    let ids: Vec<_> = owned.iter().map(|o| o.id.clone()).collect();
    assert_eq!(owned.len(), 2, "{owned:?}");
    assert!(ids.contains(&mine) && ids.contains(&created));
    let found = owned.iter().find(|o| o.id == mine).unwrap();
    assert_eq!(found.owner.task_id.as_str(), "a task/with spaces");
    // A new backend instance (a restarted executor) finds the submitted pod.
    let restarted = KubeContainerizer::new(f.server.client(), f.pods.config().clone());
    let owned = restarted
        .list_owned(&ExecutorId::new("exec-1"))
        .await
        .unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].id, mine);
    for id in [mine, created, theirs] {
        f.pods.remove(&id, true).await.unwrap();
    }
}

#[tokio::test]
async fn build_steps_run_as_init_containers() {
    let f = fixture().await;
    let steps = [BuildStep {
        name: "compile".into(),
        image: "golang:1.25".into(),
        command: vec!["go".into(), "build".into(), "-o".into(), "handler".into()],
        env: [("CGO_ENABLED".to_string(), "0".to_string())].into(),
    }];
    let id = f
        .pods
        .create_with_build(
            &owner("fn"),
            &ContainerSpec::command(["python", "handler.py"]),
            &steps,
        )
        .await
        .unwrap();
    f.pods.start(&id).await.unwrap();
    let spec = f.server.pod(id.as_str()).unwrap().spec.unwrap();
    let init = &spec.init_containers.unwrap()[0];
    assert_eq!(init.name, "compile");
    assert_eq!(init.env.as_ref().unwrap()[0].name, "CGO_ENABLED");
    f.pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn run_to_completion_cleans_up() {
    let f = fixture().await;
    let status = f
        .pods
        .run_to_completion(&owner("job"), &shell("exit 5"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status.code, Some(5));
    assert!(f.server.pods().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_temporary_error() {
    let server = FakeApiServer::start().await.unwrap();
    let config = server.config();
    drop(server);
    let pods = KubeContainerizer::from_kube_config(
        config,
        KubeConfig {
            default_image: Some("busybox".into()),
            request_timeout: Duration::from_secs(2),
            ..KubeConfig::default()
        },
    )
    .unwrap();
    let id = pods.create(&owner("x"), &shell("true")).await.unwrap();
    let err = pods.start(&id).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{err:?}"
    );
    assert!(err.is_temporary());
    // The rendered pod is kept, so start can be retried.
    assert_eq!(
        pods.inspect(&id).await.unwrap().state,
        ContainerState::Created
    );
}

#[tokio::test]
async fn a_retried_start_accepts_its_own_pod_and_refuses_a_foreign_one() {
    let f = fixture().await;
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::default_namespaced(f.server.client());
    let existing = |name: &str, task: &str| {
        let mut pod = k8s_openapi::api::core::v1::Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "main".into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some(name.into());
        pod.metadata.annotations = Some(
            [
                (
                    hoist_core::labels::EXECUTOR_ID.to_string(),
                    "exec-1".to_string(),
                ),
                (hoist_core::labels::TASK_ID.to_string(), task.to_string()),
            ]
            .into(),
        );
        pod
    };
    // The first submission reached the server but its answer was lost: the pod is there.
    let mine = f
        .pods
        .create(&owner("retry"), &ContainerSpec::command(["/srv/r"]))
        .await
        .unwrap();
    api.create(&Default::default(), &existing(mine.as_str(), "retry"))
        .await
        .unwrap();
    f.pods.start(&mine).await.unwrap();
    // A pod of another task under the same name is a conflict.
    let theirs = f
        .pods
        .create(&owner("other"), &ContainerSpec::command(["/srv/o"]))
        .await
        .unwrap();
    api.create(
        &Default::default(),
        &existing(theirs.as_str(), "someone-else"),
    )
    .await
    .unwrap();
    let err = f.pods.start(&theirs).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    f.pods.remove(&mine, true).await.unwrap();
    f.pods.remove(&theirs, true).await.unwrap();
    api.delete(theirs.as_str(), &Default::default())
        .await
        .unwrap();
}

/// A function's code: an executable `bootstrap` and a library file in a subdirectory.
fn code_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    std::fs::write(&bootstrap, b"#!/bin/sh\nexec ./handler\n").unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    let util = dir.path().join("lib").join("util.py");
    std::fs::write(&util, b"ANSWER = 42\n").unwrap();
    std::fs::set_permissions(&util, std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

fn code_spec(code: &std::path::Path, read_only: bool) -> ContainerSpec {
    let mut spec = ContainerSpec::command(["/var/task/bootstrap"]);
    spec.volumes.push(hoist_core::Volume {
        host_path: code.to_path_buf(),
        container_path: "/var/task".into(),
        read_only,
    });
    spec
}

fn copying() -> KubeConfig {
    KubeConfig {
        host_volumes: HostVolumes::Copy,
        ..KubeConfig::default()
    }
}

#[tokio::test]
async fn copied_host_volumes_reach_the_pod_through_a_config_map_it_owns() {
    let f = fixture_with(copying()).await;
    let code = code_dir();
    let id = f
        .pods
        .create(&owner("fn-1"), &code_spec(code.path(), true))
        .await
        .unwrap();
    assert!(
        f.server.config_maps().is_empty(),
        "create only reads the files"
    );
    f.pods.start(&id).await.unwrap();

    let pod = f.server.pod(id.as_str()).unwrap();
    let name = format!("{id}-volume-0");
    let map = f.server.config_map(&name).expect("start copies the files");
    let owners = map.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("Pod", id.as_str())
    );
    assert_eq!(Some(&owners[0].uid), pod.metadata.uid.as_ref());
    assert_eq!(map.immutable, Some(true));
    assert_eq!(map.metadata.labels.unwrap()["io.hoist.task-id"], "fn-1");
    let data = map.binary_data.unwrap();
    assert_eq!(data["f0"].0, b"#!/bin/sh\nexec ./handler\n");
    assert_eq!(data["f1"].0, b"ANSWER = 42\n");

    let spec = pod.spec.unwrap();
    let volume = &spec.volumes.unwrap()[0];
    assert!(volume.host_path.is_none(), "nothing of the host is mounted");
    let source = volume.config_map.clone().unwrap();
    assert_eq!(source.name, name);
    let items: Vec<_> = source
        .items
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.path, i.mode))
        .collect();
    assert_eq!(
        items,
        [
            ("f0".to_owned(), "bootstrap".to_owned(), Some(0o755)),
            ("f1".to_owned(), "lib/util.py".to_owned(), Some(0o644)),
        ]
    );
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.mount_path, "/var/task");
    assert_eq!(mount.read_only, Some(true));
    until(&f, &id, |p| p == "Running").await;

    // The pod's deletion takes its ConfigMap with it.
    f.pods.stop(&id, Duration::from_secs(1)).await.unwrap();
    f.pods.remove(&id, true).await.unwrap();
    assert!(f.server.pod(id.as_str()).is_none());
    assert!(f.server.config_maps().is_empty(), "the ConfigMap is left");
}

#[tokio::test]
async fn a_single_copied_file_is_mounted_by_sub_path() {
    let f = fixture_with(copying()).await;
    let code = code_dir();
    let mut spec = code_spec(&code.path().join("lib").join("util.py"), true);
    spec.volumes[0].container_path = "/opt/util.py".into();
    let id = started(&f, "one-file", &spec).await;
    let pod = f.server.pod(id.as_str()).unwrap().spec.unwrap();
    let mount = &pod.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.sub_path.as_deref(), Some("util.py"));
    assert_eq!(mount.mount_path, "/opt/util.py");
    let items = pod.volumes.unwrap()[0]
        .config_map
        .clone()
        .unwrap()
        .items
        .unwrap();
    assert_eq!(items[0].path, "util.py");
    until(&f, &id, |p| p == "Running").await;
    f.pods.remove(&id, true).await.unwrap();
    assert!(f.server.config_maps().is_empty());
}

#[tokio::test]
async fn copy_refusals_name_the_volume_and_leave_nothing_behind() {
    let f = fixture_with(copying()).await;
    let code = code_dir();

    // A writable volume cannot be a ConfigMap.
    let err = f
        .pods
        .create(&owner("w"), &code_spec(code.path(), false))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("container.volumes[0]"), "{err}");
    assert!(err.to_string().contains("writable"), "{err}");

    // An account that may create pods but not ConfigMaps: start fails, naming the refusal,
    // and deletes the pod it submitted, which would otherwise wait for its files forever.
    f.server.forbid("configmaps");
    let id = f
        .pods
        .create(&owner("no-rbac"), &code_spec(code.path(), true))
        .await
        .unwrap();
    let err = f.pods.start(&id).await.unwrap_err();
    assert!(err.to_string().contains("configmaps is forbidden"), "{err}");
    assert_eq!(
        err.context_value("config_map"),
        Some(format!("{id}-volume-0").as_str())
    );
    assert!(f.server.pod(id.as_str()).is_none(), "the pod is left");
    assert!(f.server.config_maps().is_empty());
    f.pods.remove(&id, true).await.unwrap();
}

#[tokio::test]
async fn the_fake_kubelet_runs_a_pod_only_once_its_config_maps_exist() {
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    let f = fixture().await;
    let pods: kube::Api<Pod> = kube::Api::default_namespaced(f.server.client());
    let maps: kube::Api<ConfigMap> = kube::Api::default_namespaced(f.server.client());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "waits" },
        "spec": {
            "containers": [{ "name": "main", "image": "busybox:1.37",
                             "volumeMounts": [{ "name": "code", "mountPath": "/code" }] }],
            "volumes": [{ "name": "code", "configMap": { "name": "code" } }],
        },
    }))
    .unwrap();
    pods.create(&Default::default(), &pod).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let phase = |f: &Fixture| {
        f.server
            .pod("waits")
            .unwrap()
            .status
            .unwrap()
            .phase
            .unwrap()
    };
    assert_eq!(phase(&f), "Pending");

    // The API server's own checks: the 1 MiB limit and key names.
    let too_big: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "code" },
        "data": { "big": "x".repeat(1024 * 1024 + 1) },
    }))
    .unwrap();
    let err = maps
        .create(&Default::default(), &too_big)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("must have at most 1048576 bytes"),
        "{err}"
    );
    let bad_key: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "code" },
        "data": { "a/b": "x" },
    }))
    .unwrap();
    let err = maps
        .create(&Default::default(), &bad_key)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("valid config key"), "{err}");

    let map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "code" },
        "data": { "main.py": "print(1)" },
    }))
    .unwrap();
    maps.create(&Default::default(), &map).await.unwrap();
    let id = ContainerId::new("waits");
    until(&f, &id, |p| p == "Running").await;
    assert_eq!(f.server.requests("configmap-create"), 3);
    pods.delete("waits", &Default::default()).await.unwrap();
    maps.delete("code", &Default::default()).await.unwrap();
    assert!(f.server.config_maps().is_empty());
}
