//! The simulator's HTTP side: each call checked and answered as the agent does
//! (apache/mesos `src/slave/http.cpp`, `Http::executor`; `src/slave/validation.cpp` for the
//! checks of an update).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::simulator::{AckMode, Shared, SimState, SimulatorOptions};
use crate::client::EXECUTOR_API_PATH;
use crate::recordio;
use crate::wire::{
    AgentId, AgentInfo, Call, CallType, Event, EventType, ExecutorId, ExecutorInfo,
    FrameworkCapability, FrameworkId, FrameworkInfo, Subscribed, TaskState, TaskStatus,
};

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn reply(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text.into())).boxed());
    *response.status_mut() = status;
    response
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    Ok(handle_call(&shared, req)
        .await
        .unwrap_or_else(|(status, why)| {
            let mut state = shared.state();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                state.seen.unavailable += 1;
            } else {
                state.seen.unauthorized += usize::from(status == StatusCode::UNAUTHORIZED);
                state.seen.rejected.push(format!("{status}: {why}"));
            }
            drop(state);
            shared.changed.notify_waiters();
            let mut response = reply(status, why);
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static(r#"Bearer realm="mesos-agent-executor""#),
                );
            }
            response
        }))
}

async fn handle_call(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, (StatusCode, String)> {
    if req.method() != Method::POST || req.uri().path() != EXECUTOR_API_PATH {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no endpoint {} {}", req.method(), req.uri().path()),
        ));
    }
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(token) = &shared.options.authentication_token {
        // The agent authenticates before it looks at the call.
        let expected = format!("Bearer {token}");
        match &authorization {
            Some(given) if *given == expected => {}
            Some(_) => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "Failed to verify the bearer token".into(),
                ));
            }
            None => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "Expecting 'Authorization' to be present".into(),
                ));
            }
        }
    }
    if shared
        .state()
        .down_until
        .is_some_and(|t| Instant::now() < t)
    {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Agent has not finished recovery".into(),
        ));
    }
    match req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => {
            return Err((
                StatusCode::BAD_REQUEST,
                "Expecting 'Content-Type' to be present".into(),
            ));
        }
        Some("application/json") => {}
        Some(other) => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported 'Content-Type': {other}"),
            ));
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
        .to_bytes();
    let call: Call = serde_json::from_slice(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("Failed to parse body into Call: {e}"),
        )
    })?;
    shared
        .state()
        .seen
        .authorizations
        .push((call.kind, authorization));
    let o = &shared.options;
    if call.executor_id.value != o.executor_id || call.framework_id.value != o.framework_id {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "unknown executor {} of framework {}",
                call.executor_id, call.framework_id
            ),
        ));
    }
    if call.kind != CallType::Subscribe
        && shared
            .state()
            .recovering_until
            .is_some_and(|t| Instant::now() < t)
    {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Agent has not finished recovery".into(),
        ));
    }
    match call.kind {
        CallType::Subscribe => {
            let subscribe = call.subscribe.ok_or((
                StatusCode::BAD_REQUEST,
                "Expecting 'subscribe' to be present".into(),
            ))?;
            for update in &subscribe.unacknowledged_updates {
                validate_update(&call.executor_id, &update.status)
                    .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let subscribed = recordio::encode(
                &serde_json::to_vec(&subscribed_event(o)).expect("events serialize"),
            );
            {
                let mut state = shared.state();
                state.stream = Some(tx.clone());
                state.seen.connected = true;
                state.seen.subscriptions.push(subscribe.clone());
                // The agent replays the updates the executor did not see acknowledged.
                let replayed = subscribe
                    .unacknowledged_updates
                    .into_iter()
                    .map(|u| u.status)
                    .collect();
                if state.hold_subscribed {
                    state.held_subscribed = Some((subscribed, replayed));
                } else {
                    tx.send(subscribed).expect("receiver held");
                    for status in replayed {
                        accept(&mut state, status);
                    }
                }
            }
            shared.changed.notify_waiters();
            let rng =
                StdRng::seed_from_u64(o.seed ^ shared.state().seen.subscriptions.len() as u64);
            let body = StreamBody::new(rechunk(rx, rng, o.max_chunk.max(1)));
            let mut response = Response::new(BodyExt::boxed(body));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        kind => {
            let mut state = shared.state();
            if state.stream.is_none() {
                return Err((StatusCode::FORBIDDEN, "Executor is not subscribed".into()));
            }
            match kind {
                CallType::Update => {
                    let update = call.update.ok_or((
                        StatusCode::BAD_REQUEST,
                        "Expecting 'update' to be present".into(),
                    ))?;
                    validate_update(&call.executor_id, &update.status)
                        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
                    accept(&mut state, update.status);
                }
                CallType::Message => {
                    let message = call.message.ok_or((
                        StatusCode::BAD_REQUEST,
                        "Expecting 'message' to be present".into(),
                    ))?;
                    state.seen.messages.push(message.data.0);
                }
                CallType::Heartbeat => state.seen.heartbeats += 1,
                CallType::Subscribe => unreachable!("handled above"),
            }
            drop(state);
            shared.changed.notify_waiters();
            Ok(reply(StatusCode::ACCEPTED, ""))
        }
    }
}

fn subscribed_event(o: &SimulatorOptions) -> Event {
    let framework_id = FrameworkId::new(&o.framework_id);
    Event {
        subscribed: Some(Subscribed {
            executor_info: ExecutorInfo {
                executor_id: ExecutorId::new(&o.executor_id),
                framework_id: Some(framework_id.clone()),
                name: Some("simulated executor".into()),
                shutdown_grace_period: None,
            },
            framework_info: FrameworkInfo {
                user: "root".into(),
                name: "simulated framework".into(),
                id: Some(framework_id),
                checkpoint: Some(o.checkpoint),
                capabilities: o
                    .capabilities
                    .iter()
                    .map(|c| FrameworkCapability {
                        kind: Some(c.clone()),
                    })
                    .collect(),
            },
            agent_info: AgentInfo {
                hostname: "localhost".into(),
                id: Some(AgentId::new(&o.agent_id)),
                port: Some(5051),
            },
            container_id: None,
        }),
        ..Event::new(EventType::Subscribed)
    }
}

/// Checks an update as the agent's call validation does.
fn validate_update(executor: &ExecutorId, status: &TaskStatus) -> std::result::Result<(), String> {
    let uuid = status
        .uuid
        .as_ref()
        .ok_or("Expecting 'uuid' to be present")?;
    let uuid = uuid::Uuid::from_slice(&uuid.0)
        .map_err(|_| format!("Invalid UUID: {} bytes, expected 16", uuid.0.len()))?;
    if uuid.get_version_num() == 0 || uuid.get_version_num() > 5 {
        return Err(format!("Invalid UUID version {}", uuid.get_version_num()));
    }
    if status.source != Some(crate::wire::Source::Executor) {
        return Err(format!(
            "Received Call from executor with invalid source: {:?}",
            status.source
        ));
    }
    if status.state == TaskState::Staging {
        return Err("Received TASK_STAGING from executor".into());
    }
    if let Some(id) = status.executor_id.as_ref().filter(|id| *id != executor) {
        return Err(format!(
            "ExecutorID in Call: {executor} does not match ExecutorID in TaskStatus: {id}"
        ));
    }
    Ok(())
}

pub(super) fn accept(state: &mut SimState, status: TaskStatus) {
    let uuid = status.uuid.clone().map(|u| u.0).unwrap_or_default();
    let task = status.task_id.clone();
    state.seen.updates.push(status);
    let times = match state.ack_mode {
        AckMode::Normal => 1,
        AckMode::Drop => 0,
        AckMode::Duplicate => 2,
    };
    for _ in 0..times {
        let ack = Event::acknowledged(task.clone(), uuid.clone());
        let json = serde_json::to_vec(&ack).expect("events serialize");
        if let Some(tx) = &state.stream {
            let _ = tx.send(recordio::encode(&json));
            state.seen.acknowledgements += 1;
        }
    }
}

/// Joins whatever records are queued and cuts them at random byte positions.
fn rechunk(
    rx: mpsc::UnboundedReceiver<Bytes>,
    rng: StdRng,
    max_chunk: usize,
) -> impl futures::Stream<Item = std::result::Result<Frame<Bytes>, Infallible>> {
    futures::stream::unfold(
        (rx, rng, BytesMut::new()),
        move |(mut rx, mut rng, mut buf)| async move {
            if buf.is_empty() {
                let first = rx.recv().await?;
                buf.extend_from_slice(&first);
                while let Ok(more) = rx.try_recv() {
                    buf.extend_from_slice(&more);
                }
            }
            let n = rng.random_range(1..=max_chunk).min(buf.len());
            let chunk = buf.split_to(n).freeze();
            Some((Ok(Frame::data(chunk)), (rx, rng, buf)))
        },
    )
}
