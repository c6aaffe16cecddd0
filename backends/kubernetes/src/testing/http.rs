//! The fake API server's HTTP side: the pod routes of `/api/v1`, in Kubernetes JSON (the
//! ConfigMap routes are in `config_maps`).

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, Pod, PodStatus,
};
use serde_json::{Value, json};

use super::selector::{FieldSelector, LabelSelector};
use super::store::{Entry, EventType, Store, now};

mod io;
mod metrics;
mod session;
mod watch;

use io::{exec, log};
use watch::watch;

type Params = Query<Vec<(String, String)>>;

pub(crate) fn router(store: Store) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(list_or_watch).post(create),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(read).delete(delete),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(log))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(exec).post(exec),
        )
        .merge(super::config_maps::routes())
        .merge(metrics::routes())
        .fallback(|| async {
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
        .with_state(store)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A refusal, turned into a `Status` response.
struct Refusal(u16, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        status(self.0, self.1, &self.2)
    }
}

/// A `Status` response, as the API server sends for every failure.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = status_json(code, reason, message);
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The 403 the API server answers when the client's account may not `verb` `resource`.
pub(crate) fn forbidden(store: &Store, verb: &str, resource: &str, ns: &str) -> Option<Response> {
    store.lock().forbidden.contains(resource).then(|| {
        status(
            403,
            "Forbidden",
            &format!(
                "{resource} is forbidden: User \"system:serviceaccount:{ns}:hoist\" cannot \
                 {verb} resource \"{resource}\" in API group \"\" in the namespace \"{ns}\""
            ),
        )
    })
}

fn not_found(name: &str) -> Response {
    status(404, "NotFound", &format!("pods \"{name}\" not found"))
}

pub(crate) fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => (code, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => status(500, "InternalError", &e.to_string()),
    }
}

fn with_kind(mut pod: Pod) -> Value {
    pod.metadata.managed_fields = None;
    object_json(&pod, "Pod")
}

/// An object as the API server writes it: its fields with `apiVersion` and `kind`.
pub(crate) fn object_json(object: &impl serde::Serialize, kind: &str) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), "v1".into());
        map.insert("kind".into(), kind.into());
    }
    value
}

async fn create(State(store): State<Store>, Path(ns): Path<String>, body: Bytes) -> Response {
    store.count("create");
    if let Some(refusal) = forbidden(&store, "create", "pods", &ns) {
        return refusal;
    }
    let mut pod: Pod = match serde_json::from_slice(&body) {
        Ok(pod) => pod,
        Err(e) => return status(400, "BadRequest", &format!("error decoding pod: {e}")),
    };
    if pod
        .metadata
        .namespace
        .as_ref()
        .is_some_and(|body_ns| *body_ns != ns)
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    if pod.metadata.name.is_none()
        && let Some(prefix) = &pod.metadata.generate_name
    {
        let uid = store.lock().next_uid;
        pod.metadata.name = Some(format!("{prefix}{:05x}", uid * 7919 % 0xfffff));
    }
    let Some(name) = pod.metadata.name.clone() else {
        return invalid("", "metadata.name", "name or generateName is required");
    };
    if let Err(problem) = super::selector::check_dns_subdomain(&name) {
        return invalid(&name, "metadata.name", &problem);
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    if containers.is_empty() {
        return invalid(&name, "spec.containers", "Required value");
    }
    for (i, c) in containers.iter().enumerate() {
        if c.image.as_deref().unwrap_or("").is_empty() {
            return invalid(
                &name,
                &format!("spec.containers[{i}].image"),
                "Required value",
            );
        }
    }
    pod.metadata.namespace = Some(ns.clone());
    pod.metadata.creation_timestamp = Some(now());
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        container_statuses: Some(
            containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("ContainerCreating".into()),
                            message: None,
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                })
                .collect(),
        ),
        ..PodStatus::default()
    });
    let script = store.script_for(&pod);
    {
        let mut state = store.lock();
        let key = (ns.clone(), name.clone());
        if state.pods.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                &format!("pods \"{name}\" already exists"),
            );
        }
        pod.metadata.uid = Some(state.new_uid());
        store.record(&mut state, EventType::Added, &mut pod);
        let (log_tx, _) = tokio::sync::watch::channel(0);
        state.pods.insert(
            key,
            Entry {
                pod: pod.clone(),
                script: script.clone(),
                log: String::new(),
                log_tx,
                signals: Vec::new(),
            },
        );
    }
    store.run_script(ns, name, script);
    json_response(StatusCode::CREATED, &with_kind(pod))
}

