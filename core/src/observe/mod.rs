//! Observability: what a task uses ([`ResourceUsage`] from `Containerizer::stats`), what
//! happens to it besides its state ([`TaskEvent`]s), and the engine's Prometheus [`metrics`].
//! Spans: the engine runs each task's supervisor in a `task` span (fields `task`, `executor`)
//! from launch to its terminal status; `TracingLayer` adds one span per containerizer call.

mod event;
pub mod metrics;
mod stats;

pub(crate) use event::EventScope;
pub use event::{EventStream, TaskEvent, TaskEventKind, emit, listening};
pub use metrics::EngineMetrics;
pub use stats::{BlockIoUsage, CpuUsage, MemoryUsage, NetworkUsage, ResourceUsage, UsageStream};
