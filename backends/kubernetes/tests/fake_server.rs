//! The fake API server speaks Kubernetes JSON the way kube-rs expects it: statuses, lists with
//! selectors, watches from resource versions, 410 for compacted ones, graceful delete.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use hoist_kube::testing::{FakeApiServer, OnTerm, PodScript};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};

fn pod(name: &str, app: &str) -> Pod {
    let mut pod = Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                command: Some(vec!["/srv/app".into()]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    pod.metadata.name = Some(name.into());
    pod.metadata.labels = Some([("app".to_string(), app.to_string())].into());
    pod
}

fn api_status(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API status, got {other:?}"),
    }
}

#[tokio::test]
async fn create_get_list_and_errors_are_kubernetes_json() {
    let server = FakeApiServer::start().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let created = pods
        .create(&PostParams::default(), &pod("a", "web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    pods.create(&PostParams::default(), &pod("b", "db"))
        .await
        .unwrap();

    let (code, reason) = api_status(
        pods.create(&PostParams::default(), &pod("a", "web"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let (code, reason) = api_status(pods.get("nope").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    let mut no_image = pod("c", "web");
    no_image.spec.as_mut().unwrap().containers[0].image = None;
    let (code, reason) = api_status(
        pods.create(&PostParams::default(), &no_image)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 1);
    assert!(web.metadata.resource_version.is_some());
    let not_web = pods
        .list(&ListParams::default().labels("app!=web"))
        .await
        .unwrap();
    assert_eq!(not_web.items[0].metadata.name.as_deref(), Some("b"));
    let other_ns: Api<Pod> = Api::namespaced(server.client(), "other");
    assert!(
        other_ns
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn watches_replay_from_a_version_and_expire_when_compacted() {
    let server = FakeApiServer::start().await.unwrap();
    server.script("w", PodScript::default().pending());
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    let created = pods
        .create(&PostParams::default(), &pod("w", "web"))
        .await
        .unwrap();
    let version = created.metadata.resource_version.unwrap();
    server.set_running("w");
    server.exit("w", 2);

    let params = WatchParams::default().fields("metadata.name=w").timeout(5);
    let mut stream = pods.watch(&params, &version).await.unwrap().boxed();
    let mut phases = Vec::new();
    for _ in 0..2 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Modified(p) => phases.push(p.status.unwrap().phase.unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(phases, ["Running", "Failed"]);

    server.expire_watches();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // A watch from a compacted version is answered with 410 at once.
    let mut stale = pods.watch(&params, &version).await.unwrap().boxed();
    match stale.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => assert_eq!(status.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn delete_honours_the_grace_period() {
    let server = FakeApiServer::start().await.unwrap();
    server.script("slow", PodScript::default().on_term(OnTerm::Ignore));
    let pods: Api<Pod> = Api::default_namespaced(server.client());
    pods.create(&PostParams::default(), &pod("slow", "x"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.pod("slow").unwrap().status.unwrap().phase.as_deref() != Some("Running") {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let params = DeleteParams {
        grace_period_seconds: Some(1),
        ..DeleteParams::default()
    };
    let answer = pods.delete("slow", &params).await.unwrap();
    let terminating = answer
        .left()
        .expect("a graceful delete answers with the pod");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(server.pod("slow").is_some());
    let marked = tokio::time::Instant::now();
    let deadline = marked + Duration::from_secs(10);
    while server.pod("slow").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never killed and removed after the grace"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        marked.elapsed() >= Duration::from_millis(900),
        "removed before the 1 s grace ran out"
    );
    let (code, _) = api_status(pods.delete("slow", &params).await.unwrap_err());
    assert_eq!(code, 404);
}
