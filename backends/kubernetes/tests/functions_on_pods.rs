//! The function executor's environments as pods: hoist-functions' `FunctionExecutor` on the
//! Kubernetes backend, against the fake API server, configured with LocalStack's variables.
//!
//! The fake runs no code, so the tests play each environment themselves: they read the pod's
//! `AWS_LAMBDA_RUNTIME_API` and poll that Runtime API over HTTP, as a runtime client in the pod
//! would, or serve a contract runtime's `FUNC_PORT` on the pod's (loopback) IP.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoist_functions::config::{FunctionsConfig, RuntimeCommand};
use hoist_functions::{FunctionExecutor, FunctionSpec, Invocation};
use hoist_kube::testing::FakeApiServer;
use hoist_kube::{HostVolumes, KubeConfig, KubeContainerizer, PodProfiles};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Pod;

const IMAGE: &str = "example/lambda-provided:al2023";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn env_var(pod: &Pod, name: &str) -> Option<String> {
    pod.spec.as_ref()?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|v| v.name == name)?
        .value
        .clone()
}

/// Serves invocations for one pod through its Runtime API until the endpoint closes: each
/// answer names the pod, so the test sees which environment ran it.
async fn play_environment(client: HttpClient, pod: String, api: String) {
    let base = format!("http://{api}/2018-06-01/runtime/invocation");
    loop {
        let request = hyper::Request::get(format!("{base}/next"))
            .body(Full::default())
            .unwrap();
        let Ok(next) = client.request(request).await else {
            return; // the endpoint is gone: the environment was stopped
        };
        if !next.status().is_success() {
            return; // 410: the environment is stopping
        }
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let event = next.into_body().collect().await.unwrap().to_bytes();
        let answer = serde_json::json!({
            "pod": pod,
            "event": serde_json::from_slice::<serde_json::Value>(&event).unwrap(),
        });
        let request = hyper::Request::post(format!("{base}/{id}/response"))
            .body(Full::new(Bytes::from(answer.to_string())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), hyper::StatusCode::ACCEPTED);
    }
}

/// Starts [`play_environment`] for every pod the server holds that has not been played yet.
fn play_new_pods(server: &FakeApiServer, client: &HttpClient, played: &Mutex<BTreeSet<String>>) {
    for pod in server.pods() {
        let name = pod.metadata.name.clone().unwrap();
        let Some(api) = env_var(&pod, "AWS_LAMBDA_RUNTIME_API") else {
            continue;
        };
        if played.lock().unwrap().insert(name.clone()) {
            tokio::spawn(play_environment(client.clone(), name, api));
        }
    }
}

