//! hoist's compute managers, on any backend: EC2-style instances and ECS-style tasks whose
//! containers join a load-balancer target group.
//!
//! - [`instances::InstanceManager`]: run (define and start), describe, start, stop (keeps the
//!   definition), terminate (stop and forget), each instance backed by one container.
//! - [`tasks::TaskRunner`]: runs tasks, registers each running container with a
//!   [`tasks::TargetGroup`] and deregisters it before stopping it.
//!
//! Both work with any [`hoist_core::Containerizer`]: local processes, Docker, pods.

pub mod instances;
pub mod tasks;
