//! Watch streams: the history replayed from a resource version, then live events, a 410
//! `Expired` error event for compacted versions, and the end of the stream on its timeout.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{Filters, param, status, status_json, with_kind};
use crate::testing::store::{Broadcast, Event, EventType, Store};

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

pub(super) fn watch(
    store: Store,
    ns: String,
    params: &[(String, String)],
    filters: Filters,
) -> Response {
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
