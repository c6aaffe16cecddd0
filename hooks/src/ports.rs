//! A task's port mappings with their host ports resolved, as the firewall hooks need them.

use std::net::IpAddr;

use hoist_core::{ContainerInfo, Error, ErrorKind, Protocol, Result, TaskSpec};

/// One port mapping of a task, with the host port the backend published it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Port {
    /// Its index in the task's `container.ports` (the `<n>` of `EXECUTOR_<n>_ACL`).
    pub index: usize,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
    pub host_ip: Option<IpAddr>,
}

/// Resolves every port mapping of `task`: a fixed host port from the spec, or the one the
/// backend chose, from `info`.
pub(crate) fn resolve(task: &TaskSpec, info: Option<&ContainerInfo>) -> Result<Vec<Port>> {
    task.container
        .ports
        .iter()
        .enumerate()
        .map(|(index, mapping)| {
            let published = info.and_then(|info| {
                info.ports
                    .iter()
                    .find(|p| p.container_port == mapping.container_port && p.protocol == mapping.protocol)
            });
            let host_port = mapping
                .host_port
                .or_else(|| published.and_then(|p| p.host_port))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidState,
                        format!(
                            "port mapping {index} ({}/{}) has no host port: none in the spec and the backend reports none",
                            mapping.container_port, mapping.protocol
                        ),
                    )
                    .with_context("task", &task.id)
                })?;
            Ok(Port {
                index,
                container_port: mapping.container_port,
                host_port,
                protocol: mapping.protocol,
                host_ip: mapping.host_ip.or_else(|| published.and_then(|p| p.host_ip)),
            })
        })
        .collect()
}

/// Whether every mapping has a fixed host port, so nothing needs to be asked of the backend.
pub(crate) fn all_fixed(task: &TaskSpec) -> bool {
    task.container.ports.iter().all(|p| p.host_port.is_some())
}
