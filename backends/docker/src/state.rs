//! Reading the Engine's view of a container: state, exit status, addresses and ports.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummaryStateEnum,
};
use hoist_core::{ContainerId, ContainerInfo, ContainerState, ExitStatus, MappedPort, Protocol};

/// The exit status for a container exit code as the Engine reports it.
///
/// Container runtimes report a process killed by signal `n` as exit code `128 + n` (the shell's
/// convention), and the Engine API has no other record of the signal. So codes 129 to 192
/// (signals 1 to 64) are reported as that signal, with no code; every other code as itself.
/// A program that chooses to `exit 137` is therefore reported as killed by signal 9: in
/// practice such codes come from signals (`docker kill`, `stop`, the OOM killer).
///
/// ```
/// use hoist_docker::exit_status_from_code;
///
/// assert_eq!(exit_status_from_code(3, false).code, Some(3));
/// let killed = exit_status_from_code(137, false);
/// assert_eq!((killed.code, killed.signal), (None, Some(9)));
/// assert!(exit_status_from_code(137, true).oom_killed);
/// ```
pub fn exit_status_from_code(code: i64, oom_killed: bool) -> ExitStatus {
    let mut status = if (129..=192).contains(&code) {
        ExitStatus::signal((code - 128) as i32)
    } else {
        ExitStatus::code(i32::try_from(code).unwrap_or(i32::MAX))
    };
    status.oom_killed = oom_killed;
    status
}

/// What a container is doing, in the Engine's words, reduced to what the backend acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created, never started.
    Created,
    /// Running (or paused, restarting, stopping).
    Running,
    /// Exited or dead.
    Exited,
    /// Being removed: as good as gone.
    Removing,
}

pub(crate) fn phase(response: &ContainerInspectResponse) -> Phase {
    let status = response.state.as_ref().and_then(|s| s.status);
    match status {
        Some(ContainerStateStatusEnum::CREATED) => Phase::Created,
        Some(ContainerStateStatusEnum::REMOVING) => Phase::Removing,
        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => Phase::Exited,
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::STOPPING,
        ) => Phase::Running,
        Some(ContainerStateStatusEnum::EMPTY) | None => {
            if response
                .state
                .as_ref()
                .and_then(|s| s.running)
                .unwrap_or(false)
            {
                Phase::Running
            } else {
                Phase::Exited
            }
        }
    }
}

pub(crate) fn summary_state(state: Option<ContainerSummaryStateEnum>) -> ContainerState {
    match state {
        Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
        Some(
            ContainerSummaryStateEnum::RUNNING
            | ContainerSummaryStateEnum::PAUSED
            | ContainerSummaryStateEnum::RESTARTING
            | ContainerSummaryStateEnum::STOPPING,
        ) => ContainerState::Running,
        _ => ContainerState::Exited,
    }
}

/// The exit status recorded in an inspect answer.
pub(crate) fn exit_of(response: &ContainerInspectResponse) -> ExitStatus {
    let state = response.state.as_ref();
    let code = state.and_then(|s| s.exit_code).unwrap_or(0);
    let oom = state.and_then(|s| s.oom_killed).unwrap_or(false);
    exit_status_from_code(code, oom)
}