#[tokio::test]
async fn environments_run_as_pods_with_labels_dns_and_keepalive() {
    let server = Arc::new(FakeApiServer::start().await.unwrap());
    let keepalive = Duration::from_millis(1500);
    let mut config = FunctionsConfig::from_vars([
        ("LAMBDA_RUNTIME_EXECUTOR", "kubernetes".to_owned()),
        ("LAMBDA_K8S_LABELS", "team=payments,tier=lambda".to_owned()),
        ("LAMBDA_DOCKER_DNS", "10.96.0.10,1.1.1.1".to_owned()),
        ("LAMBDA_KEEPALIVE_MS", keepalive.as_millis().to_string()),
        (
            "LAMBDA_RUNTIME_IMAGE_MAPPING",
            format!(r#"{{"provided.al2023":"{IMAGE}"}}"#),
        ),
        // Pods reach the executor through the network, not its loopback; the fake's "pods" are
        // this test, on this machine.
        ("HOSTNAME_FROM_LAMBDA", "127.0.0.1".to_owned()),
    ])
    .unwrap();
    // Listen on loopback only: nothing outside this test needs the endpoints.
    config.runtime_api_bind = Some("127.0.0.1".parse().unwrap());
    // The function's code is copied into the pods: they may run on any node.
    let pods = KubeContainerizer::new(
        server.client(),
        KubeConfig {
            namespace: "lambda".into(),
            host_volumes: HostVolumes::Copy,
            // Lambda's pods get the `lambda` service's profile (the executor labels them).
            pod_profiles: PodProfiles::parse(
                r#"{"profiles": {"fn": {"priorityClassName": "functions", "labels": {"tier": "profile"}},
                                 "default": {"priorityClassName": "other"}},
                    "services": {"lambda": {"profile": "fn"}}}"#,
            )
            .unwrap(),
            ..KubeConfig::default()
        },
    );
    let code = tempfile::tempdir().unwrap();
    std::fs::write(code.path().join("bootstrap"), b"#!/bin/sh\n").unwrap();
    let functions = FunctionExecutor::start(Arc::new(pods), config).unwrap();
    functions
        .create(FunctionSpec::new(
            "hello",
            "provided.al2023",
            "bootstrap",
            code.path(),
        ))
        .unwrap();

    // Play every pod the executor creates, as the runtime inside it would.
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let played = Arc::new(Mutex::new(BTreeSet::new()));
    let player = {
        let (server, client, played) = (server.clone(), client.clone(), played.clone());
        tokio::spawn(async move {
            loop {
                play_new_pods(&server, &client, &played);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let first = functions
        .invoke("hello", Invocation::new(r#"{"n":1}"#))
        .await
        .unwrap();
    assert!(first.cold_start);
    assert!(first.function_error.is_none(), "{first:?}");
    let answer: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(answer["event"]["n"], 1);
    let pod_name = answer["pod"].as_str().unwrap().to_owned();

    // The pod: LAMBDA_K8S_LABELS under the `lambda` profile's, the function, service and
    // ownership labels, the DNS servers, the image from the runtime mapping, its own network,
    // the namespace from the kube config.
    let pod = server.pod(&pod_name).unwrap();
    assert_eq!(pod.metadata.namespace.as_deref(), Some("lambda"));
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "payments");
    assert_eq!(
        labels["tier"], "profile",
        "the profile's labels win over LAMBDA_K8S_LABELS"
    );
    assert_eq!(labels[hoist_core::labels::SERVICE], "lambda");
    assert_eq!(labels[hoist_core::labels::FUNCTION], "hello");
    assert_eq!(labels[hoist_core::labels::EXECUTOR_ID], "hoist-functions");
    let environment = &functions.pool().environments()[0];
    assert_eq!(labels[hoist_core::labels::TASK_ID], environment.id.0);
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    assert_eq!(
        spec.dns_config.unwrap().nameservers.unwrap(),
        ["10.96.0.10", "1.1.1.1"]
    );
    assert_eq!(spec.containers[0].image.as_deref(), Some(IMAGE));
    assert_eq!(spec.host_network, None, "pods keep their own network");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.priority_class_name.as_deref(), Some("functions"));
    let code_volume = spec.volumes.as_ref().unwrap()[0]
        .config_map
        .clone()
        .unwrap();
    let copied = server
        .config_map(&code_volume.name)
        .expect("the code was copied");
    assert_eq!(copied.binary_data.unwrap()["f0"].0, b"#!/bin/sh\n");
    assert_eq!(code_volume.items.unwrap()[0].path, "bootstrap");
    let api = env_var(&pod, "AWS_LAMBDA_RUNTIME_API").unwrap();
    assert!(api.starts_with("127.0.0.1:"), "{api}");
    assert_eq!(
        env_var(&pod, "AWS_LAMBDA_FUNCTION_NAME").as_deref(),
        Some("hello")
    );

    // Warm reuse: the next invocations run in the same pod, and no other pod is created.
    for n in 2..=4 {
        let warm = functions
            .invoke("hello", Invocation::new(format!(r#"{{"n":{n}}}"#)))
            .await
            .unwrap();
        assert!(!warm.cold_start, "invocation {n} was not warm");
        let answer: serde_json::Value = serde_json::from_slice(&warm.payload).unwrap();
        assert_eq!(answer["pod"], pod_name.as_str());
        assert_eq!(answer["event"]["n"], n);
    }
    assert_eq!(server.pods().len(), 1);
    assert_eq!(server.requests("create"), 1);

    // After the keepalive, the idle environment's pod is deleted.
    let deadline = Instant::now() + keepalive + Duration::from_secs(30);
    while server.pod(&pod_name).is_some() || !functions.pool().environments().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the pod outlived its keepalive: {:?}",
            server.pod(&pod_name).map(|p| p.status)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.requests("delete") >= 1);
    assert!(server.pods().is_empty());
    assert!(
        server.config_maps().is_empty(),
        "the code went with its pod"
    );

    player.abort();
    functions.shutdown().await;
    assert!(server.pods().is_empty());
}

/// Serves the runtime contract for one "pod" on its own address: `GET /healthz`, and every
/// other request answered with the pod's name, the event and its `event-id` header.
async fn serve_contract(listener: tokio::net::TcpListener, pod: String) {
    use axum::http::HeaderMap;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(move |headers: HeaderMap, body: Bytes| {
            let pod = pod.clone();
            async move {
                axum::Json(serde_json::json!({
                    "pod": pod,
                    "event": serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                    "event-id": headers["event-id"].to_str().unwrap(),
                }))
            }
        });
    let _ = axum::serve(listener, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_runtimes_are_called_on_the_pods_own_address() {
    let server = Arc::new(FakeApiServer::start().await.unwrap());
    // Pod IPs on loopback, so this test can serve each pod's `FUNC_PORT` on the pod's address.
    server.pod_network(std::net::Ipv4Addr::new(127, 3, 0, 0));
    let mut config = FunctionsConfig::from_vars([
        ("LAMBDA_RUNTIME_EXECUTOR", "kubernetes"),
        ("HOSTNAME_FROM_LAMBDA", "127.0.0.1"),
    ])
    .unwrap();
    config.runtime_api_bind = Some("127.0.0.1".parse().unwrap());
    config.runtimes.insert(
        "python3.11".into(),
        RuntimeCommand::contract(["python3", "/kubeless/kubeless.py"])
            .in_image("example/kubeless-python:3.11"),
    );
    let pods = KubeContainerizer::new(
        server.client(),
        KubeConfig {
            host_volumes: HostVolumes::Copy,
            ..KubeConfig::default()
        },
    );
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("handler.py"),
        b"def main(event, context):\n    return event['data']\n",
    )
    .unwrap();
    let functions = FunctionExecutor::start(Arc::new(pods), config).unwrap();
    functions
        .create(FunctionSpec::new(
            "echo",
            "python3.11",
            "handler.main",
            code.path(),
        ))
        .unwrap();

    // Serve every running pod's contract port on its pod IP, as its runtime would.
    let served = Arc::new(Mutex::new(BTreeSet::new()));
    let player = {
        let (server, served) = (server.clone(), served.clone());
        tokio::spawn(async move {
            loop {
                for pod in server.pods() {
                    let name = pod.metadata.name.clone().unwrap();
                    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
                    let (Some(ip), Some(port)) = (ip, env_var(&pod, "FUNC_PORT")) else {
                        continue;
                    };
                    if served.lock().unwrap().insert(name.clone()) {
                        let listener = tokio::net::TcpListener::bind(format!("{ip}:{port}"))
                            .await
                            .unwrap();
                        tokio::spawn(serve_contract(listener, name));
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let mut invocation = Invocation::new(r#"{"n":1}"#);
    invocation.request_id = Some("ev-1".into());
    let first = functions.invoke("echo", invocation).await.unwrap();
    assert!(first.function_error.is_none(), "{first:?}");
    let answer: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(answer["event"]["n"], 1);
    assert_eq!(answer["event-id"], "ev-1");
    let pod_name = answer["pod"].as_str().unwrap().to_owned();

    // The pod keeps its own network and serves the contract on Kubeless's port.
    let pod = server.pod(&pod_name).unwrap();
    assert_eq!(env_var(&pod, "FUNC_PORT").as_deref(), Some("8080"));
    assert_eq!(env_var(&pod, "MOD_NAME").as_deref(), Some("handler"));
    assert_eq!(env_var(&pod, "FUNC_HANDLER").as_deref(), Some("main"));
    assert_eq!(pod.spec.as_ref().unwrap().host_network, None);
    assert!(
        pod.status.unwrap().pod_ip.unwrap().starts_with("127.3."),
        "the pod got an address of its own"
    );

    // Warm: the next invocation goes to the same pod.
    let warm = functions
        .invoke("echo", Invocation::new(r#"{"n":2}"#))
        .await
        .unwrap();
    assert!(!warm.cold_start);
    let answer: serde_json::Value = serde_json::from_slice(&warm.payload).unwrap();
    assert_eq!(answer["pod"], pod_name.as_str());
    assert_eq!(server.pods().len(), 1);

    player.abort();
    functions.shutdown().await;
    assert!(server.pods().is_empty());
    assert!(server.config_maps().is_empty());
}
