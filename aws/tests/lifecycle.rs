//! A function's life on the router: a host that refuses a deployment, image functions, a
//! restart while a deployment was in flight, and aliases that route by weight.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use hoist_aws::lambda::{DeployCode, LambdaConfig, LambdaService};
use serde_json::{Value, json};
use support::{Server, TestHost, call, zip_of};

async fn start(dir: &std::path::Path, host: Arc<TestHost>) -> (LambdaService, axum::Router) {
    let store = hoist_store::Store::open(dir).unwrap();
    let service = LambdaService::start(store, host, LambdaConfig::default()).await;
    let router = service.router();
    (service, router)
}

fn create_body(name: &str) -> String {
    create_with_handler(name, "app.handler")
}

fn create_with_handler(name: &str, handler: &str) -> String {
    json!({
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": handler,
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip_of("app.py", "x = 1\n"))},
    })
    .to_string()
}

/// Polls `GetFunctionConfiguration` until `done` holds (at most 50 s of tokio time).
async fn wait_for(router: &axum::Router, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let uri = format!("/2015-03-31/functions/{name}/configuration");
    for _ in 0..5000 {
        let (_, _, conf) = call(router, "GET", &uri, "").await;
        if done(&conf) {
            return conf;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} did not reach the state awaited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_the_host_cannot_deploy_fails_with_the_hosts_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (service, router) = start(dir.path(), Arc::default()).await;
    let (status, _, created) = call(
        &router,
        "POST",
        "/2015-03-31/functions",
        create_body("broken-fn"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let conf = wait_for(&router, "broken-fn", |c| c["State"] != "Pending").await;
    assert_eq!(conf["State"], "Failed");
    assert_eq!(conf["StateReason"], "no interpreter for python3.12");
    assert_eq!(conf["StateReasonCode"], "InternalError");
    let (status, headers, body) = call(
        &router,
        "POST",
        "/2015-03-31/functions/broken-fn/invocations",
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers["x-amzn-errortype"], "ResourceConflictException");
    assert!(
        body["message"].as_str().unwrap().ends_with("state: Failed"),
        "{body}"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_functions_need_a_host_that_runs_images() {
    let image = |name: &str| {
        json!({
            "FunctionName": name,
            "Role": "arn:aws:iam::000000000000:role/r",
            "PackageType": "Image",
            "Code": {"ImageUri": "registry.local/fn:1"},
            "ImageConfig": {"Command": ["app.handler"], "WorkingDirectory": "/srv"},
        })
        .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, router) = start(dir.path(), Arc::default()).await;
    let (status, headers, body) =
        call(&router, "POST", "/2015-03-31/functions", image("img")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        headers["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("container images"),
        "{body}"
    );
    service.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(TestHost {
        images: true,
        ..TestHost::default()
    });
    let (service, router) = start(dir.path(), host.clone()).await;
    let (status, _, created) = call(&router, "POST", "/2015-03-31/functions", image("img")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["PackageType"], "Image");
    assert!(
        created.get("_ImageUri").is_none(),
        "hoist's own members stay inside: {created}"
    );
    wait_for(&router, "img", |c| c["State"] == "Active").await;
    let (_, _, got) = call(&router, "GET", "/2015-03-31/functions/img", "").await;
    assert_eq!(got["Code"]["RepositoryType"], "ECR");
    assert_eq!(got["Code"]["ImageUri"], "registry.local/fn:1");
    assert_eq!(
        got["Configuration"]["ImageConfigResponse"]["ImageConfig"]["WorkingDirectory"],
        "/srv"
    );
    let deploys = host.deploys.lock().unwrap().clone();
    let DeployCode::Image {
        uri,
        command,
        working_directory,
        ..
    } = &deploys[0].code
    else {
        panic!("an image deployment: {:?}", deploys[0]);
    };
    assert_eq!(uri, "registry.local/fn:1");
    assert_eq!(command.as_deref(), Some(&["app.handler".to_string()][..]));
    assert_eq!(working_directory.as_deref(), Some("/srv"));
    let zip =
        json!({"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip_of("a", "b"))});
    let (status, _, body) = call(
        &router,
        "PUT",
        "/2015-03-31/functions/img/code",
        zip.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_deploys_what_its_predecessor_left_pending() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let router = server.service.router();
    let (status, _, created) = call(
        &router,
        "POST",
        "/2015-03-31/functions",
        create_body("slow-pending"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // The host never finishes: the server stops with the deployment in flight.
    server.stop().await;

    let host = Arc::new(TestHost::default());
    host.release();
    let server = Server::start_with(dir.path(), host.clone()).await;
    let router = server.service.router();
    let conf = wait_for(&router, "slow-pending", |c| c["State"] != "Pending").await;
    assert_eq!(conf["State"], "Active");
    assert_eq!(host.deployed("slow-pending"), ["$LATEST"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_route_by_weight_and_versions_publish_only_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (service, router) = start(dir.path(), Arc::default()).await;
    call(&router, "POST", "/2015-03-31/functions", create_body("w")).await;
    wait_for(&router, "w", |c| c["State"] == "Active").await;
    let publish = || call(&router, "POST", "/2015-03-31/functions/w/versions", "{}");
    let (status, _, v1) = publish().await;
    assert_eq!(
        (status, v1["Version"].as_str()),
        (StatusCode::CREATED, Some("1"))
    );
    assert_eq!(publish().await.2["Version"], "1", "nothing changed");
    let (status, _, _) = call(
        &router,
        "PUT",
        "/2015-03-31/functions/w/configuration",
        r#"{"Description": "second"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_for(&router, "w", |c| c["LastUpdateStatus"] == "Successful").await;
    assert_eq!(
        publish().await.2["Version"],
        "2",
        "a description change is a change"
    );

    let alias = |weights: Value| {
        json!({"Name": "canary", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": weights}})
            .to_string()
    };
    let (status, _, body) = call(
        &router,
        "POST",
        "/2015-03-31/functions/w/aliases",
        alias(json!({"2": 1.0})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["RoutingConfig"]["AdditionalVersionWeights"]["2"], 1.0);
    let executed = |router: axum::Router| async move {
        let (status, headers, body) = call(
            &router,
            "POST",
            "/2015-03-31/functions/w/invocations?Qualifier=canary",
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        headers["x-amz-executed-version"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    for _ in 0..5 {
        assert_eq!(executed(router.clone()).await, "2");
    }
    let (status, _, _) = call(
        &router,
        "PUT",
        "/2015-03-31/functions/w/aliases/canary",
        json!({"RoutingConfig": {"AdditionalVersionWeights": {"2": 0.0}}}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(executed(router.clone()).await, "1");
    }
    for (weights, problem) in [
        (
            json!({"1": 0.5}),
            "already included in routing configuration",
        ),
        (json!({"7": 0.5}), "Function not found"),
        (json!({"2": 1.5}), "less than or equal to 1.0"),
    ] {
        let body = json!({"Name": "bad", "FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": weights}});
        let (status, _, answer) = call(
            &router,
            "POST",
            "/2015-03-31/functions/w/aliases",
            body.to_string(),
        )
        .await;
        assert!(status.is_client_error(), "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(problem),
            "{answer}"
        );
    }
    service.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_deployment_past_its_deadline_fails_the_function() {
    let dir = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(dir.path()).unwrap();
    let config = LambdaConfig {
        deploy_timeout: Duration::from_secs(30),
        ..LambdaConfig::default()
    };
    // `slow-*` deployments never finish on this host.
    let service = LambdaService::start(store, Arc::new(TestHost::default()), config).await;
    let router = service.router();
    let (status, _, _) = call(
        &router,
        "POST",
        "/2015-03-31/functions",
        create_body("slow-stuck"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let started = tokio::time::Instant::now();
    let conf = wait_for(&router, "slow-stuck", |c| c["State"] != "Pending").await;
    assert_eq!(conf["State"], "Failed");
    assert_eq!(
        conf["StateReason"],
        "the function host did not finish deploying slow-stuck:$LATEST within 30 s"
    );
    assert!(started.elapsed() >= Duration::from_secs(30));
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_deleted_and_created_again_mid_deployment_ends_with_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(TestHost::default());
    let (service, router) = start(dir.path(), host.clone()).await;
    let create = |handler: &str| {
        call(
            &router,
            "POST",
            "/2015-03-31/functions",
            create_with_handler("slow-again", handler),
        )
    };
    assert_eq!(create("old.handler").await.0, StatusCode::CREATED);
    // Let the first deployment reach the host, where it waits.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _, _) = call(&router, "DELETE", "/2015-03-31/functions/slow-again", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(create("new.handler").await.0, StatusCode::CREATED);
    host.release();
    let conf = wait_for(&router, "slow-again", |c| c["State"] != "Pending").await;
    assert_eq!(conf["State"], "Active");
    assert_eq!(conf["Handler"], "new.handler");
    let deploys = host.deploys.lock().unwrap().clone();
    let last = deploys
        .iter()
        .rfind(|d| d.function == "slow-again")
        .unwrap();
    assert_eq!(last.handler.as_deref(), Some("new.handler"), "{deploys:?}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_on_create_and_on_update_and_paging_versions_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(TestHost::default());
    let (service, router) = start(dir.path(), host.clone()).await;
    let mut body: Value = serde_json::from_str(&create_body("p")).unwrap();
    body["Publish"] = json!(true);
    let (status, _, created) =
        call(&router, "POST", "/2015-03-31/functions", body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["Version"], "1");
    assert_eq!(created["State"], "Active");
    assert_eq!(host.deployed("p"), ["$LATEST", "1"]);

    let zip = |text: &str| base64::engine::general_purpose::STANDARD.encode(zip_of("app.py", text));
    // A dry run checks and changes nothing.
    let (status, _, dry) = call(
        &router,
        "PUT",
        "/2015-03-31/functions/p/code",
        json!({"ZipFile": zip("y = 2\n"), "DryRun": true}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(host.deployed("p").len(), 2);
    let (status, _, published) = call(
        &router,
        "PUT",
        "/2015-03-31/functions/p/code",
        json!({"ZipFile": zip("y = 2\n"), "Publish": true}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["Version"], "2");
    assert_eq!(host.deployed("p"), ["$LATEST", "1", "$LATEST", "2"]);

    for (name, version) in [("a", "1"), ("b", "2"), ("c", "2")] {
        let (status, _, alias) = call(
            &router,
            "POST",
            "/2015-03-31/functions/p/aliases",
            json!({"Name": name, "FunctionVersion": version}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{alias}");
    }
    let (_, _, on_two) = call(
        &router,
        "GET",
        "/2015-03-31/functions/p/aliases?FunctionVersion=2",
        "",
    )
    .await;
    let names: Vec<&str> = on_two["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c"]);
    let (_, _, first) = call(
        &router,
        "GET",
        "/2015-03-31/functions/p/versions?MaxItems=2",
        "",
    )
    .await;
    assert_eq!(first["Versions"].as_array().unwrap().len(), 2);
    let marker = first["NextMarker"].as_str().unwrap();
    let (_, _, rest) = call(
        &router,
        "GET",
        &format!("/2015-03-31/functions/p/versions?MaxItems=2&Marker={marker}"),
        "",
    )
    .await;
    assert_eq!(rest["Versions"][0]["Version"], "2");
    assert!(rest.get("NextMarker").is_none(), "{rest}");
    let (status, headers, _) = call(
        &router,
        "GET",
        "/2015-03-31/functions/p/versions?MaxItems=0",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-amzn-errortype"], "ValidationException");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_and_environment_limits_answer_as_aws() {
    let dir = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(dir.path()).unwrap();
    let mut config = LambdaConfig::default();
    config.limits.code_size_unzipped = 64;
    config.limits.env_size = 32;
    let small_zip = zip_of("app.py", "x = 1\n").len() as u64;
    let service = LambdaService::start(store, Arc::new(TestHost::default()), config).await;
    let router = service.router();
    let big = json!({
        "FunctionName": "big",
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "app.handler",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip_of("app.py", &"#".repeat(100)))},
    });
    let (status, headers, body) =
        call(&router, "POST", "/2015-03-31/functions", big.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        headers["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    assert_eq!(
        body["message"],
        "Unzipped size must be smaller than 64 bytes"
    );
    let mut env = serde_json::from_str::<Value>(&create_body("env")).unwrap();
    env["Environment"] = json!({"Variables": {"KEY": "a value longer than the limit"}});
    let (status, _, body) = call(&router, "POST", "/2015-03-31/functions", env.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"String measured: {"KEY":"a value longer than the limit"}"#),
        "{body}"
    );
    service.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(dir.path()).unwrap();
    let mut config = LambdaConfig::default();
    config.limits.code_size_zipped = small_zip - 1;
    let service = LambdaService::start(store, Arc::new(TestHost::default()), config).await;
    let router = service.router();
    let (status, headers, body) = call(
        &router,
        "POST",
        "/2015-03-31/functions",
        create_body("zipped"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        headers["x-amzn-errortype"],
        "RequestEntityTooLargeException"
    );
    assert_eq!(
        body["message"],
        format!("Zipped size must be smaller than {} bytes", small_zip - 1)
    );
    // Nothing was stored for either.
    let (_, _, listed) = call(&router, "GET", "/2015-03-31/functions", "").await;
    assert_eq!(listed["Functions"], json!([]));
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_is_told_each_functions_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(TestHost::default());
    let (service, router) = start(dir.path(), host.clone()).await;
    let mut arm: Value = serde_json::from_str(&create_body("arm-fn")).unwrap();
    arm["Architectures"] = json!(["arm64"]);
    for body in [arm.to_string(), create_body("x86-fn")] {
        let (status, _, created) = call(&router, "POST", "/2015-03-31/functions", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    for name in ["arm-fn", "x86-fn"] {
        wait_for(&router, name, |c| c["State"] == "Active").await;
    }
    let deploys = host.deploys.lock().unwrap().clone();
    let architecture = |name: &str| {
        deploys
            .iter()
            .find(|d| d.function == name)
            .map(|d| d.architecture.clone())
    };
    assert_eq!(architecture("arm-fn").as_deref(), Some("arm64"));
    assert_eq!(architecture("x86-fn").as_deref(), Some("x86_64"));
    service.shutdown().await;
}
