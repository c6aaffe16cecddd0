//! The fake API server's state: pods, resource versions, the event history watches replay, and
//! what each pod's script says it does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{broadcast, watch};

use super::script::{OnTerm, PodScript, Scripter, Trap};

/// A watch event type, as it appears on the wire (`ADDED`, `MODIFIED`, `DELETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one pod, at one resource version.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) kind: EventType,
    pub(crate) pod: Pod,
}

/// What reaches open watch streams: a change, or an order to end the stream.
#[derive(Debug, Clone)]
pub(crate) enum Broadcast {
    Event(Box<Event>),
    /// End every open watch with a 410 `Expired` error event.
    Expire,
    /// End every open watch without an error, as a dropped connection does.
    Disconnect,
}

pub(crate) struct Entry {
    pub(crate) pod: Pod,
    pub(crate) script: PodScript,
    pub(crate) log: String,
    pub(crate) log_tx: watch::Sender<usize>,
    /// The signals delivered to its main process, in order.
    pub(crate) signals: Vec<i32>,
}

pub(crate) struct State {
    pub(crate) rv: u64,
    /// Watches from a resource version below this are answered with 410 `Expired`.
    pub(crate) compacted: u64,
    pub(crate) pods: BTreeMap<(String, String), Entry>,
    pub(crate) config_maps: BTreeMap<(String, String), ConfigMap>,
    /// Resources the client may not touch (its account lacks the RBAC permission).
    pub(crate) forbidden: std::collections::BTreeSet<String>,
    pub(crate) history: Vec<Event>,
    pub(crate) next_ip: u32,
    /// Pod IPs are this address plus a counter.
    pub(crate) pod_network: std::net::Ipv4Addr,
    pub(crate) next_uid: u64,
    pub(crate) requests: BTreeMap<String, u64>,
    /// Whether `metrics.k8s.io` is served (a cluster with metrics-server).
    pub(crate) metrics_api: bool,
    /// The terminal sizes interactive sessions were resized to, in order.
    pub(crate) resizes: Vec<(u16, u16)>,
}

impl State {
    /// A fresh object uid.
    pub(crate) fn new_uid(&mut self) -> String {
        self.next_uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_uid)
    }
}

/// Shared state behind the fake API server.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Mutex<State>>,
    pub(crate) events: broadcast::Sender<Broadcast>,
    pub(crate) scripter: Arc<Mutex<Scripter>>,
    /// Bumped whenever a ConfigMap is created or deleted.
    config_map_changes: Arc<watch::Sender<u64>>,
}

/// The newest history the fake keeps; older entries are compacted away (and expire watches).
const HISTORY_LIMIT: usize = 10_000;

