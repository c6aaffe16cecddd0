//! A pod's container I/O: `log` (plain, `tailLines`, `follow`) and `exec` over the
//! `v5`/`v4.channel.k8s.io` websocket protocols.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use serde_json::json;
use tokio::sync::mpsc;

use super::{Params, Refusal, not_found, param, status};
use crate::testing::script::{ExecHandler, ExecReply, signal_number};
use crate::testing::store::Store;

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

pub(super) async fn log(
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
pub(super) struct MaybeUpgrade(Option<WebSocketUpgrade>);

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

pub(super) async fn exec(
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
    let protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
    if param(&params, "stdin") == Some("true") {
        let tty = param(&params, "tty") == Some("true");
        return upgrade
            .protocols(protocols)
            .on_upgrade(move |socket| super::session::run(socket, argv, tty, store));
    }
    if let Some(signal) = kill_of_init(&argv) {
        store.deliver_signal(&ns, &name, signal);
        let handler: ExecHandler = std::sync::Arc::new(|_: &[String]| ExecReply::new(0, ""));
        return upgrade
            .protocols(protocols)
            .on_upgrade(move |socket| run_exec(socket, argv, handler));
    }
    let handler = {
        let state = store.lock();
        match state.pods.get(&(ns, name.clone())) {
            Some(entry) => entry.script.exec.clone(),
            None => return not_found(&name),
        }
    };
    upgrade
        .protocols(protocols)
        .on_upgrade(move |socket| run_exec(socket, argv, handler))
}

/// The signal of `kill -N 1` / `kill -s NAME 1` / `kill -NAME 1`: a signal to the pod's main
/// process.
fn kill_of_init(argv: &[String]) -> Option<i32> {
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (prog, signal) = match words.as_slice() {
        [prog, "-s", signal, "1"] => (*prog, *signal),
        [prog, signal, "1"] if signal.starts_with('-') => (*prog, *signal),
        _ => return None,
    };
    if !prog.ends_with("kill") {
        return None;
    }
    signal_number(signal)
}

async fn run_exec(mut socket: WebSocket, argv: Vec<String>, handler: ExecHandler) {
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
