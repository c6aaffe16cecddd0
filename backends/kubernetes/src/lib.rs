//! hoist's Kubernetes backend: one pod per container through kube-rs.
//!
//! [`KubeContainerizer`] implements [`hoist_core::Containerizer`] on pods: image, pull policy,
//! `imagePullSecrets`, command and args, env, ports, resource requests and limits, labels (the
//! spec's, the config's `k=v,k2=v2` labels, and ownership labels), DNS, a non-root security
//! context by default, `restartPolicy: Never`, node selectors and affinity when the caller sets
//! them, and build steps as init containers on a shared volume. Pod profiles
//! ([`PodProfiles`], LocalStack's `LOCALSTACK_K8S_POD_CONFIG`) shape each pod by the service
//! and architecture its spec's labels name; [`KubeConfig::from_vars`] reads LocalStack's
//! `LOCALSTACK_K8S_*` variables. Host volumes are `hostPath`
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
mod profiles;
mod render;
#[cfg(feature = "testing")]
pub mod testing;
mod watch;

pub use config::{
    ANNOTATIONS_VARIABLE, Backoff, DnsSettings, HostVolumes, KubeConfig, LABELS_VARIABLE,
    NAMESPACE_VARIABLE, OLD_LABELS_VARIABLE, SECURITY_CONTEXT_VARIABLE, parse_annotations,
    parse_labels,
};
pub use containerizer::KubeContainerizer;
pub use copy::COPY_LIMIT;
pub use profiles::{
    Architecture, DEFAULT_AMD64_PROFILE, DEFAULT_ARM64_PROFILE, DEFAULT_PROFILE,
    POD_CONFIG_VARIABLE, PodProfile, PodProfiles, SERVICES, ServiceProfiles,
};
pub use render::{BuildStep, MAIN_CONTAINER};
