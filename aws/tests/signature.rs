//! Signature Version 4 checked on every request (`hoist serve --require-signature`), as boto3
//! signs: the right key passes, a wrong secret, an unknown key and an unsigned request get
//! each service's own refusal (Lambda and ECS in JSON, EC2 and ELBv2 in their Query XML).

mod support;

use std::sync::Arc;
use std::time::Duration;

use hoist_aws::compute::{ComputeConfig, ComputeService};
use hoist_aws::lambda::{LambdaConfig, LambdaService};
use hoist_aws::sigv4::{Credentials, SignatureCheck, require_signature};
use hoist_process::ProcessContainerizer;
use support::{TestHost, python, serve, unserve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_signatures_are_checked_against_the_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(dir.path().join("state")).unwrap();
    let lambda = LambdaService::start(
        store.clone(),
        Arc::new(TestHost::default()),
        LambdaConfig::default(),
    )
    .await;
    let backend = Arc::new(
        ProcessContainerizer::new(dir.path().join("backend"))
            .unwrap()
            .with_poll_interval(Duration::from_millis(50)),
    );
    let compute = ComputeService::start(store, backend, ComputeConfig::default()).await;
    let check = SignatureCheck::new(
        Credentials::default().with("AKIDHOIST", "the-right-secret"),
        1 << 20,
    );
    let router =
        lambda
            .router()
            .merge(compute.router())
            .layer(axum::middleware::from_fn_with_state(
                check,
                require_signature,
            ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, mut task) = serve(listener, router);

    let seen = python("signature.py", &endpoint, "all", &[]).await;
    let code = |key: &str| seen[key]["code"].as_str().unwrap_or("ok").to_owned();
    for service in ["lambda", "ecs", "ec2", "elbv2"] {
        assert_eq!(
            seen[format!("{service}.right")]["ok"],
            true,
            "{service}: {seen}"
        );
    }
    // The JSON services.
    for service in ["lambda", "ecs"] {
        assert_eq!(
            code(&format!("{service}.wrong_secret")),
            "InvalidSignatureException"
        );
        assert_eq!(
            code(&format!("{service}.unknown_key")),
            "UnrecognizedClientException"
        );
        assert_eq!(
            code(&format!("{service}.unsigned")),
            "MissingAuthenticationTokenException"
        );
        assert_eq!(seen[format!("{service}.wrong_secret")]["status"], 403);
    }
    // The Query services.
    for service in ["ec2", "elbv2"] {
        assert_eq!(
            code(&format!("{service}.wrong_secret")),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            code(&format!("{service}.unknown_key")),
            "InvalidClientTokenId"
        );
        assert_eq!(
            code(&format!("{service}.unsigned")),
            "MissingAuthenticationToken"
        );
        assert_eq!(seen[format!("{service}.unknown_key")]["status"], 403);
    }
    assert!(
        seen["lambda.wrong_secret"]["message"]
            .as_str()
            .unwrap()
            .contains("does not match the signature you provided"),
        "{seen}"
    );
    // A signed body passes the check and reaches the API.
    assert_eq!(code("lambda.invoke"), "ResourceNotFoundException", "{seen}");

    unserve(stop, &mut task).await;
    compute.shutdown().await;
    lambda.shutdown().await;
}
