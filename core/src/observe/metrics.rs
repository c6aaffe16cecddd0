//! Prometheus metrics: the engine's own ([`EngineMetrics`], registered in a registry the caller
//! passes to [`ExecutorBuilder::metrics`](crate::ExecutorBuilder::metrics)), and the encoders
//! every program uses to serve `/metrics`.
//!
//! Metrics are kept with the `prometheus-client` crate. Its encoder writes OpenMetrics;
//! [`encode`] writes the Prometheus text format 0.0.4 by default (which `promtool check
//! metrics` and every Prometheus text parser read) and OpenMetrics when the scraper's `Accept`
//! header asks for it, as Prometheus's own scraper does.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::{Error, ErrorKind, Result};
use crate::hook::Phase;
use crate::status::{Reason, TaskState};

/// The content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes `registry` in the format an `Accept` header asks for: OpenMetrics when it names
/// `application/openmetrics-text`, the Prometheus text format 0.0.4 otherwise. Returns the
/// content type and the body.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
/// use prometheus_client::registry::Registry;
/// use hoist_core::observe::metrics::{encode, TEXT_CONTENT_TYPE};
///
/// let mut registry = Registry::default();
/// let calls = Counter::<u64>::default();
/// registry.register("calls", "Calls made", calls.clone());
/// calls.inc();
/// let (content_type, body) = encode(&registry, None).unwrap();
/// assert_eq!(content_type, TEXT_CONTENT_TYPE);
/// assert_eq!(body, "# HELP calls_total Calls made.\n# TYPE calls_total counter\ncalls_total 1\n");
/// ```
pub fn encode(registry: &Registry, accept: Option<&str>) -> Result<(&'static str, String)> {
    let mut openmetrics = String::new();
    prometheus_client::encoding::text::encode(&mut openmetrics, registry).map_err(|e| {
        Error::new(ErrorKind::Backend, "could not encode the metrics").with_source(e)
    })?;
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        Ok((OPENMETRICS_CONTENT_TYPE, openmetrics))
    } else {
        Ok((TEXT_CONTENT_TYPE, openmetrics_to_text(&openmetrics)))
    }
}

/// Rewrites OpenMetrics text as the Prometheus text format 0.0.4: a counter's `# HELP` and
/// `# TYPE` lines name it with its `_total` suffix (as its samples do), `_created` samples,
/// `# UNIT` lines, exemplars and `# EOF` go, and OpenMetrics-only types become gauges or
/// untyped.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut counters: Vec<String> = Vec::new();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => {
                    let total = with_total(name);
                    counters.push(name.to_owned());
                    (total, "counter")
                }
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                "info" | "stateset" => (name.to_owned(), "gauge"),
                _ => (name.to_owned(), "untyped"),
            };
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // A family's HELP comes before its TYPE: counters' HELP lines are renamed in a
            // second pass, once every TYPE has been seen.
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {name} {help}\n"));
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
        if sample_name.ends_with("_created")
            && counters
                .iter()
                .any(|c| sample_name.strip_suffix("_created") == Some(c.as_str()))
        {
            continue;
        }
        // An exemplar follows ` # `.
        let sample = line.split(" # ").next().unwrap_or(line);
        out.push_str(sample);
        out.push('\n');
    }
    rename_counter_help(&out, &counters)
}

/// `name_total` unless it already ends so.
fn with_total(name: &str) -> String {
    if name.ends_with("_total") {
        name.to_owned()
    } else {
        format!("{name}_total")
    }
}

