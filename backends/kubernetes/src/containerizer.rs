//! [`KubeContainerizer`]: one pod per container. Exec, logs, resource usage, signals and
//! interactive sessions are in their own modules.

mod exec;
mod logs;
mod pod_state;
mod session;
mod stats;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hoist_core::capabilities::Users;
use hoist_core::observe::UsageStream;
use hoist_core::session::{ExecRequest, ExecSession};
use hoist_core::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer, Error,
    ErrorKind, ExecOutput, ExecutorId, ExitStatus, LogChunks, LogOptions, MappedPort,
    OwnedContainer, Owner, Result,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::config::{HostVolumes, KubeConfig, label_value};
use crate::copy::{CopiedVolume, read_volumes};
use crate::error::{from_kube, timed_out};
use crate::render::{BuildStep, ownership_labels, pod_name, render_pod};
use crate::watch::{Seen, watch_pod};
use pod_state::{exit_status, owner_of, phase, state_of};

const SIGKILL: i32 = 9;

/// Runs each container as a pod with `restartPolicy: Never`, through kube-rs.
///
/// `create` renders and validates the pod and keeps it; `start` submits it. `stop` deletes the
/// pod with the grace period (the kubelet sends TERM, then KILL) and remembers how it ended, so
/// `wait` and `inspect` still answer until `remove`. Waits watch the pod with backoff, surviving
/// expired resource versions and dropped connections. The pod's logs merge stdout and stderr,
/// so every log chunk is reported as stdout.
///
/// ```no_run
/// # async fn run() -> hoist_core::Result<()> {
/// use hoist_core::{ContainerSpec, ContainerizerExt, Owner, TaskId};
/// use hoist_kube::{KubeConfig, KubeContainerizer};
///
/// let client = kube::Client::try_default().await.expect("a kubeconfig or in-cluster config");
/// let pods = KubeContainerizer::new(client, KubeConfig::default());
/// let mut spec = ContainerSpec::command(["sh", "-c", "echo hello"]);
/// spec.image = Some("busybox:1.37".into());
/// let owner = Owner { executor_id: "demo".into(), task_id: TaskId::new("hello") };
/// let status = pods.run_to_completion(&owner, &spec, std::time::Duration::from_secs(60)).await?;
/// assert!(status.success());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KubeContainerizer {
    api: Api<Pod>,
    config_maps: Api<ConfigMap>,
    config: Arc<KubeConfig>,
    local: Arc<Mutex<Local>>,
    salt: Arc<AtomicU64>,
}

/// A pod rendered by `create` and not yet submitted, with the copies of its host volumes.
#[derive(Debug)]
struct Pending {
    owner: Owner,
    pod: Pod,
    copies: Vec<CopiedVolume>,
}

/// What the backend remembers between calls: pods rendered but not yet submitted, pods being
/// stopped, and how stopped (deleted) pods ended.
#[derive(Debug, Default)]
struct Local {
    created: HashMap<String, Pending>,
    stopping: HashSet<String>,
    ended: HashMap<String, (Owner, ExitStatus)>,
}

impl KubeContainerizer {
    /// A backend using `client` (from [`kube::Client::try_default`], a kubeconfig, in-cluster
    /// config, or a test server) and `config`.
    pub fn new(client: kube::Client, config: KubeConfig) -> Self {
        let api = Api::namespaced(client.clone(), &config.namespace);
        let config_maps = Api::namespaced(client, &config.namespace);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        KubeContainerizer {
            api,
            config_maps,
            config: Arc::new(config),
            local: Arc::new(Mutex::new(Local::default())),
            salt: Arc::new(AtomicU64::new(seed)),
        }
    }

