//! The launcher that prepares each environment's endpoint (a Runtime API endpoint or a
//! contract port) before its task starts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hoist_core::scheduler::EnvironmentId;

use std::convert::Infallible;

use crate::config::RuntimeProtocol;
use crate::launcher::{EnvironmentLauncher, ExecutorLauncher};
use crate::pool::FunctionKey;

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
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The `FUNC_PORT` of contract runtimes in environments with a network of their own (the
/// port Kubeless's runtimes serve on).
pub(super) const CONTRACT_PORT: u16 = 8080;

impl EndpointLauncher {
    /// Forgets the environment's endpoint and fails what it still had running.
    async fn detach(&self, environment: &EnvironmentId, reason: &str) {
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(environment);
        self.shared.forget_contract(environment);
        self.shared.runtime_api.close(environment, reason).await;
    }

    fn attach(&self, environment: &EnvironmentId, attachment: Attachment) {
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(environment.clone(), attachment);
    }

    /// The address of `environment`'s container, once the backend reports one.
    async fn container_address(&self, environment: &EnvironmentId) -> Option<IpAddr> {
        let executor = self.inner.executor();
        let container = super::logs::container_of(executor, environment)?;
        let info = executor.containerizer().inspect(&container).await.ok()?;
        info.addresses.into_iter().find(|ip| !ip.is_unspecified())
    }

    /// Starts a contract environment: ready once `GET /healthz` answers 200, on the host's
    /// loopback, or on the container's own address when it has a network of its own.
    async fn start_contract(
        &self,
        environment: &EnvironmentId,
        key: &FunctionKey,
        own_network: bool,
    ) -> hoist_core::Result<()> {
        let port = if own_network {
            CONTRACT_PORT
        } else {
            free_port().map_err(|e| e.with_operation("start environment"))?
        };
        self.attach(environment, Attachment::Contract(port));
        let signal = self.inner.ready_signal();
        let probe = async {
            let mut target = (!own_network).then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            loop {
                if target.is_none() {
                    target = self
                        .container_address(environment)
                        .await
                        .map(|ip| SocketAddr::new(ip, port));
                }
                if let Some(address) = target
                    && self.shared.healthy(address).await
                {
                    self.shared
                        .contract_addresses
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(environment.clone(), address);
                    signal.ready(environment);
                    return std::future::pending::<Infallible>().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // On failure the pool stops the environment, which detaches (forgets) it.
        tokio::select! {
            result = self.inner.start(environment, key) => result,
            never = probe => match never {},
        }
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
    async fn start(
        &self,
        environment: &EnvironmentId,
        key: &FunctionKey,
    ) -> hoist_core::Result<()> {
        let version = self.shared.registry.version(key.function(), key.version());
        if let Some(version) = &version
            && self.shared.protocol(&version.spec) == RuntimeProtocol::Contract
        {
            let own_network = (self.shared.config.runtimes.get(&version.spec.runtime))
                .is_some_and(|runtime| self.shared.own_network(runtime));
            return self.start_contract(environment, key, own_network).await;
        }
        // A relay keeps the version's spec with the port: a restarted executor re-attaches
        // the environment to the version with the same spec.
        let record = match (&version, self.shared.runtime_api.relay()) {
            (Some(version), Some(_)) => serde_json::to_string(&version.spec).unwrap_or_default(),
            _ => String::new(),
        };
        let api = self
            .shared
            .runtime_api
            .open_recorded(
                environment,
                self.shared.runtime_api_bind(),
                self.inner.ready_signal(),
                record,
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
