//! The driver's Prometheus metrics ([`MesosDriver::metrics`](super::MesosDriver::metrics)):
//! what it told the agent and what the agent acknowledged, and how often the link broke.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and a gauge, made once; recording is an atomic operation.
#[derive(Debug, Clone, Default)]
pub(crate) struct DriverMetrics {
    pub(crate) updates_sent: Counter,
    pub(crate) updates_acknowledged: Counter,
    pub(crate) updates_unacknowledged: Gauge,
    pub(crate) resubscriptions: Counter,
    pub(crate) disconnections: Counter,
}

impl DriverMetrics {
    /// Registers the metrics under `hoist_mesos_`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = DriverMetrics::default();
        let mesos = registry.sub_registry_with_prefix("hoist_mesos");
        mesos.register(
            "updates_sent",
            "UPDATE calls sent to the agent, resends included",
            metrics.updates_sent.clone(),
        );
        mesos.register(
            "updates_acknowledged",
            "Status updates the agent acknowledged",
            metrics.updates_acknowledged.clone(),
        );
        mesos.register(
            "updates_unacknowledged",
            "Status updates waiting for the agent's acknowledgement",
            metrics.updates_unacknowledged.clone(),
        );
        mesos.register(
            "resubscriptions",
            "SUBSCRIBE calls after the first subscription",
            metrics.resubscriptions.clone(),
        );
        mesos.register(
            "agent_disconnections",
            "Times the subscription to the agent was lost",
            metrics.disconnections.clone(),
        );
        metrics
    }
}