    /// A backend for the cluster and user named by the current context of the kubeconfig at
    /// `path`.
    pub async fn from_kubeconfig(path: &std::path::Path, config: KubeConfig) -> Result<Self> {
        let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
            Error::invalid(format!("cannot read kubeconfig {}", path.display()))
                .with_context("path", path.display())
                .with_source(e)
        })?;
        let options = kube::config::KubeConfigOptions::default();
        let kube_config = kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| {
                Error::invalid(format!(
                    "kubeconfig {} has no usable context",
                    path.display()
                ))
                .with_context("path", path.display())
                .with_source(e)
            })?;
        Self::from_kube_config(kube_config, config)
    }

    /// A backend for the cluster this process runs in, from the service account Kubernetes
    /// mounts into every pod (this reads `KUBERNETES_SERVICE_HOST` and `_PORT`, as the caller
    /// asks by calling it).
    pub fn in_cluster(config: KubeConfig) -> Result<Self> {
        let kube_config = kube::Config::incluster().map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                "not running inside a Kubernetes pod",
            )
            .with_source(e)
        })?;
        Self::from_kube_config(kube_config, config)
    }

    /// A backend from a kube client configuration.
    pub fn from_kube_config(kube_config: kube::Config, config: KubeConfig) -> Result<Self> {
        let client = kube::Client::try_from(kube_config).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, "cannot build a Kubernetes client").with_source(e)
        })?;
        Ok(Self::new(client, config))
    }

    /// The configuration in use.
    pub fn config(&self) -> &KubeConfig {
        &self.config
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Like [`Containerizer::create`], with build steps that run first as init containers on a
    /// shared `emptyDir` volume mounted at [`KubeConfig::build_mount`] in every container.
    pub async fn create_with_build(
        &self,
        owner: &Owner,
        spec: &ContainerSpec,
        steps: &[BuildStep],
    ) -> Result<ContainerId> {
        let with_task = |e: Error| {
            e.with_operation("create")
                .with_context("backend", "kubernetes")
                .with_context("task", &owner.task_id)
        };
        self.capabilities().check(spec).map_err(with_task)?;
        let salt = self.salt.fetch_add(1, Ordering::Relaxed);
        let name = pod_name(&self.config.name_prefix, owner.task_id.as_str(), salt);
        let copies = match self.config.host_volumes {
            HostVolumes::HostPath => Vec::new(),
            HostVolumes::Copy => read_volumes(&name, spec)
                .await
                .map_err(|e| e.with_context("task", &owner.task_id))?,
        };
        let pod = render_pod(&self.config, &name, owner, spec, steps, &copies)
            .map_err(|e| e.with_context("task", &owner.task_id))?;
        let pending = Pending {
            owner: owner.clone(),
            pod,
            copies,
        };
        self.local().created.insert(name.clone(), pending);
        Ok(ContainerId::new(name))
    }

    async fn request<T>(
        &self,
        operation: &'static str,
        name: &str,
        call: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Ok(result) => result.map_err(|e| from_kube(e, operation, name)),
            Err(_) => Err(timed_out(operation, name, self.config.request_timeout)),
        }
    }

    async fn get(&self, operation: &'static str, name: &str) -> Result<Option<Pod>> {
        self.request(operation, name, self.api.get_opt(name)).await
    }

    /// Keeps a pod whose submission failed for another `start`, and returns the failure.
    fn keep(&self, name: &str, pending: Pending, err: Error) -> Error {
        self.local().created.insert(name.to_owned(), pending);
        err
    }

    /// Creates the ConfigMaps of the copied volumes of `pod` (submitted for `owner`), owned by
    /// the pod so that Kubernetes deletes them with it.
    async fn create_copies(
        &self,
        pod: &Pod,
        owner: &Owner,
        copies: Vec<CopiedVolume>,
    ) -> Result<()> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(uid) = pod.metadata.uid.clone() else {
            return Err(Error::new(
                ErrorKind::Backend,
                "the API server returned the pod without a uid, so its files cannot be owned by it",
            )
            .with_operation("start")
            .with_context("container", name));
        };
        let pod_reference = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: name.to_owned(),
            uid,
            ..OwnerReference::default()
        };
        for copy in copies {
            let map_name = copy.name.clone();
            let labels = ownership_labels(owner);
            let map = copy.into_config_map(&self.config.namespace, labels, pod_reference.clone());
            self.request(
                "start",
                name,
                self.config_maps.create(&PostParams::default(), &map),
            )
            .await
            .map_err(|e| e.with_context("config_map", &map_name))?;
        }
        Ok(())
    }

    fn exit_of(&self, name: &str, pod: &Pod) -> Option<ExitStatus> {
        let stopped = self.local().stopping.contains(name);
        exit_status(pod, stopped)
    }
}