/// Turns an inspect answer into a [`ContainerInfo`]. `local` says whether the Engine runs on
/// this host (so its pids and namespaces are ours to enter).
pub(crate) fn info_of(
    id: &ContainerId,
    response: &ContainerInspectResponse,
    local: bool,
) -> ContainerInfo {
    let phase = phase(response);
    let state = match phase {
        Phase::Created => ContainerState::Created,
        Phase::Running => ContainerState::Running,
        Phase::Exited | Phase::Removing => ContainerState::Exited,
    };
    let mut info = ContainerInfo::new(id.clone(), state);
    let engine_state = response.state.as_ref();
    if state == ContainerState::Running {
        info.pid = engine_state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .and_then(|p| u32::try_from(p).ok());
        if local {
            info.netns = info
                .pid
                .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")));
        }
    }
    if state == ContainerState::Exited {
        info.exit = Some(exit_of(response));
    }

    let network_mode = response
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    let host_networking = network_mode == "host";
    if host_networking {
        info.addresses.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    } else if let Some(networks) = response
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
    {
        let mut names: Vec<_> = networks.keys().collect();
        names.sort();
        for name in names {
            let address = networks[name]
                .ip_address
                .as_deref()
                .and_then(|a| a.parse::<IpAddr>().ok());
            if let Some(address) = address {
                info.addresses.push(address);
            }
        }
    }

    if host_networking {
        if let Some(exposed) = response
            .config
            .as_ref()
            .and_then(|c| c.exposed_ports.as_ref())
        {
            for key in exposed {
                if let Some((port, protocol)) = parse_port_key(key) {
                    info.ports.push(MappedPort {
                        container_port: port,
                        host_port: Some(port),
                        host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                        protocol,
                    });
                }
            }
        }
    } else if let Some(ports) = response
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
    {
        let mut keys: Vec<_> = ports.keys().collect();
        keys.sort();
        for key in keys {
            let Some((port, protocol)) = parse_port_key(key) else {
                continue;
            };
            match &ports[key] {
                Some(bindings) if !bindings.is_empty() => {
                    for binding in bindings {
                        info.ports.push(MappedPort {
                            container_port: port,
                            host_port: binding.host_port.as_deref().and_then(|p| p.parse().ok()),
                            host_ip: binding.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                            protocol,
                        });
                    }
                }
                _ => info.ports.push(MappedPort {
                    container_port: port,
                    host_port: None,
                    host_ip: None,
                    protocol,
                }),
            }
        }
    }

    let mut detail = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            info.details.insert(key.to_owned(), value);
        }
    };
    detail(
        "name",
        response
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_owned()),
    );
    detail(
        "image",
        response.config.as_ref().and_then(|c| c.image.clone()),
    );
    detail("image_id", response.image.clone());
    detail("network_mode", Some(network_mode));
    detail(
        "started_at",
        engine_state.and_then(|s| s.started_at.clone()),
    );
    if state == ContainerState::Exited {
        detail(
            "exit_code",
            engine_state
                .and_then(|s| s.exit_code)
                .map(|c| c.to_string()),
        );
        detail(
            "finished_at",
            engine_state.and_then(|s| s.finished_at.clone()),
        );
        detail("error", engine_state.and_then(|s| s.error.clone()));
    }
    info
}

