//! Resource usage from the resource metrics API (`metrics.k8s.io/v1beta1`, served by
//! metrics-server): a pod's `PodMetrics` gives each container's CPU use (a rate, in cores) and
//! working-set memory over a short window. See
//! <https://github.com/kubernetes-sigs/metrics-server/blob/master/docs/api.md>.

use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use hoist_core::observe::{ResourceUsage, UsageStream};
use hoist_core::{ContainerId, Error, ErrorKind, Result};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use super::KubeContainerizer;
use super::pod_state::exit_status;
use crate::render::MAIN_CONTAINER;

/// The group and version of the resource metrics API.
const METRICS_API: &str = "metrics.k8s.io/v1beta1";

/// The message of the API server's 404 for a path it does not serve (a group not installed),
/// as opposed to a 404 for one object.
const NO_SUCH_RESOURCE: &str = "the server could not find the requested resource";

impl KubeContainerizer {
    /// [`Containerizer::stats`](hoist_core::Containerizer::stats): polls the pod's
    /// `PodMetrics` every `interval` until the pod has ended. A pod metrics-server has no sample
    /// of yet (it scrapes every 15 s or so) yields nothing until it has one; a cluster without
    /// the API is [`ErrorKind::Unavailable`].
    pub(super) async fn pod_stats(
        &self,
        id: &ContainerId,
        interval: Duration,
    ) -> Result<UsageStream> {
        let name = id.as_str().to_owned();
        if self.local().ended.contains_key(&name) {
            return Err(
                Error::new(ErrorKind::InvalidState, "the container has exited")
                    .with_operation("stats")
                    .with_context("container", id),
            );
        }
        let client = self.api.clone().into_client();
        let served = self
            .request("stats", &name, client.list_api_group_resources(METRICS_API))
            .await;
        match served {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the cluster does not serve {METRICS_API} (is metrics-server installed?)"
                    ),
                )
                .with_operation("stats")
                .with_context("container", id));
            }
            Err(e) => return Err(e),
        }
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
            "pods",
        );
        let metrics: Api<DynamicObject> =
            Api::namespaced_with(client, &self.config.namespace, &resource);
        let pods = self.clone();
        let interval = interval.max(Duration::from_millis(10));
        let stream = futures::stream::unfold(
            (pods, metrics, name, true),
            move |(pods, metrics, name, first)| async move {
                let mut first = first;
                loop {
                    if !first {
                        tokio::time::sleep(interval).await;
                    }
                    first = false;
                    match pods.sample(&metrics, &name).await {
                        Sample::Usage(usage) => {
                            return Some((Ok(*usage), (pods, metrics, name, false)));
                        }
                        Sample::NotYet => continue,
                        Sample::Ended => return None,
                        // One error, then the stream ends (an empty name is ended).
                        Sample::Failed(e) => {
                            return Some((Err(e), (pods, metrics, String::new(), false)));
                        }
                    }
                }
            },
        );
        Ok(stream.boxed())
    }

    /// One poll: the pod's state, then its metrics.
    async fn sample(&self, metrics: &Api<DynamicObject>, name: &str) -> Sample {
        if name.is_empty() || self.local().ended.contains_key(name) {
            return Sample::Ended;
        }
        match self.get("stats", name).await {
            Ok(Some(pod)) if exit_status(&pod, false).is_none() => {}
            Ok(_) => return Sample::Ended,
            Err(e) => return Sample::Failed(e),
        }
        let object = match self.request("stats", name, metrics.get_opt(name)).await {
            Ok(Some(object)) => object,
            Ok(None) => return Sample::NotYet,
            Err(e) if e.kind() == ErrorKind::NotFound && e.message().contains(NO_SUCH_RESOURCE) => {
                return Sample::Failed(e);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Sample::NotYet,
            Err(e) => return Sample::Failed(e),
        };
        match usage_of(&object.data) {
            Some(usage) => Sample::Usage(Box::new(usage)),
            None => Sample::Failed(
                Error::new(
                    ErrorKind::Backend,
                    format!(
                        "the {METRICS_API} answer has no usage for container `{MAIN_CONTAINER}`"
                    ),
                )
                .with_operation("stats")
                .with_context("container", name),
            ),
        }
    }
}

enum Sample {
    Usage(Box<ResourceUsage>),
    NotYet,
    Ended,
    Failed(Error),
}

/// The main container's usage in a `PodMetrics` body: CPU as a percentage of one core, memory
/// as the working set (what the kubelet's eviction and a memory limit count).
fn usage_of(data: &serde_json::Value) -> Option<ResourceUsage> {
    let containers = data.get("containers")?.as_array()?;
    let main = containers
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(MAIN_CONTAINER))
        .or_else(|| containers.first())?;
    let usage = main.get("usage")?;
    let cpu = usage.get("cpu").and_then(|q| q.as_str()).and_then(quantity);
    let memory = usage
        .get("memory")
        .and_then(|q| q.as_str())
        .and_then(quantity);
    if cpu.is_none() && memory.is_none() {
        return None;
    }
    let mut sample = ResourceUsage::now();
    if let Some(stamp) = data
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
    {
        sample.time = Some(SystemTime::from(stamp));
    }
    sample.cpu.percent = cpu.map(|cores| cores * 100.0);
    sample.memory.usage = memory.map(|bytes| bytes.round() as u64);
    Some(sample)
}

/// A Kubernetes quantity (`250m`, `1234n`, `9564Ki`, `1.5Gi`, `2e3`) as a number.
pub(crate) fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Pi" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "Ei" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_the_api_writes_them() {
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("1500000n"), Some(0.0015));
        assert_eq!(quantity("9564Ki"), Some(9564.0 * 1024.0));
        assert_eq!(quantity("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("2e3"), Some(2000.0));
        assert_eq!(quantity("3"), Some(3.0));
        assert_eq!(quantity("12Qi"), None);
        assert_eq!(quantity("-1"), None);
        assert_eq!(quantity(""), None);
    }

    #[test]
    fn pod_metrics_become_a_sample() {
        let body = serde_json::json!({
            "timestamp": "2026-12-03T10:00:00Z",
            "window": "10s",
            "containers": [
                { "name": "sidecar", "usage": { "cpu": "1", "memory": "1Mi" } },
                { "name": MAIN_CONTAINER, "usage": { "cpu": "250m", "memory": "2048Ki" } },
            ],
        });
        let sample = usage_of(&body).unwrap();
        assert_eq!(sample.cpu.percent, Some(25.0));
        assert_eq!(sample.memory.usage, Some(2 * 1024 * 1024));
        assert_eq!(sample.measured(), vec!["cpu.percent", "memory.usage"]);
        assert!(usage_of(&serde_json::json!({ "containers": [] })).is_none());
    }
}
