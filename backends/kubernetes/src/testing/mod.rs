//! A fake Kubernetes API server for pods (feature `testing`).
//!
//! [`FakeApiServer`] is a real HTTP server on loopback that speaks the pod part of the core v1
//! API in Kubernetes JSON: create, get, list and watch (with resource versions, label and field
//! selectors, and 410 `Expired` for resource versions it has compacted away), delete with a
//! grace period, `log` (plain and `follow`), and `exec` over the `v4`/`v5.channel.k8s.io`
//! websocket protocols; and ConfigMaps (create, get, delete, with the 1 MiB limit), which a pod
//! mounting them waits for before it runs and which go with the pod that owns them. Pods move
//! through their phases as a [`PodScript`] says (by default, as their command reads: `sleep 2`,
//! `exit 3`, `trap '' TERM`...) or as the test drives them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use hoist_kube::testing::FakeApiServer;
//! use k8s_openapi::api::core::v1::{ConfigMap, Pod};
//!
//! let server = FakeApiServer::start().await.unwrap();
//! let pods: kube::Api<Pod> = kube::Api::default_namespaced(server.client());
//! assert!(pods.list(&Default::default()).await.unwrap().items.is_empty());
//! # }
//! ```

mod config_maps;
mod http;
mod script;
mod selector;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use tokio::task::JoinHandle;

pub use script::{
    ExecHandler, ExecReply, OnTerm, PodScript, PodUsage, ScriptFn, Trap, simulate_command,
};
use store::{Broadcast, Store};

/// A fake API server on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    store: StoreHandle,
    task: JoinHandle<()>,
}

