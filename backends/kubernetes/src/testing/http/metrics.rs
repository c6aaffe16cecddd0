//! `metrics.k8s.io/v1beta1`, as metrics-server serves it: a running pod's `PodMetrics` with
//! the usage its script reports (CPU in nanocores, the working set in KiB), and 404
//! `podmetrics.metrics.k8s.io "<name>" not found` for a pod without a sample (pending,
//! ended, or scripted without usage). A server told `without_metrics_api` answers 404 for the
//! whole group, as a cluster without metrics-server does.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::status;
use crate::testing::store::{Store, now};

const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

pub(super) fn routes() -> Router<Store> {
    Router::new()
        .route("/apis/metrics.k8s.io/v1beta1", get(discovery))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}",
            get(pod_metrics),
        )
}

fn no_api() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn discovery(State(store): State<Store>) -> Response {
    if !store.lock().metrics_api {
        return no_api();
    }
    let body = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            { "name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"] },
            { "name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"] },
        ],
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn pod_metrics(
    State(store): State<Store>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    store.count("metrics");
    let sample = {
        let state = store.lock();
        if !state.metrics_api {
            return no_api();
        }
        state
            .pods
            .get(&(ns.clone(), name.clone()))
            .and_then(|entry| {
                let running = entry
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .and_then(|c| c.state.as_ref())
                    .is_some_and(|s| s.running.is_some());
                let usage = entry.script.usage?;
                let containers: Vec<String> = entry
                    .pod
                    .spec
                    .as_ref()
                    .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default();
                running.then(|| (usage, containers, entry.pod.metadata.labels.clone()))
            })
    };
    let Some((usage, containers, labels)) = sample else {
        return status(
            404,
            "NotFound",
            &format!("podmetrics.metrics.k8s.io \"{name}\" not found"),
        );
    };
    let stamp = now();
    let containers: Vec<_> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // The first container reports the script's usage, the others idle.
            let (cpu, memory) = if i == 0 {
                (usage.cpu_nanocores, usage.memory_bytes)
            } else {
                (0, 0)
            };
            json!({
                "name": c,
                "usage": { "cpu": format!("{cpu}n"), "memory": format!("{}Ki", memory / 1024) },
            })
        })
        .collect();
    let body = json!({
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": stamp,
            "labels": labels,
        },
        "timestamp": stamp,
        "window": "10s",
        "containers": containers,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}
