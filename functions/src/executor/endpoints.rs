//! The launcher that prepares each environment's endpoint (a Runtime API endpoint or a
//! contract port) before its task starts.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::scheduler::EnvironmentId;

use std::convert::Infallible;

use crate::config::RuntimeProtocol;
use crate::launcher::{EnvironmentLauncher, ExecutorLauncher};

use super::{Attachment, Attachments, Shared};

/// An [`ExecutorLauncher`] that opens each environment's Runtime API endpoint first and
/// closes it when the environment stops.
#[derive(Debug)]
pub(super) struct EndpointLauncher {
    pub(super) inner: ExecutorLauncher,
    pub(super) shared: Arc<Shared>,
    pub(super) addresses: Attachments,
}

/// A free loopback port for a contract runtime's `FUNC_PORT`.
fn free_port() -> hoist_core::Result<u16> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

impl EndpointLauncher {
    /// Forgets the environment's endpoint and fails what it still had running.
    async fn detach(&self, environment: &EnvironmentId, reason: &str) {
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
        self.shared
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
        self.shared.runtime_api.close(environment, reason).await;
    }

    fn attach(&self, environment: &EnvironmentId, attachment: Attachment) {
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(environment.clone(), attachment);
    }

    /// Starts a contract environment: ready once `GET /healthz` answers 200.
    async fn start_contract(
        &self,
        environment: &EnvironmentId,
        key: &str,
    ) -> hoist_core::Result<()> {
        let port = free_port().map_err(|e| e.with_operation("start environment"))?;
        self.attach(environment, Attachment::Contract(port));
        self.shared
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(environment.clone(), port);
        let signal = self.inner.ready_signal();
        let probe = async {
            while !self.shared.healthy(port).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            signal.ready(environment);
            std::future::pending::<Infallible>().await
        };
        let result = tokio::select! {
            result = self.inner.start(environment, key) => result,
            never = probe => match never {},
        };
        if result.is_err() {
            self.shared
                .ports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(environment);
        }
        result
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl EnvironmentLauncher for EndpointLauncher {
    async fn start(&self, environment: &EnvironmentId, key: &str) -> hoist_core::Result<()> {
        let version = self.shared.registry.get(crate::pool::function_of(key));
        if version.is_some_and(|v| self.shared.protocol(&v.spec) == RuntimeProtocol::Contract) {
            return self.start_contract(environment, key).await;
        }
        let api = self
            .shared
            .runtime_api
            .open_on(
                environment,
                self.shared.runtime_api_bind(),
                self.inner.ready_signal(),
            )
            .await?;
        self.attach(environment, Attachment::Api(api));
        let result = self.inner.start(environment, key).await;
        if result.is_err() {
            self.detach(environment, "the environment failed to start")
                .await;
        }
        result
    }

    async fn stop(&self, environment: &EnvironmentId) {
        self.detach(environment, "the environment was stopped")
            .await;
        self.inner.stop(environment).await;
    }
}