struct StoreHandle(Store);

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Store::new();
        let app = http::router(store.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeApiServer {
            addr,
            store: StoreHandle(store),
            task,
        })
    }

    fn store(&self) -> &Store {
        &self.store.0
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client configuration pointing at this server, with namespace `default`.
    pub fn config(&self) -> kube::Config {
        let uri = self.url().parse().unwrap_or_default();
        kube::Config::new(uri)
    }

    /// Writes a kubeconfig whose current context is this server (namespace `default`, no
    /// credentials) to `path`, for programs under test that read `KUBECONFIG`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n",
            self.url()
        );
        std::fs::write(path, text)
    }

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).unwrap_or_else(|e| {
            unreachable!("a plain http config for a loopback URL always builds a client: {e}")
        })
    }

    /// Uses `script` for every new pod whose name, or whose hoist task-id label, starts with
    /// `prefix` (earlier prefixes win).
    pub fn script(&self, prefix: impl Into<String>, script: PodScript) {
        let mut scripter = self
            .store()
            .scripter
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        scripter.by_prefix.push((prefix.into(), script));
    }

    /// Chooses the script of every new pod no prefix matched.
    pub fn default_script(&self, choose: impl Fn(&Pod) -> PodScript + Send + Sync + 'static) {
        let mut scripter = self
            .store()
            .scripter
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        scripter.default = Arc::new(choose);
    }

    fn namespace_of(&self, name: &str) -> Option<String> {
        let state = self.store().lock();
        state
            .pods
            .keys()
            .find(|(_, n)| n == name)
            .map(|(ns, _)| ns.clone())
    }

    fn with_ns(&self, name: &str, act: impl FnOnce(&Store, &str) -> bool) -> bool {
        match self.namespace_of(name) {
            Some(ns) => act(self.store(), &ns),
            None => false,
        }
    }

    /// The pod called `name` (in any namespace), as the server holds it.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        let ns = self.namespace_of(name)?;
        self.store().get(&ns, name)
    }

    /// The ConfigMap called `name` (in any namespace), as the server holds it.
    pub fn config_map(&self, name: &str) -> Option<ConfigMap> {
        let state = self.store().lock();
        state
            .config_maps
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, map)| map.clone())
    }

    /// Every ConfigMap, in every namespace.
    pub fn config_maps(&self) -> Vec<ConfigMap> {
        self.store().lock().config_maps.values().cloned().collect()
    }

    /// Gives the pods that start from now on IPs counting up from `network` (default
    /// `10.244.0.0`). A loopback network such as `127.3.0.0` lets a test serve "pods" on their
    /// own addresses.
    pub fn pod_network(&self, network: std::net::Ipv4Addr) {
        self.store().lock().pod_network = network;
    }

    /// Answers every request that creates `resource` (`pods`, or `configmaps` for any
    /// request) with 403 `Forbidden`, as the API server does when the client's service account
    /// lacks the RBAC permission.
    pub fn forbid(&self, resource: &str) {
        self.store().lock().forbidden.insert(resource.to_owned());
    }

    /// Every pod, in every namespace.
    pub fn pods(&self) -> Vec<Pod> {
        let state = self.store().lock();
        state.pods.values().map(|e| e.pod.clone()).collect()
    }

    /// Moves a pod to `Running` (IP assigned, container started). False if there is no such pod.
    pub fn set_running(&self, name: &str) -> bool {
        self.with_ns(name, |s, ns| s.set_running(ns, name))
    }

    /// Keeps a pod `Pending` with the container waiting for `reason` (`ErrImagePull`...).
    pub fn set_waiting(&self, name: &str, reason: &str, message: &str) -> bool {
        self.with_ns(name, |s, ns| s.set_waiting(ns, name, reason, message))
    }

    /// Ends a pod's container with `code`: phase `Succeeded` for 0, `Failed` otherwise.
    pub fn exit(&self, name: &str, code: i32) -> bool {
        let reason = if code == 0 { "Completed" } else { "Error" };
        self.with_ns(name, |s, ns| s.set_terminated(ns, name, code, None, reason))
    }

    /// Ends a pod's container as the OOM killer does: exit 137, reason `OOMKilled`, `Failed`.
    pub fn oom_kill(&self, name: &str) -> bool {
        self.with_ns(name, |s, ns| {
            s.set_terminated(ns, name, 137, None, "OOMKilled")
        })
    }

    /// The signals delivered to a pod's main process (by a `kill -N 1` exec'd in it), in order.
    pub fn signals(&self, name: &str) -> Vec<i32> {
        self.entry(name, |e| e.signals.clone()).unwrap_or_default()
    }

    /// Reads the entry of the pod `name` (in any namespace).
    fn entry<T>(&self, name: &str, read: impl FnOnce(&store::Entry) -> T) -> Option<T> {
        let state = self.store().lock();
        state
            .pods
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, e)| read(e))
    }

    /// Stops serving `metrics.k8s.io`, as a cluster without metrics-server: its paths answer
    /// 404 like any unknown path.
    pub fn without_metrics_api(&self) {
        self.store().lock().metrics_api = false;
    }

    /// The terminal sizes (rows, columns) interactive sessions were resized to, in order.
    pub fn resizes(&self) -> Vec<(u16, u16)> {
        self.store().lock().resizes.clone()
    }

    /// What a pod has printed so far.
    pub fn pod_log(&self, name: &str) -> String {
        self.entry(name, |e| e.log.clone()).unwrap_or_default()
    }

    /// Appends `text` to a pod's log.
    pub fn append_log(&self, name: &str, text: &str) -> bool {
        self.with_ns(name, |s, ns| s.append_log(ns, name, text))
    }

    /// Compacts the history: every open watch ends with a 410 `Expired` error event, and every
    /// watch from an older resource version gets one at once.
    pub fn expire_watches(&self) {
        self.store().expire();
    }

    /// Ends every open watch stream without an error, as a dropped connection does.
    pub fn disconnect_watches(&self) {
        let _ = self.store().events.send(Broadcast::Disconnect);
    }

    /// How many requests of `kind` (`create`, `get`, `list`, `watch`, `delete`, `log`, `exec`,
    /// `configmap-create`, `configmap-get`, `configmap-delete`)
    /// the server has answered.
    pub fn requests(&self, kind: &str) -> u64 {
        self.store().lock().requests.get(kind).copied().unwrap_or(0)
    }
}