fn parse_port_key(key: &str) -> Option<(u16, Protocol)> {
    let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = match protocol {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    Some((port.parse().ok()?, protocol))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{
        ContainerConfig, ContainerState as EngineState, EndpointSettings, HostConfig,
        NetworkSettings, PortBinding,
    };

    use super::*;

    fn response(status: ContainerStateStatusEnum) -> ContainerInspectResponse {
        ContainerInspectResponse {
            state: Some(EngineState {
                status: Some(status),
                pid: Some(4242),
                exit_code: Some(0),
                ..EngineState::default()
            }),
            ..ContainerInspectResponse::default()
        }
    }

    #[test]
    fn signals_are_read_from_codes_above_128() {
        assert_eq!(exit_status_from_code(0, false), ExitStatus::code(0));
        assert_eq!(exit_status_from_code(3, false), ExitStatus::code(3));
        assert_eq!(exit_status_from_code(128, false), ExitStatus::code(128));
        assert_eq!(exit_status_from_code(137, false), ExitStatus::signal(9));
        assert_eq!(exit_status_from_code(143, false), ExitStatus::signal(15));
        assert_eq!(exit_status_from_code(255, false), ExitStatus::code(255));
        let oom = exit_status_from_code(137, true);
        assert_eq!(oom.signal, Some(9));
        assert!(oom.oom_killed);
    }

    #[test]
    fn running_bridge_container() {
        let mut r = response(ContainerStateStatusEnum::RUNNING);
        r.host_config = Some(HostConfig {
            network_mode: Some("bridge".into()),
            ..HostConfig::default()
        });
        let mut networks = HashMap::new();
        networks.insert(
            "bridge".to_owned(),
            EndpointSettings {
                ip_address: Some("172.17.0.5".into()),
                ..EndpointSettings::default()
            },
        );
        let mut ports = HashMap::new();
        ports.insert(
            "8080/tcp".to_owned(),
            Some(vec![PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some("49153".into()),
            }]),
        );
        ports.insert("9000/udp".to_owned(), None);
        r.network_settings = Some(NetworkSettings {
            networks: Some(networks),
            ports: Some(ports),
            ..NetworkSettings::default()
        });
        let info = info_of(&ContainerId::new("c1"), &r, true);
        assert_eq!(info.state, ContainerState::Running);
        assert_eq!(info.pid, Some(4242));
        assert_eq!(info.netns, Some(PathBuf::from("/proc/4242/ns/net")));
        assert_eq!(info.addresses, [IpAddr::from([172, 17, 0, 5])]);
        assert_eq!(info.ports.len(), 2);
        assert_eq!(info.ports[0].container_port, 8080);
        assert_eq!(info.ports[0].host_port, Some(49153));
        assert_eq!(info.ports[0].host_ip, Some(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(info.ports[1].protocol, Protocol::Udp);
        assert_eq!(info.ports[1].host_port, None);
        assert_eq!(info.exit, None);
        assert_eq!(info.details["network_mode"], "bridge");

        let remote = info_of(&ContainerId::new("c1"), &r, false);
        assert_eq!(
            remote.netns, None,
            "a remote Engine's namespaces are not ours to enter"
        );
    }

    #[test]
    fn host_networking_is_loopback_with_ports_as_exposed() {
        let mut r = response(ContainerStateStatusEnum::RUNNING);
        r.host_config = Some(HostConfig {
            network_mode: Some("host".into()),
            ..HostConfig::default()
        });
        r.config = Some(ContainerConfig {
            exposed_ports: Some(vec!["8080/tcp".into()]),
            ..ContainerConfig::default()
        });
        let info = info_of(&ContainerId::new("c2"), &r, true);
        assert_eq!(info.addresses, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert_eq!(info.ports[0].host_port, Some(8080));
    }

    #[test]
    fn exited_and_removing_containers() {
        let mut r = response(ContainerStateStatusEnum::EXITED);
        r.state.as_mut().unwrap().exit_code = Some(137);
        r.state.as_mut().unwrap().oom_killed = Some(true);
        let info = info_of(&ContainerId::new("c3"), &r, true);
        assert_eq!(info.state, ContainerState::Exited);
        assert_eq!(info.pid, None);
        let exit = info.exit.unwrap();
        assert_eq!(exit.signal, Some(9));
        assert!(exit.oom_killed);
        assert_eq!(info.details["exit_code"], "137");
        assert_eq!(
            phase(&response(ContainerStateStatusEnum::REMOVING)),
            Phase::Removing
        );
        assert_eq!(
            phase(&response(ContainerStateStatusEnum::CREATED)),
            Phase::Created
        );
        assert_eq!(
            phase(&response(ContainerStateStatusEnum::PAUSED)),
            Phase::Running
        );
    }

    #[test]
    fn summary_states() {
        assert_eq!(
            summary_state(Some(ContainerSummaryStateEnum::CREATED)),
            ContainerState::Created
        );
        assert_eq!(
            summary_state(Some(ContainerSummaryStateEnum::RUNNING)),
            ContainerState::Running
        );
        assert_eq!(
            summary_state(Some(ContainerSummaryStateEnum::DEAD)),
            ContainerState::Exited
        );
        assert_eq!(summary_state(None), ContainerState::Exited);
    }
}
