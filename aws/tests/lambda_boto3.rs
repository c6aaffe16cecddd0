//! The Lambda API driven by boto3, as a LocalStack user drives it: every control-plane
//! operation, invocations by version and alias, the errors AWS gives, and a restart on the
//! same state directory.

mod support;

use support::{Server, boto3};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_operation_and_a_restart_keeps_the_functions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let seen = boto3(&server.endpoint, "full", &[]).await;
    let revision = seen["revision"].as_str().unwrap().to_owned();
    let host = server.host.clone();
    // $LATEST was deployed on create, after the configuration update and the code update;
    // version 1 once; the second function once.
    assert_eq!(
        host.deployed("hello"),
        ["$LATEST", "$LATEST", "$LATEST", "1"]
    );
    assert_eq!(host.deployed("second"), ["$LATEST"]);
    let deploys = host.deploys.lock().unwrap().clone();
    let latest = deploys
        .iter()
        .rfind(|d| d.function == "hello" && d.version == "$LATEST")
        .unwrap();
    assert_eq!(latest.timeout, 10);
    assert_eq!(latest.memory_size, 256);
    assert_eq!(latest.handler.as_deref(), Some("app.handler2"));
    assert_eq!(latest.runtime.as_deref(), Some("python3.12"));
    assert_eq!(latest.environment["A"], "2");
    let hoist_aws::lambda::DeployCode::Zip { path, .. } = &latest.code else {
        panic!("a zip function")
    };
    assert!(path.starts_with(dir.path()), "{}", path.display());
    assert_eq!(
        host.removed.lock().unwrap().as_slice(),
        [("hello".to_string(), Some("1".to_string()))]
    );
    assert_eq!(host.reserved.lock().unwrap()["hello"], None);
    server.stop().await;

    // A new server on the same state directory serves the same functions: everything stored
    // is deployed to its (new) host before it answers.
    let server = Server::start(dir.path()).await;
    assert_eq!(server.host.deployed("hello"), ["$LATEST"]);
    assert_eq!(server.host.deployed("second"), ["$LATEST"]);
    let seen = boto3(&server.endpoint, "after-restart", &[&revision]).await;
    assert_eq!(seen["remaining"], serde_json::json!(["second"]));
    assert_eq!(server.host.deployed("hello"), ["$LATEST", "2"]);
    assert!(
        server
            .host
            .removed
            .lock()
            .unwrap()
            .contains(&("hello".to_string(), None))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_function_being_deployed_conflict_and_concurrent_updates_serialise() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    boto3(&server.endpoint, "pending", &[]).await;
    assert!(server.host.deployed("slow-fn").is_empty());
    server.host.release();
    let seen = boto3(&server.endpoint, "released", &[]).await;
    let served = seen["served"].as_u64().unwrap() as usize;
    // One deployment for the creation and one per update served; a refused update deployed
    // nothing.
    assert_eq!(server.host.deployed("slow-fn").len(), 1 + served);
    server.stop().await;
}
