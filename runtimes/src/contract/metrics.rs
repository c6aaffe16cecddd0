//! The contract's Prometheus metrics, in a registry of their own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The label set: the HTTP method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// `function_calls_total`, `function_failures_total` (timeouts included) and
/// `function_duration_seconds`, each labelled by `method`.
#[derive(Debug)]
pub struct ContractMetrics {
    registry: Registry,
    calls: Family<MethodLabel, Counter>,
    failures: Family<MethodLabel, Counter>,
    duration: Family<MethodLabel, Histogram, fn() -> Histogram>,
}

impl Default for ContractMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<MethodLabel, Counter>::default();
        let failures = Family::<MethodLabel, Counter>::default();
        let duration = Family::<MethodLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register(
            "function_calls",
            "Number of calls to the function",
            calls.clone(),
        );
        registry.register(
            "function_failures",
            "Number of failed calls, timeouts included",
            failures.clone(),
        );
        registry.register(
            "function_duration_seconds",
            "Duration of function calls",
            duration.clone(),
        );
        ContractMetrics {
            registry,
            calls,
            failures,
            duration,
        }
    }
}

impl ContractMetrics {
    /// Records one call.
    pub fn record(&self, method: &str, seconds: f64, failed: bool) {
        let label = MethodLabel {
            method: method.to_owned(),
        };
        self.calls.get_or_create(&label).inc();
        if failed {
            self.failures.get_or_create(&label).inc();
        }
        self.duration.get_or_create(&label).observe(seconds);
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The content type of [`ContractMetrics::encode`].
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
