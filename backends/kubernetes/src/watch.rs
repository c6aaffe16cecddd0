//! Watching one pod until a condition holds, surviving expired resource versions (410),
//! dropped connections and API errors, with backoff between attempts.

use futures::StreamExt;
use hoist_core::{Error, ErrorKind, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};

use crate::config::KubeConfig;
use crate::error::{from_kube, timed_out};

/// What a watch saw of the pod.
#[derive(Debug)]
pub(crate) enum Seen {
    /// The pod as it is now.
    Pod(Pod),
    /// The pod is gone; its last state when the deletion was seen.
    Gone(Option<Pod>),
}

/// Watches pod `name` until `check` returns a value. `check` sees the pod at the start and after
/// every change; once the pod is gone it sees [`Seen::Gone`] and must decide. With `since`, the
/// first watch starts from that pod's resource version (so changes made since it was read are
/// replayed); otherwise from a fresh read. Watch expiry (410 `Expired`) relists at once; other
/// failures back off as `config.backoff` says.
pub(crate) async fn watch_pod<T>(
    api: &Api<Pod>,
    config: &KubeConfig,
    name: &str,
    operation: &'static str,
    mut since: Option<Pod>,
    mut check: impl FnMut(&Seen) -> Option<T>,
) -> Result<T> {
    let mut failures: u32 = 0;
    loop {
        let current = match since.take() {
            Some(pod) => Some(pod),
            None => match attempt(config, &mut failures, operation, name, api.get_opt(name)).await?
            {
                Some(current) => current,
                None => continue,
            },
        };
        let Some(pod) = current else {
            return check(&Seen::Gone(None)).ok_or_else(|| gone(operation, name));
        };
        let mut version = pod.metadata.resource_version.clone().unwrap_or_default();
        let seen = Seen::Pod(pod);
        if let Some(done) = check(&seen) {
            return Ok(done);
        }
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(config.watch_timeout.as_secs().clamp(1, 290) as u32);
        let idle = config.watch_timeout + config.request_timeout;
        let opened = attempt(
            config,
            &mut failures,
            operation,
            name,
            api.watch(&params, &version),
        );
        let Some(stream) = opened.await? else {
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(event))) => event,
                Ok(Some(Err(e))) => {
                    tracing::debug!(pod = name, error = %e, "watch stream failed; backing off");
                    tokio::time::sleep(config.backoff.delay(failures)).await;
                    failures += 1;
                    break;
                }
                Ok(None) => {
                    tracing::trace!(pod = name, "watch ended; renewing");
                    break;
                }
                Err(_) => {
                    tracing::debug!(pod = name, "watch idle past its deadline; renewing");
                    break;
                }
            };
            match event {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                    failures = 0;
                    version = pod.metadata.resource_version.clone().unwrap_or(version);
                    if let Some(done) = check(&Seen::Pod(pod)) {
                        return Ok(done);
                    }
                }
                WatchEvent::Deleted(pod) => {
                    return check(&Seen::Gone(Some(pod))).ok_or_else(|| gone(operation, name));
                }
                WatchEvent::Bookmark(mark) => version = mark.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => {
                    tracing::debug!(pod = name, version, "watch expired (410); relisting");
                    break;
                }
                WatchEvent::Error(status) => {
                    tracing::debug!(pod = name, status = %status.message, "watch error event; backing off");
                    tokio::time::sleep(config.backoff.delay(failures)).await;
                    failures += 1;
                    break;
                }
            }
        }
    }
}

/// One request under the request timeout. A temporary failure (or the timeout) backs off and
/// gives `None` so the caller starts over; any other failure is returned.
async fn attempt<T>(
    config: &KubeConfig,
    failures: &mut u32,
    operation: &'static str,
    name: &str,
    call: impl Future<Output = kube::Result<T>>,
) -> Result<Option<T>> {
    let err = match tokio::time::timeout(config.request_timeout, call).await {
        Ok(Ok(value)) => return Ok(Some(value)),
        Ok(Err(e)) => from_kube(e, operation, name),
        Err(_) => timed_out(operation, name, config.request_timeout),
    };
    if !err.is_temporary() {
        return Err(err);
    }
    tracing::debug!(pod = name, error = %err, "request failed; backing off");
    tokio::time::sleep(config.backoff.delay(*failures)).await;
    *failures += 1;
    Ok(None)
}

fn gone(operation: &'static str, name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("pod {name} was deleted outside the executor"),
    )
    .with_operation(operation)
    .with_context("container", name)
}