/// Renames the `# HELP` line of every counter to its `_total` name.
fn rename_counter_help(text: &str, counters: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + counters.len() * 8);
    for line in text.lines() {
        match line.strip_prefix("# HELP ") {
            Some(rest) => {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.iter().any(|c| c == name) {
                    with_total(name)
                } else {
                    name.to_owned()
                };
                out.push_str(&format!("# HELP {name} {help}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
    phase: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    state: &'static str,
    reason: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from a millisecond to a minute: launch steps and hooks.
fn seconds_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

/// The engine's metrics (all under the `hoist_` prefix):
///
/// | metric | type | labels |
/// |---|---|---|
/// | `hoist_tasks` | gauge | `state` (starting, running, killing) |
/// | `hoist_task_launches_total` | counter | |
/// | `hoist_task_launch_duration_seconds` | histogram | `phase` (pre_create, create, pre_run, start, post_run) |
/// | `hoist_hook_duration_seconds` | histogram | `hook`, `phase`, `outcome` (ok, failed) |
/// | `hoist_health_checks_total` | counter | `result` (healthy, unhealthy) |
/// | `hoist_task_terminations_total` | counter | `state`, `reason` |
///
/// The series the engine updates on every task are made once, when the executor is built, so
/// recording one is a few atomic operations and never an allocation.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    launches: Counter,
    starting: Gauge,
    running: Gauge,
    killing: Gauge,
    steps: [Histogram; STEPS.len()],
    healthy: Counter,
    unhealthy: Counter,
    hook_duration: Histograms<HookLabels>,
    terminations: Family<EndLabels, Counter>,
}

/// The launch steps, in order.
const STEPS: [&str; 5] = ["pre_create", "create", "pre_run", "start", "post_run"];

/// The series of one hook: its duration in each phase, succeeded or failed.
#[derive(Debug, Clone)]
pub(crate) struct HookSeries {
    by_phase: Vec<[Histogram; 2]>,
}

impl HookSeries {
    pub(crate) fn observe(&self, phase: Phase, ok: bool, took: Duration) {
        self.by_phase[phase as usize][usize::from(!ok)].observe(took.as_secs_f64());
    }
}

impl EngineMetrics {
    /// Makes the engine's metrics and registers them in `registry` under the `hoist` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let tasks = Family::<StateLabel, Gauge>::default();
        let launch_duration: Histograms<PhaseLabel> =
            Family::new_with_constructor(seconds_histogram);
        let health_checks = Family::<ResultLabel, Counter>::default();
        let gauge = |state: TaskState| {
            tasks.get_or_create_owned(&StateLabel {
                state: state.as_str(),
            })
        };
        let result =
            |result: &'static str| health_checks.get_or_create_owned(&ResultLabel { result });
        let metrics = EngineMetrics {
            launches: Counter::default(),
            starting: gauge(TaskState::Starting),
            running: gauge(TaskState::Running),
            killing: gauge(TaskState::Killing),
            steps: STEPS.map(|phase| launch_duration.get_or_create_owned(&PhaseLabel { phase })),
            healthy: result("healthy"),
            unhealthy: result("unhealthy"),
            hook_duration: Family::new_with_constructor(seconds_histogram),
            terminations: Family::default(),
        };
        let hoist = registry.sub_registry_with_prefix("hoist");
        hoist.register("tasks", "Live tasks by state", tasks);
        hoist.register(
            "task_launches",
            "Tasks accepted for launch",
            metrics.launches.clone(),
        );
        hoist.register(
            "task_launch_duration_seconds",
            "Time each launch step took",
            launch_duration,
        );
        hoist.register(
            "hook_duration_seconds",
            "Time each hook took in each phase",
            metrics.hook_duration.clone(),
        );
        hoist.register(
            "health_checks",
            "Health check results the monitor reported",
            health_checks,
        );
        hoist.register(
            "task_terminations",
            "Tasks that reached a terminal state, by state and reason",
            metrics.terminations.clone(),
        );
        metrics
    }

    /// The series of the hook named `hook`, made now so that recording is cheap.
    pub(crate) fn hook_series(&self, hook: &str) -> HookSeries {
        let phases = [
            Phase::PreCreate,
            Phase::PreRun,
            Phase::PostRun,
            Phase::PreStop,
            Phase::PostStop,
        ];
        let by_phase = phases
            .iter()
            .map(|phase| {
                ["ok", "failed"].map(|outcome| {
                    self.hook_duration.get_or_create_owned(&HookLabels {
                        hook: hook.to_owned(),
                        phase: phase.as_str(),
                        outcome,
                    })
                })
            })
            .collect();
        HookSeries { by_phase }
    }

    pub(crate) fn launched(&self) {
        self.launches.inc();
    }

    fn gauge(&self, state: TaskState) -> Option<&Gauge> {
        match state {
            TaskState::Starting => Some(&self.starting),
            TaskState::Running => Some(&self.running),
            TaskState::Killing => Some(&self.killing),
            _ => None,
        }
    }

    /// A task moved from `from` (none for a new task) to `to`.
    pub(crate) fn moved(&self, from: Option<TaskState>, to: TaskState, reason: Option<Reason>) {
        if from == Some(to) {
            return;
        }
        if let Some(gauge) = from.and_then(|from| self.gauge(from)) {
            gauge.dec();
        }
        match self.gauge(to) {
            Some(gauge) => {
                gauge.inc();
            }
            None => {
                self.terminations
                    .get_or_create(&EndLabels {
                        state: to.as_str(),
                        reason: reason.map_or("none", Reason::as_str),
                    })
                    .inc();
            }
        }
    }

    /// Launch step `index` of [`STEPS`] took `took`.
    pub(crate) fn step(&self, index: usize, took: Duration) {
        self.steps[index].observe(took.as_secs_f64());
    }

    pub(crate) fn health(&self, healthy: bool) {
        if healthy {
            self.healthy.inc();
        } else {
            self.unhealthy.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_text_with_total_names_and_no_created_samples() {
        let om = "# HELP calls Calls.\n# TYPE calls counter\ncalls_total{m=\"a\"} 3 # {trace_id=\"x\"} 1\ncalls_created{m=\"a\"} 1.7e9\n# HELP up Up.\n# TYPE up gauge\n# UNIT up seconds\nup 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP calls_total Calls.\n# TYPE calls_total counter\ncalls_total{m=\"a\"} 3\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }

    #[test]
    fn the_engine_metrics_encode_in_both_formats() {
        let mut registry = Registry::default();
        let metrics = EngineMetrics::register(&mut registry);
        metrics.launched();
        metrics.moved(None, TaskState::Starting, None);
        metrics.moved(Some(TaskState::Starting), TaskState::Running, None);
        metrics.moved(
            Some(TaskState::Running),
            TaskState::Finished,
            Some(Reason::CommandExited),
        );
        metrics.step(1, Duration::from_millis(3));
        metrics
            .hook_series("acl")
            .observe(Phase::PreRun, true, Duration::from_micros(40));
        metrics.health(false);
        let (kind, text) = encode(&registry, Some("text/plain")).unwrap();
        assert_eq!(kind, TEXT_CONTENT_TYPE);
        assert!(
            text.contains(
                "# TYPE hoist_task_launches_total counter\nhoist_task_launches_total 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("hoist_tasks{state=\"running\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "hoist_task_terminations_total{state=\"finished\",reason=\"command_exited\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("hoist_hook_duration_seconds_count{hook=\"acl\",phase=\"pre_run\",outcome=\"ok\"} 1\n"), "{text}");
        assert!(!text.contains("# EOF"));
        let (kind, om) = encode(
            &registry,
            Some("application/openmetrics-text; version=1.0.0"),
        )
        .unwrap();
        assert_eq!(kind, OPENMETRICS_CONTENT_TYPE);
        assert!(om.ends_with("# EOF\n"));
    }
}