#[async_trait]
impl Containerizer for KubeContainerizer {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn capabilities(&self) -> Capabilities {
        // Pods have the cluster's network or the node's, run numeric users only, and take
        // everything else a container runtime does.
        let mut capabilities = Capabilities::all();
        capabilities.network_none = false;
        capabilities.network_user = false;
        capabilities.user = Users::Numeric;
        // Resource usage comes from metrics.k8s.io, signals and sessions go through exec.
        capabilities
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        self.create_with_build(owner, spec, &[]).await
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let name = id.as_str();
        let created = self.local().created.remove(name);
        let Some(Pending { owner, pod, copies }) = created else {
            if self.local().ended.contains_key(name) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the container has already exited",
                )
                .with_operation("start")
                .with_context("container", id));
            }
            return match self.get("start", name).await? {
                Some(_) => Ok(()),
                None => Err(Error::not_found("container", id).with_operation("start")),
            };
        };
        let submitted = self
            .request("start", name, self.api.create(&PostParams::default(), &pod))
            .await;
        let submitted = match submitted {
            Ok(submitted) => submitted,
            // A retried start whose first submission reached the server (its answer lost to a
            // timeout) finds its own pod there: that is success.
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                match self.get("start", name).await.ok().flatten() {
                    Some(existing) if owner_of(&existing).is_some_and(|o| o == owner) => existing,
                    _ => return Err(self.keep(name, Pending { owner, pod, copies }, err)),
                }
            }
            Err(err) => return Err(self.keep(name, Pending { owner, pod, copies }, err)),
        };
        if let Err(err) = self.create_copies(&submitted, &owner, copies).await {
            // Without its files the pod would wait for them forever.
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            if let Err(e) = self
                .request("start", name, self.api.delete(name, &params))
                .await
            {
                tracing::warn!(pod = name, error = %e, "could not delete a pod whose files were not copied");
            }
            return Err(err);
        }
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let name = id.as_str();
        {
            let local = self.local();
            if let Some((_, exit)) = local.ended.get(name) {
                return Ok(*exit);
            }
            if local.created.contains_key(name) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the container has not been started",
                )
                .with_operation("wait")
                .with_context("container", id));
            }
        }
        let local = self.local.clone();
        let stopping = |name: &str| {
            local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .stopping
                .contains(name)
        };
        let ended = |name: &str| {
            local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ended
                .get(name)
                .map(|(_, exit)| *exit)
        };
        watch_pod(
            &self.api,
            &self.config,
            name,
            "wait",
            None,
            // How a stop recorded the end wins over what the pod shows: a waiter may see the
            // terminated pod only after the stop that caused it has finished.
            |seen| {
                let pod = match seen {
                    Seen::Pod(pod) => Some(pod),
                    Seen::Gone(pod) => pod.as_ref(),
                };
                ended(name).or_else(|| pod.and_then(|p| exit_status(p, stopping(name))))
            },
        )
        .await
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let name = id.as_str();
        {
            let mut local = self.local();
            if let Some(Pending { owner, .. }) = local.created.remove(name) {
                local
                    .ended
                    .insert(name.to_owned(), (owner, ExitStatus::signal(SIGKILL)));
                return Ok(());
            }
            if local.ended.contains_key(name) {
                return Ok(());
            }
        }
        let Some(pod) = self.get("stop", name).await? else {
            return Err(Error::not_found("container", id).with_operation("stop"));
        };
        let owner = owner_of(&pod).ok_or_else(|| {
            Error::not_found("container", id)
                .with_operation("stop")
                .with_context("why", "the pod carries no hoist owner")
        })?;
        if state_of(&pod) == ContainerState::Exited {
            return Ok(());
        }
        self.local().stopping.insert(name.to_owned());
        let params = DeleteParams {
            grace_period_seconds: Some(grace.as_secs_f64().ceil() as u32),
            ..DeleteParams::default()
        };
        match self
            .request("stop", name, self.api.delete(name, &params))
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                self.local().stopping.remove(name);
                return Err(e);
            }
        }
        let deadline = grace + self.config.stop_slack;
        let mut last = None;
        let watched = tokio::time::timeout(
            deadline,
            watch_pod(
                &self.api,
                &self.config,
                name,
                "stop",
                Some(pod),
                |seen| match seen {
                    Seen::Pod(pod) => {
                        if let Some(exit) = exit_status(pod, true) {
                            last = Some(exit);
                        }
                        None
                    }
                    Seen::Gone(pod) => Some(
                        pod.as_ref()
                            .and_then(|p| exit_status(p, true))
                            .or(last)
                            .unwrap_or(ExitStatus::signal(SIGKILL)),
                    ),
                },
            ),
        )
        .await;
        let mut local = self.local();
        local.stopping.remove(name);
        match watched {
            Ok(Ok(exit)) => {
                local.ended.insert(name.to_owned(), (owner, exit));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the pod was not gone {deadline:?} after its deletion"),
            )
            .with_operation("stop")
            .with_context("container", id)),
        }
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let name = id.as_str();
        {
            let mut local = self.local();
            if local.created.remove(name).is_some() {
                return Ok(());
            }
            local.ended.remove(name);
        }
        let Some(pod) = self.get("remove", name).await? else {
            return Ok(());
        };
        if state_of(&pod) == ContainerState::Running && !force {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "the container is running; remove it with force",
            )
            .with_operation("remove")
            .with_context("container", id));
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match self
            .request("remove", name, self.api.delete(name, &params))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let name = id.as_str();
        {
            let local = self.local();
            if local.created.contains_key(name) {
                return Ok(ContainerInfo::new(id.clone(), ContainerState::Created));
            }
            if let Some((_, exit)) = local.ended.get(name) {
                let mut info = ContainerInfo::new(id.clone(), ContainerState::Exited);
                info.exit = Some(*exit);
                info.details.insert("phase".into(), "Deleted".into());
                return Ok(info);
            }
        }
        let pod = self
            .get("inspect", name)
            .await?
            .ok_or_else(|| Error::not_found("container", id).with_operation("inspect"))?;
        let mut info = ContainerInfo::new(id.clone(), state_of(&pod));
        info.exit = self.exit_of(name, &pod);
        let status = pod.status.as_ref();
        let ip: Option<IpAddr> = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        info.addresses.extend(ip);
        if let Some(main) = pod.spec.as_ref().and_then(|s| s.containers.first()) {
            for port in main.ports.iter().flatten() {
                info.ports.push(MappedPort {
                    container_port: port.container_port as u16,
                    host_port: Some(port.container_port as u16),
                    host_ip: ip,
                    protocol: if port.protocol.as_deref() == Some("UDP") {
                        hoist_core::Protocol::Udp
                    } else {
                        hoist_core::Protocol::Tcp
                    },
                });
            }
        }
        info.details.insert("phase".into(), phase(&pod).to_owned());
        info.details
            .insert("namespace".into(), self.config.namespace.clone());
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            info.details.insert("node".into(), node);
        }
        if let Some(ip) = ip {
            info.details.insert("pod_ip".into(), ip.to_string());
        }
        Ok(info)
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.exec_in_pod(id, argv, timeout).await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        self.log_chunks(id, options).await
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        self.pod_stats(id, interval).await
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        self.signal_pod(id, signal).await
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        self.exec_session(id, request).await
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let selector = format!(
            "{}={}",
            hoist_core::labels::EXECUTOR_ID,
            label_value(executor.as_str())
        );
        let list = self
            .request(
                "list_owned",
                executor.as_str(),
                self.api.list(&ListParams::default().labels(&selector)),
            )
            .await?;
        let local = self.local();
        let mut owned: Vec<OwnedContainer> = list
            .items
            .iter()
            .filter_map(|pod| {
                let owner = owner_of(pod)?;
                let name = pod.metadata.name.clone()?;
                (owner.executor_id == *executor && !local.ended.contains_key(&name)).then(|| {
                    OwnedContainer {
                        id: ContainerId::new(name),
                        owner,
                        state: state_of(pod),
                    }
                })
            })
            .collect();
        for (name, Pending { owner, .. }) in &local.created {
            if owner.executor_id == *executor {
                owned.push(OwnedContainer {
                    id: ContainerId::new(name.clone()),
                    owner: owner.clone(),
                    state: ContainerState::Created,
                });
            }
        }
        for (name, (owner, _)) in &local.ended {
            if owner.executor_id == *executor {
                owned.push(OwnedContainer {
                    id: ContainerId::new(name.clone()),
                    owner: owner.clone(),
                    state: ContainerState::Exited,
                });
            }
        }
        owned.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(owned)
    }
}