fn invalid(name: &str, field: &str, problem: &str) -> Response {
    invalid_object("Pod", name, field, "FieldValueRequired", problem)
}

/// The 422 `Invalid` the API server answers for an object of `kind` it refuses, with the
/// cause's `reason` (`FieldValueRequired`, `FieldValueInvalid`...).
pub(crate) fn invalid_object(
    kind: &str,
    name: &str,
    field: &str,
    reason: &str,
    problem: &str,
) -> Response {
    let message = format!("{kind} \"{name}\" is invalid: {field}: {problem}");
    let mut body = status_json(422, "Invalid", &message);
    body["details"] = json!({
        "name": name,
        "kind": kind,
        "causes": [{ "reason": reason, "message": problem, "field": field }],
    });
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn read(State(store): State<Store>, Path((ns, name)): Path<(String, String)>) -> Response {
    store.count("get");
    match store.get(&ns, &name) {
        Some(pod) => json_response(StatusCode::OK, &with_kind(pod)),
        None => not_found(&name),
    }
}

struct Filters {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filters {
    fn parse(params: &[(String, String)]) -> Result<Self, Refusal> {
        let labels = LabelSelector::parse(param(params, "labelSelector").unwrap_or(""))
            .map_err(|e| Refusal(400, "BadRequest", e))?;
        let fields = FieldSelector::parse(param(params, "fieldSelector").unwrap_or(""))
            .map_err(|e| Refusal(400, "BadRequest", e))?;
        Ok(Filters { labels, fields })
    }

    fn matches(&self, pod: &Pod) -> bool {
        self.labels.matches(pod) && self.fields.matches(pod)
    }
}

async fn list_or_watch(
    State(store): State<Store>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Response {
    let filters = match Filters::parse(&params) {
        Ok(filters) => filters,
        Err(refusal) => return refusal.into_response(),
    };
    if matches!(param(&params, "watch"), Some("true" | "1")) {
        return watch(store, ns, &params, filters);
    }
    store.count("list");
    let state = store.lock();
    let items: Vec<Value> = state
        .pods
        .iter()
        .filter(|((pod_ns, _), e)| *pod_ns == ns && filters.matches(&e.pod))
        .map(|(_, e)| with_kind(e.pod.clone()))
        .collect();
    let body = json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": { "resourceVersion": state.rv.to_string() },
        "items": items,
    });
    json_response(StatusCode::OK, &body)
}

async fn delete(
    State(store): State<Store>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    store.count("delete");
    let from_body = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(options) => options.get("gracePeriodSeconds").and_then(Value::as_i64),
            Err(e) => {
                return status(
                    400,
                    "BadRequest",
                    &format!("error decoding DeleteOptions: {e}"),
                );
            }
        }
    };
    let from_query = param(&params, "gracePeriodSeconds").and_then(|g| g.parse::<i64>().ok());
    let pod = store.get(&ns, &name);
    let Some(pod) = pod else {
        return not_found(&name);
    };
    let default_grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let grace = from_body.or(from_query).unwrap_or(default_grace).max(0) as u64;
    match store.delete(&ns, &name, Duration::from_secs(grace)) {
        Some(pod) => json_response(StatusCode::OK, &with_kind(pod)),
        None => not_found(&name),
    }
}
