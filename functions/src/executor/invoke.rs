//! The invoke path: find the version, check the request, take a lease on an environment,
//! hand the event over (Runtime API or runtime contract) within the timeout, and turn what
//! came back into a response or a function error.

use std::time::{Duration, SystemTime};

use hoist_core::scheduler::{Rejection, ReleaseOutcome, Scheduler, ThrottleReason};
use hoist_core::{Error, ErrorKind};
use serde_json::json;

use crate::config::RuntimeProtocol;
use crate::invoke::{
    Completion, Invocation, InvocationType, InvokeError, InvokeResponse, MAX_EVENT_PAYLOAD,
    MAX_SYNC_PAYLOAD, new_request_id,
};
use crate::registry::FunctionVersion;
use crate::runtime_api::{MAX_RESPONSE_BYTES, RuntimeInvocation, RuntimeReply};

use super::{FunctionExecutor, logs};

pub(super) fn error_document(error_type: &str, message: String) -> bytes::Bytes {
    bytes::Bytes::from(json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

impl FunctionExecutor {
    /// Invokes `name`.
    pub async fn invoke(
        &self,
        name: &str,
        invocation: Invocation,
    ) -> Result<InvokeResponse, InvokeError> {
        let not_found = || InvokeError::NotFound {
            function: match &invocation.qualifier {
                Some(q) => format!("{}:{q}", self.shared.function_arn(name)),
                None => self.shared.function_arn(name),
            },
        };
        let version = match invocation.qualifier.as_deref() {
            None | Some("$LATEST") => self.shared.registry.get(name),
            Some(q) => q
                .parse()
                .ok()
                .and_then(|n| self.shared.registry.version(name, n)),
        }
        .ok_or_else(not_found)?;
        let limit = if invocation.kind == InvocationType::Event {
            MAX_EVENT_PAYLOAD
        } else {
            MAX_SYNC_PAYLOAD
        };
        if invocation.payload.len() > limit {
            return Err(InvokeError::PayloadTooLarge {
                size: invocation.payload.len(),
                limit,
            });
        }
        let request_id = invocation.request_id.clone().unwrap_or_else(new_request_id);
        let response = |completion, payload, function_error, cold_start| InvokeResponse {
            request_id: request_id.clone(),
            version: version.version,
            completion,
            payload,
            function_error,
            cold_start,
            log: None,
        };
        match invocation.kind {
            InvocationType::DryRun => Ok(response(
                Completion::Checked,
                bytes::Bytes::new(),
                None,
                false,
            )),
            InvocationType::Event => {
                let slot = self.events.admit(self.shared.config.pool.retry_after)?;
                let this = self.clone();
                let (version, request_id) = (version.clone(), request_id.clone());
                let dropped = request_id.clone();
                self.events.spawn(
                    async move {
                        let _slot = slot;
                        match this.run(&version, request_id.clone(), invocation).await {
                            Ok(r) if r.function_error.is_some() => {
                                tracing::warn!(%request_id, payload = %String::from_utf8_lossy(&r.payload), "asynchronous invocation failed");
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(%request_id, error = %e, "asynchronous invocation was not run"),
                        }
                    },
                    move || {
                        tracing::warn!(request_id = %dropped, "asynchronous invocation dropped: the executor shut down before it finished");
                    },
                );
                Ok(response(
                    Completion::Accepted,
                    bytes::Bytes::new(),
                    None,
                    false,
                ))
            }
            InvocationType::RequestResponse => self.run(&version, request_id, invocation).await,
        }
    }

    /// Runs one invocation on a leased environment.
    async fn run(
        &self,
        version: &FunctionVersion,
        request_id: String,
        invocation: Invocation,
    ) -> Result<InvokeResponse, InvokeError> {
        let spec = &version.spec;
        let done = |payload, function_error: Option<&str>, cold_start| InvokeResponse {
            request_id: request_id.clone(),
            version: version.version,
            completion: Completion::Done,
            payload,
            function_error: function_error.map(str::to_owned),
            cold_start,
            log: None,
        };
        let lease = match self.pool.lease(&version.key(), None).await {
            Ok(lease) => lease,
            Err(Rejection::Throttled {
                reason,
                retry_after,
            }) => {
                return Err(InvokeError::Throttled {
                    reason,
                    retry_after,
                });
            }
            Err(Rejection::QueueTimeout { waited }) => {
                return Err(InvokeError::Throttled {
                    reason: ThrottleReason::ConcurrencyLimit,
                    retry_after: waited.max(Duration::from_secs(1)),
                });
            }
            Err(Rejection::Failed(e))
                if e.kind() == ErrorKind::InvalidState || e.kind() == ErrorKind::Cancelled =>
            {
                return Err(InvokeError::Service(e));
            }
            Err(Rejection::Failed(e)) => {
                let error_type = if e.kind() == ErrorKind::Timeout {
                    "Runtime.StartupTimeout"
                } else {
                    "Runtime.InitError"
                };
                let body =
                    error_document(error_type, format!("RequestId: {request_id} Error: {e}"));
                return Ok(done(body, Some("Unhandled"), true));
            }
            Err(other) => {
                return Err(InvokeError::Service(Error::new(
                    ErrorKind::Backend,
                    other.to_string(),
                )));
            }
        };
        let cold = lease.cold_start;
        let environment = lease.environment.clone();
        // The log mark is read before the deadline is set: the function keeps its whole timeout.
        let log_mark = if invocation.tail_log && invocation.kind == InvocationType::RequestResponse
        {
            let container = logs::container_of(&self.executor, &environment);
            Some(logs::mark(self.executor.containerizer().as_ref(), container).await)
        } else {
            None
        };
        let runtime_invocation = RuntimeInvocation {
            request_id: request_id.clone(),
            payload: invocation.payload.clone(),
            deadline: SystemTime::now() + spec.timeout,
            function_arn: invocation
                .invoked_arn
                .clone()
                .unwrap_or_else(|| self.shared.function_arn(&spec.name)),
            client_context: invocation.client_context.clone(),
        };
        let started = std::time::Instant::now();
        let answer = match self.shared.protocol(spec) {
            RuntimeProtocol::LambdaRuntimeApi => {
                let call = self
                    .shared
                    .runtime_api
                    .invoke(&environment, runtime_invocation);
                tokio::time::timeout(spec.timeout, call).await
            }
            RuntimeProtocol::Contract => {
                let call =
                    self.shared
                        .invoke_contract(&environment, &runtime_invocation, &invocation);
                tokio::time::timeout(spec.timeout, call).await
            }
        };
        let timed_out = format!(
            "Task timed out after {:.2} seconds",
            spec.timeout.as_secs_f64()
        );
        let log = match log_mark {
            Some(mark) => {
                let framing = logs::Framing {
                    request_id: &request_id,
                    version: "$LATEST",
                    duration: started.elapsed(),
                    memory_mb: spec.memory,
                    note: answer.is_err().then(|| format!("{request_id} {timed_out}")),
                };
                let mark = mark.or_container(logs::container_of(&self.executor, &environment));
                Some(logs::tail(self.executor.containerizer().as_ref(), &mark, framing).await)
            }
            None => None,
        };
        let mut response = match answer {
            Ok(Ok(RuntimeReply::Response(body))) => {
                self.pool.release(lease, ReleaseOutcome::Reusable).await;
                done(body, None, cold)
            }
            Ok(Ok(RuntimeReply::TooLarge { size })) => {
                tracing::info!(%request_id, size, "the function's response is too large");
                self.pool.release(lease, ReleaseOutcome::Reusable).await;
                let body = error_document(
                    "Function.ResponseSizeTooLarge",
                    format!(
                        "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                    ),
                );
                done(body, Some("Unhandled"), cold)
            }
            Ok(Ok(RuntimeReply::Error { body, .. })) => {
                self.pool.release(lease, ReleaseOutcome::Reusable).await;
                done(body, Some("Unhandled"), cold)
            }
            Ok(Err(reason)) => {
                self.pool
                    .release(lease, ReleaseOutcome::Broken(reason.clone()))
                    .await;
                let body = error_document(
                    "Runtime.ExitError",
                    format!("RequestId: {request_id} Error: Runtime exited: {reason}"),
                );
                done(body, Some("Unhandled"), cold)
            }
            Err(_) => {
                let seconds = spec.timeout.as_secs_f64();
                self.pool
                    .release(
                        lease,
                        ReleaseOutcome::Broken(format!("timed out after {seconds:.2} seconds")),
                    )
                    .await;
                let body = error_document(
                    "Sandbox.Timedout",
                    format!("RequestId: {request_id} Error: {timed_out}"),
                );
                done(body, Some("Unhandled"), cold)
            }
        };
        response.log = log;
        Ok(response)
    }
}
