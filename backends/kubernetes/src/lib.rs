//! hoist's Kubernetes backend: one pod per container through kube-rs.
//!
//! [`KubeContainerizer`] implements [`hoist_core::Containerizer`] on pods: image, pull policy,
//! `imagePullSecrets`, command and args, env, ports, resource requests and limits, labels (the
//! spec's, the config's `k=v,k2=v2` labels, and ownership labels), DNS, a non-root security
//! context by default, `restartPolicy: Never`, node selectors and affinity when the caller sets
//! them, and build steps as init containers on a shared volume. Host volumes are `hostPath`
//! volumes, or copied into ConfigMaps the pod owns so it can run on any node
//! ([`HostVolumes`]). [`KubeConfig`] says how.
//!
//! This library does not pick a Kubernetes version: the application enables one version
//! feature of `k8s-openapi` (`latest`, or `v1_33` … `v1_37`) in its own `Cargo.toml`.
//!
//! The feature `testing` adds [`testing::FakeApiServer`], a fake API server speaking real
//! Kubernetes JSON, which this crate's tests and the conformance suite run against.

mod config;
mod containerizer;
mod copy;
mod error;
mod render;
#[cfg(feature = "testing")]
pub mod testing;
mod watch;

pub use config::{Backoff, DnsSettings, HostVolumes, KubeConfig, parse_labels};
pub use containerizer::KubeContainerizer;
pub use copy::COPY_LIMIT;
pub use render::{BuildStep, MAIN_CONTAINER};
