//! The fake API server's HTTP side: the pod routes of `/api/v1`, in Kubernetes JSON (the
//! ConfigMap routes are in `config_maps`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, Pod, PodStatus,
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::selector::{FieldSelector, LabelSelector};
use super::store::{Broadcast, Entry, Event, EventType, Store, now};

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
    let mut value = serde_json::to_value(&pod).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), "v1".into());
        map.insert("kind".into(), "Pod".into());
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
        state.next_uid += 1;
        pod.metadata.uid = Some(format!("00000000-0000-4000-8000-{:012x}", state.next_uid));
        store.record(&mut state, EventType::Added, &mut pod);
        let (log_tx, _) = tokio::sync::watch::channel(0);
        state.pods.insert(
            key,
            Entry {
                pod: pod.clone(),
                script: script.clone(),
                log: String::new(),
                log_tx,
            },
        );
    }
    store.run_script(ns, name, script);
    json_response(StatusCode::CREATED, &with_kind(pod))
}

fn invalid(name: &str, field: &str, problem: &str) -> Response {
    let message = format!("Pod \"{name}\" is invalid: {field}: {problem}");
    let mut body = status_json(422, "Invalid", &message);
    body["details"] = json!({
        "name": name,
        "kind": "Pod",
        "causes": [{ "reason": "FieldValueRequired", "message": problem, "field": field }],
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

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({ "type": kind, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn expired_line(rv: u64, oldest: u64) -> Bytes {
    event_line(
        "ERROR",
        status_json(
            410,
            "Expired",
            &format!("too old resource version: {rv} ({oldest})"),
        ),
    )
}

fn watch(store: Store, ns: String, params: &[(String, String)], filters: Filters) -> Response {
    store.count("watch");
    let since = match param(params, "resourceVersion").unwrap_or("") {
        "" | "0" => None,
        rv => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return status(
                    400,
                    "BadRequest",
                    &format!("invalid resource version \"{rv}\""),
                );
            }
        },
    };
    let timeout = param(params, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let (backlog, mut events, expired) = {
        let state = store.lock();
        let events = store.events.subscribe();
        match since {
            Some(rv) if rv < state.compacted => (Vec::new(), events, Some((rv, state.compacted))),
            Some(rv) => (
                state
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.pod.metadata.namespace.as_deref() == Some(&ns))
                    .cloned()
                    .collect(),
                events,
                None,
            ),
            None => (
                state
                    .pods
                    .iter()
                    .filter(|((pod_ns, _), _)| *pod_ns == ns)
                    .map(|(_, e)| Event {
                        rv: 0,
                        kind: EventType::Added,
                        pod: e.pod.clone(),
                    })
                    .collect(),
                events,
                None,
            ),
        }
    };
    tokio::spawn(async move {
        if let Some((rv, oldest)) = expired {
            let _ = tx.send(Ok(expired_line(rv, oldest))).await;
            return;
        }
        let mut last = since.unwrap_or(0);
        for event in backlog {
            last = last.max(event.rv);
            if filters.matches(&event.pod)
                && tx
                    .send(Ok(event_line(event.kind.as_str(), with_kind(event.pod))))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let next = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                next = events.recv() => next,
            };
            let line = match next {
                Ok(Broadcast::Event(event)) => {
                    let event = *event;
                    if event.rv <= last
                        || event.pod.metadata.namespace.as_deref() != Some(&ns)
                        || !filters.matches(&event.pod)
                    {
                        continue;
                    }
                    last = event.rv;
                    event_line(event.kind.as_str(), with_kind(event.pod))
                }
                Ok(Broadcast::Expire) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let oldest = store.lock().compacted;
                    let _ = tx.send(Ok(expired_line(last, oldest))).await;
                    return;
                }
                Ok(Broadcast::Disconnect) | Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
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

/// Which container of the pod a subresource request names; errors as the API server words them.
fn pick_container(pod: &Pod, params: &[(String, String)]) -> Result<String, Refusal> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    match param(params, "container") {
        Some(c) if containers.iter().any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(Refusal(
            400,
            "BadRequest",
            format!("container {c} is not valid for pod {name}"),
        )),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(Refusal(
            400,
            "BadRequest",
            format!(
                "a container name must be specified for pod {name}, choose one of: {containers:?}"
            ),
        )),
    }
}

fn container_state(pod: &Pod, container: &str) -> Option<ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .state
        .clone()
}

fn waiting_reason(pod: &Pod, container: &str) -> Option<String> {
    container_state(pod, container)?
        .waiting
        .map(|w| w.reason.unwrap_or_else(|| "ContainerCreating".into()))
}

fn is_terminated(pod: &Pod, container: &str) -> bool {
    container_state(pod, container).is_some_and(|s| s.terminated.is_some())
}

fn tail(text: &str, lines: Option<usize>) -> String {
    match lines {
        None => text.to_owned(),
        Some(n) => {
            let all: Vec<&str> = text.split_inclusive('\n').collect();
            all[all.len().saturating_sub(n)..].concat()
        }
    }
}

async fn log(
    State(store): State<Store>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    store.count("log");
    let Some(pod) = store.get(&ns, &name) else {
        return not_found(&name);
    };
    let container = match pick_container(&pod, &params) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(reason) = waiting_reason(&pod, &container) {
        return status(
            400,
            "BadRequest",
            &format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"),
        );
    }
    let tail_lines = param(&params, "tailLines").and_then(|t| t.parse::<usize>().ok());
    let follow = matches!(param(&params, "follow"), Some("true" | "1"));
    let (text, mut changes) = {
        let state = store.lock();
        let Some(entry) = state.pods.get(&(ns.clone(), name.clone())) else {
            return not_found(&name);
        };
        (entry.log.clone(), entry.log_tx.subscribe())
    };
    let first = tail(&text, tail_lines);
    if !follow {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            first,
        )
            .into_response();
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let mut sent = text.len();
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        loop {
            let (more, done) = {
                let state = store.lock();
                match state.pods.get(&(ns.clone(), name.clone())) {
                    Some(entry) => (
                        entry.log.get(sent..).unwrap_or("").to_owned(),
                        is_terminated(&entry.pod, &container),
                    ),
                    None => (String::new(), true),
                }
            };
            sent += more.len();
            if !more.is_empty() && tx.send(Ok(Bytes::from(more))).await.is_err() {
                return;
            }
            if done {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// An optional websocket upgrade: exec without one is answered with a `Status`, as the API
/// server does.
struct MaybeUpgrade(Option<WebSocketUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUpgrade {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeUpgrade(
            WebSocketUpgrade::from_request_parts(parts, state)
                .await
                .ok(),
        ))
    }
}

/// Channel bytes of the remote-command websocket protocol (`v4.channel.k8s.io`).
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;

async fn exec(
    State(store): State<Store>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    MaybeUpgrade(upgrade): MaybeUpgrade,
) -> Response {
    store.count("exec");
    let Some(pod) = store.get(&ns, &name) else {
        return not_found(&name);
    };
    let container = match pick_container(&pod, &params) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    let running = matches!(
        container_state(&pod, &container),
        Some(ContainerState {
            running: Some(_),
            ..
        })
    );
    if !running {
        return status(
            400,
            "BadRequest",
            &format!(
                "unable to upgrade connection: container {container} not running in pod {name}"
            ),
        );
    }
    let argv: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return status(400, "BadRequest", "you must specify at least 1 command");
    }
    let Some(upgrade) = upgrade else {
        return status(400, "BadRequest", "Upgrade request required");
    };
    let handler = {
        let state = store.lock();
        match state.pods.get(&(ns, name.clone())) {
            Some(entry) => entry.script.exec.clone(),
            None => return not_found(&name),
        }
    };
    upgrade
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run_exec(socket, argv, handler))
}

async fn run_exec(mut socket: WebSocket, argv: Vec<String>, handler: super::script::ExecHandler) {
    let reply = handler(&argv);
    if !reply.delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(reply.delay) => {}
            _ = socket.recv() => return,
        }
    }
    let frame = |channel: u8, data: &[u8]| {
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.push(channel);
        bytes.extend_from_slice(data);
        Message::Binary(Bytes::from(bytes))
    };
    if !reply.stdout.is_empty()
        && socket
            .send(frame(STDOUT, reply.stdout.as_bytes()))
            .await
            .is_err()
    {
        return;
    }
    if !reply.stderr.is_empty()
        && socket
            .send(frame(STDERR, reply.stderr.as_bytes()))
            .await
            .is_err()
    {
        return;
    }
    let status = if reply.code == 0 {
        json!({ "metadata": {}, "status": "Success" })
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {argv:?}, exit code {}",
                reply.code
            ),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": reply.code.to_string() }] },
        })
    };
    let _ = socket
        .send(frame(ERROR, status.to_string().as_bytes()))
        .await;
    let _ = socket.send(Message::Close(None)).await;
}