impl Store {
    pub(crate) fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Store {
            inner: Arc::new(Mutex::new(State {
                rv: 1000,
                compacted: 0,
                pods: BTreeMap::new(),
                config_maps: BTreeMap::new(),
                forbidden: std::collections::BTreeSet::new(),
                history: Vec::new(),
                next_ip: 1,
                pod_network: std::net::Ipv4Addr::new(10, 244, 0, 0),
                next_uid: 1,
                requests: BTreeMap::new(),
                metrics_api: true,
                resizes: Vec::new(),
            })),
            events,
            scripter: Arc::new(Mutex::new(Scripter::default())),
            config_map_changes: Arc::new(watch::channel(0).0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn script_for(&self, pod: &Pod) -> PodScript {
        let scripter = self.scripter.lock().unwrap_or_else(|e| e.into_inner());
        scripter.script_for(pod)
    }

    /// Records a change: bumps the resource version, stamps the pod, keeps history and tells
    /// watchers. Must be called with the state locked.
    pub(crate) fn record(&self, state: &mut State, kind: EventType, pod: &mut Pod) {
        state.rv += 1;
        pod.metadata.resource_version = Some(state.rv.to_string());
        let event = Event {
            rv: state.rv,
            kind,
            pod: pod.clone(),
        };
        state.history.push(event.clone());
        if state.history.len() > HISTORY_LIMIT {
            let drop = state.history.len() - HISTORY_LIMIT;
            state.compacted = state.history[drop - 1].rv;
            state.history.drain(..drop);
        }
        let _ = self.events.send(Broadcast::Event(Box::new(event)));
    }

    /// Applies `change` to the pod and records a MODIFIED event; false if there is no such pod.
    pub(crate) fn modify(&self, ns: &str, name: &str, change: impl FnOnce(&mut Pod)) -> bool {
        let mut state = self.lock();
        let key = (ns.to_owned(), name.to_owned());
        let Some(entry) = state.pods.get_mut(&key) else {
            return false;
        };
        let mut pod = entry.pod.clone();
        change(&mut pod);
        self.record(&mut state, EventType::Modified, &mut pod);
        if let Some(entry) = state.pods.get_mut(&key) {
            entry.pod = pod;
        }
        true
    }

    /// Removes the pod and records a DELETED event. As the garbage collector does, the
    /// ConfigMaps the pod owns go with it.
    pub(crate) fn remove(&self, ns: &str, name: &str) -> Option<Pod> {
        let mut state = self.lock();
        let entry = state.pods.remove(&(ns.to_owned(), name.to_owned()))?;
        let mut pod = entry.pod;
        self.record(&mut state, EventType::Deleted, &mut pod);
        let uid = pod.metadata.uid.clone();
        state.config_maps.retain(|(map_ns, _), map| {
            let owned = map
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.kind == "Pod" && Some(&owner.uid) == uid.as_ref());
            map_ns != ns || !owned
        });
        drop(state);
        // Also wakes a start waiting for this pod's ConfigMaps, to see the pod gone.
        self.config_maps_changed();
        Some(pod)
    }

    /// Tells pods waiting for their ConfigMaps to look again.
    pub(crate) fn config_maps_changed(&self) {
        self.config_map_changes.send_modify(|n| *n += 1);
    }

    /// Waits, as the kubelet does before starting a pod's containers, until every ConfigMap
    /// the pod mounts exists; false if the pod is deleted first.
    async fn config_maps_mounted(&self, ns: &str, name: &str) -> bool {
        let mut changes = self.config_map_changes.subscribe();
        loop {
            {
                let state = self.lock();
                let Some(entry) = state.pods.get(&(ns.to_owned(), name.to_owned())) else {
                    return false;
                };
                let volumes = entry
                    .pod
                    .spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten());
                let missing = volumes.filter_map(|v| v.config_map.as_ref()).any(|c| {
                    !state
                        .config_maps
                        .contains_key(&(ns.to_owned(), c.name.clone()))
                });
                if !missing {
                    return true;
                }
            }
            if changes.changed().await.is_err() {
                return false;
            }
        }
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<Pod> {
        let state = self.lock();
        state
            .pods
            .get(&(ns.to_owned(), name.to_owned()))
            .map(|e| e.pod.clone())
    }

    /// Moves the pod to Running with an IP, a started container and the `Ready` condition.
    pub(crate) fn set_running(&self, ns: &str, name: &str) -> bool {
        let ip = {
            let mut state = self.lock();
            state.next_ip += 1;
            std::net::Ipv4Addr::from(u32::from(state.pod_network).wrapping_add(state.next_ip))
                .to_string()
        };
        self.modify(ns, name, |pod| {
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.phase = Some("Running".into());
            if status.pod_ip.is_none() {
                status.pod_ip = Some(ip.clone());
                status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP { ip }]);
            }
            status.host_ip = Some("192.168.49.2".into());
            status.start_time.get_or_insert_with(now);
            for c in container_statuses(pod) {
                c.ready = true;
                c.started = Some(true);
                c.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(now()),
                    }),
                    ..ContainerState::default()
                });
            }
        })
    }

    /// Terminates the pod's containers with `code` (and `reason`), setting the phase to
    /// `Succeeded` or `Failed` as the kubelet does under `restartPolicy: Never`.
    pub(crate) fn set_terminated(
        &self,
        ns: &str,
        name: &str,
        code: i32,
        signal: Option<i32>,
        reason: &str,
    ) -> bool {
        let changed = self.modify(ns, name, |pod| {
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.phase = Some(if code == 0 { "Succeeded" } else { "Failed" }.into());
            for c in container_statuses(pod) {
                let started_at = c
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone());
                c.ready = false;
                c.started = Some(false);
                c.state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        signal,
                        reason: Some(reason.to_owned()),
                        started_at,
                        finished_at: Some(now()),
                        container_id: Some(format!("containerd://{name}")),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                });
            }
        });
        if changed {
            let state = self.lock();
            if let Some(entry) = state.pods.get(&(ns.to_owned(), name.to_owned())) {
                entry.log_tx.send_modify(|n| *n += 1);
            }
        }
        changed
    }

    /// Sets a pending pod's waiting reason (`ContainerCreating`, `ErrImagePull`...).
    pub(crate) fn set_waiting(&self, ns: &str, name: &str, reason: &str, message: &str) -> bool {
        self.modify(ns, name, |pod| {
            let status = pod.status.get_or_insert_with(PodStatus::default);
            status.phase = Some("Pending".into());
            for c in container_statuses(pod) {
                c.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.to_owned()),
                        message: (!message.is_empty()).then(|| message.to_owned()),
                    }),
                    ..ContainerState::default()
                });
            }
        })
    }

    /// Appends output to the pod's log.
    pub(crate) fn append_log(&self, ns: &str, name: &str, text: &str) -> bool {
        let mut state = self.lock();
        match state.pods.get_mut(&(ns.to_owned(), name.to_owned())) {
            Some(entry) => {
                entry.log.push_str(text);
                entry.log_tx.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }

    /// Delivers `signal` to the pod's main process, as `kill -N 1` in the pod does: its trap
    /// runs (printing, or exiting), KILL ends it with 137, and any other signal does nothing.
    /// Every delivery is recorded (`FakeApiServer::signals`).
    pub(crate) fn deliver_signal(&self, ns: &str, name: &str, signal: i32) {
        let trap = {
            let mut state = self.lock();
            let Some(entry) = state.pods.get_mut(&(ns.to_owned(), name.to_owned())) else {
                return;
            };
            entry.signals.push(signal);
            entry.script.traps.get(&signal).cloned()
        };
        match (signal, trap) {
            (9, _) => {
                self.set_terminated(ns, name, 137, Some(9), "Error");
            }
            (_, Some(Trap::Print(text))) => {
                self.append_log(ns, name, &text);
            }
            (_, Some(Trap::Exit(code))) => {
                let reason = if code == 0 { "Completed" } else { "Error" };
                self.set_terminated(ns, name, code, None, reason);
            }
            (_, Some(Trap::Ignore) | None) => {}
        }
    }

    /// Forgets history up to now: watches from an older resource version now get 410.
    pub(crate) fn expire(&self) {
        let mut state = self.lock();
        state.compacted = state.rv;
        state.history.clear();
        let _ = self.events.send(Broadcast::Expire);
    }

    pub(crate) fn count(&self, what: &str) {
        *self.lock().requests.entry(what.to_owned()).or_default() += 1;
    }

    /// Starts what the pod's script says happens after create.
    pub(crate) fn run_script(&self, ns: String, name: String, script: PodScript) {
        let store = self.clone();
        tokio::spawn(async move {
            let Some(start_after) = script.start_after else {
                return;
            };
            if !start_after.is_zero() {
                tokio::time::sleep(start_after).await;
            }
            if !store.config_maps_mounted(&ns, &name).await || !store.set_running(&ns, &name) {
                return;
            }
            if !script.output.is_empty() {
                store.append_log(&ns, &name, &script.output);
            }
            if let Some((after, code)) = script.exit_after {
                tokio::time::sleep(after).await;
                let reason = if code == 0 { "Completed" } else { "Error" };
                store.set_terminated(&ns, &name, code, None, reason);
            }
        });
    }

    /// Graceful deletion: mark the pod, then end it as its script says and remove it.
    pub(crate) fn delete(&self, ns: &str, name: &str, grace: Duration) -> Option<Pod> {
        let (pod, script) = {
            let state = self.lock();
            let entry = state.pods.get(&(ns.to_owned(), name.to_owned()))?;
            (entry.pod.clone(), entry.script.clone())
        };
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running || grace.is_zero() {
            if running {
                self.set_terminated(ns, name, 137, None, "Error");
            }
            return self.remove(ns, name);
        }
        if pod.metadata.deletion_timestamp.is_none() {
            self.modify(ns, name, |pod| {
                pod.metadata.deletion_timestamp = Some(now());
                pod.metadata.deletion_grace_period_seconds = Some(grace.as_secs() as i64);
            });
        }
        match script.on_term {
            OnTerm::Exit(code) => {
                self.set_terminated(
                    ns,
                    name,
                    code,
                    None,
                    if code == 0 { "Completed" } else { "Error" },
                );
                self.remove(ns, name);
            }
            OnTerm::Ignore => {
                let store = self.clone();
                let (ns, name) = (ns.to_owned(), name.to_owned());
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    store.set_terminated(&ns, &name, 137, None, "Error");
                    store.remove(&ns, &name);
                });
            }
        }
        self.get(ns, name).or(Some(pod))
    }
}

pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}

fn container_statuses(pod: &mut Pod) -> &mut Vec<ContainerStatus> {
    let names: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let statuses = status.container_statuses.get_or_insert_with(Vec::new);
    if statuses.is_empty() {
        for (name, image) in names {
            statuses.push(ContainerStatus {
                name,
                image,
                image_id: String::new(),
                ..ContainerStatus::default()
            });
        }
    }
    statuses
}
