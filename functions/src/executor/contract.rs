//! Talking to runtime-contract environments: health probes and event requests.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hoist_core::scheduler::EnvironmentId;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::config::RuntimeProtocol;
use crate::invoke::{Invocation, rfc3339};
use crate::runtime_api::{RuntimeInvocation, RuntimeReply};
use hoist_runtimes::function::FunctionSpec;

use super::Shared;
use super::invoke::error_document;

impl Shared {
    pub(super) fn protocol(&self, spec: &FunctionSpec) -> RuntimeProtocol {
        self.config
            .runtimes
            .get(&spec.runtime)
            .map(|r| r.protocol)
            .unwrap_or_default()
    }

    /// Forgets where a contract environment serves.
    pub(super) fn forget_contract(&self, environment: &EnvironmentId) {
        self.contract_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
    }

    /// Whether the contract runtime at `address` answers `GET /healthz` with 200.
    pub(super) async fn healthy(&self, address: SocketAddr) -> bool {
        let Ok(request) =
            hyper::Request::get(format!("http://{address}/healthz")).body(Full::new(Bytes::new()))
        else {
            return false;
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.client.request(request)).await,
            Ok(Ok(response)) if response.status().is_success()
        )
    }

    /// Posts the event to a contract runtime, with the Kubeless event headers.
    pub(super) async fn invoke_contract(
        &self,
        environment: &EnvironmentId,
        invocation: &RuntimeInvocation,
        event: &Invocation,
    ) -> Result<RuntimeReply, String> {
        let address = self
            .contract_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(environment)
            .copied()
            .ok_or_else(|| format!("environment {environment} has no runtime address"))?;
        let request = hyper::Request::post(format!("http://{address}/"))
            .header("content-type", "application/json")
            .header("event-id", &invocation.request_id)
            .header(
                "event-type",
                event.event_type.as_deref().unwrap_or("application/json"),
            )
            .header(
                "event-time",
                event
                    .event_time
                    .clone()
                    .unwrap_or_else(|| rfc3339(SystemTime::now())),
            )
            .header(
                "event-namespace",
                event.event_namespace.as_deref().unwrap_or("hoist"),
            )
            .body(Full::new(invocation.payload.clone()))
            .map_err(|e| format!("the event headers are invalid: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("the runtime did not answer: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the runtime's answer broke off: {e}"))?
            .to_bytes();
        if status.is_success() {
            return Ok(RuntimeReply::Response(body));
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        Ok(if status == hyper::StatusCode::REQUEST_TIMEOUT {
            RuntimeReply::Error {
                error_type: "Sandbox.Timedout".into(),
                body: error_document("Sandbox.Timedout", text),
            }
        } else {
            RuntimeReply::Error {
                error_type: "FunctionError".into(),
                body: error_document("FunctionError", format!("{status}: {text}")),
            }
        })
    }
}
