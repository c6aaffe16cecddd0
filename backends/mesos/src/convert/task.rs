//! A Mesos `TaskInfo` in: [`task_spec`] turns it into a [`TaskSpec`], refusing by name
//! what hoist cannot honour.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hoist_core::health::{CommandProbe, HealthCheck, HttpProbe, Probe, Scheme, TcpProbe};
use hoist_core::{
    ContainerSpec, Error, ErrorKind, KillPolicy, NetworkMode, PortMapping, Protocol, PullPolicy,
    Result, TaskSpec, Volume,
};

use crate::wire::{
    self, CommandInfo, ContainerType, DockerNetwork, HealthCheckInfo, HealthCheckType,
    TaskInfoFields,
};

/// Turns a Mesos `TaskInfo` into a task spec. Errors name the field (`container.docker.parameters`).
///
/// ```
/// use hoist_mesos::convert::task_spec;
/// use hoist_mesos::wire::{CommandInfo, Resource, TaskInfoFields};
///
/// let mut info = TaskInfoFields::new("web.1", "agent-1");
/// info.command = Some(CommandInfo::shell("echo hi"));
/// info.resources = vec![Resource::scalar("cpus", 0.5), Resource::scalar("mem", 64.0)];
/// let spec = task_spec(&info).unwrap();
/// assert_eq!(spec.container.command, ["/bin/sh", "-c", "echo hi"]);
/// assert_eq!(spec.container.resources.memory, Some(64 << 20));
/// ```
pub fn task_spec(info: &TaskInfoFields) -> Result<TaskSpec> {
    if info.check.is_some() {
        return Err(unsupported(
            "check",
            "a CheckInfo is not supported; use `health_check`",
        ));
    }
    let mut container = ContainerSpec::default();
    if let Some(c) = &info.container {
        container_info(c, &mut container)?;
    }
    if let Some(command) = &info.command {
        command_info(command, &mut container)?;
    }
    for resource in &info.resources {
        let Some(scalar) = resource.scalar else {
            continue;
        };
        match resource.name.as_str() {
            "cpus" => container.resources.cpus = Some(scalar.value),
            "mem" => {
                if !(scalar.value.is_finite() && scalar.value > 0.0) {
                    return Err(invalid(
                        "resources.mem",
                        &format!("is {}; must be a positive number of MB", scalar.value),
                    ));
                }
                container.resources.memory = Some((scalar.value * 1024.0 * 1024.0).round() as u64);
            }
            // Disk, ports and other resources are accounted by the agent, not limited here.
            _ => {}
        }
    }
    let mut spec = TaskSpec::new(info.task_id.value.as_str(), container);
    spec.name.clone_from(&info.name);
    if let Some(labels) = &info.labels {
        spec.labels = labels
            .labels
            .iter()
            .map(|l| (l.key.clone(), l.value.clone().unwrap_or_default()))
            .collect::<BTreeMap<_, _>>();
    }
    if let Some(check) = &info.health_check {
        spec.health_check = Some(health_check(check)?);
    }
    if let Some(grace) = info.kill_policy.and_then(|k| k.grace_period) {
        spec.kill_policy = KillPolicy {
            grace: grace.to_duration(),
        };
    }
    spec.validate()?;
    Ok(spec)
}

fn container_info(c: &wire::ContainerInfo, out: &mut ContainerSpec) -> Result<()> {
    if c.hostname.is_some() {
        return Err(unsupported(
            "container.hostname",
            "setting the hostname is not supported",
        ));
    }
    match c.kind {
        ContainerType::Docker => {
            let docker = c.docker.as_ref().ok_or_else(|| {
                invalid(
                    "container.docker",
                    "is required when `container.type` is DOCKER",
                )
            })?;
            out.image = Some(docker.image.clone());
            if docker.privileged == Some(true) {
                return Err(unsupported(
                    "container.docker.privileged",
                    "privileged containers are not supported",
                ));
            }
            if !docker.parameters.is_empty() {
                let keys: Vec<_> = docker.parameters.iter().map(|p| p.key.as_str()).collect();
                return Err(unsupported(
                    "container.docker.parameters",
                    &format!(
                        "raw docker parameters are not supported (got {})",
                        keys.join(", ")
                    ),
                ));
            }
            if docker.force_pull_image == Some(true) {
                out.pull_policy = PullPolicy::Always;
            }
            out.network = Some(match docker.network.unwrap_or(DockerNetwork::Host) {
                DockerNetwork::Host => NetworkMode::Host,
                DockerNetwork::Bridge => NetworkMode::Bridge,
                DockerNetwork::None => NetworkMode::None,
                DockerNetwork::User => {
                    let name = c
                        .network_infos
                        .first()
                        .and_then(|n| n.name.clone())
                        .ok_or_else(|| {
                            invalid(
                                "container.network_infos",
                                "must name the network when `docker.network` is USER",
                            )
                        })?;
                    NetworkMode::User(name)
                }
            });
            for (i, pm) in docker.port_mappings.iter().enumerate() {
                let at = |f: &str| format!("container.docker.port_mappings[{i}].{f}");
                let port = |v: u32, f: &str| {
                    u16::try_from(v)
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| invalid(&at(f), "must be between 1 and 65535"))
                };
                let protocol = match pm.protocol.as_deref().unwrap_or("tcp") {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    other => {
                        return Err(invalid(
                            &at("protocol"),
                            &format!("is `{other}`; expected `tcp` or `udp`"),
                        ));
                    }
                };
                out.ports.push(PortMapping {
                    container_port: port(pm.container_port, "container_port")?,
                    host_port: Some(port(pm.host_port, "host_port")?),
                    protocol,
                    host_ip: None,
                });
            }
        }
        ContainerType::Mesos => {
            if let Some(image) = c.mesos.as_ref().and_then(|m| m.image.as_ref()) {
                match (image.kind, &image.docker) {
                    (wire::ImageType::Docker, Some(docker)) => {
                        out.image = Some(docker.name.clone())
                    }
                    (wire::ImageType::Docker, None) => {
                        return Err(invalid(
                            "container.mesos.image.docker",
                            "is required for a DOCKER image",
                        ));
                    }
                    (wire::ImageType::Appc, _) => {
                        return Err(unsupported(
                            "container.mesos.image",
                            "Appc images are not supported",
                        ));
                    }
                }
            }
        }
    }
    for (i, v) in c.volumes.iter().enumerate() {
        let at = format!("container.volumes[{i}]");
        if v.image.is_some() || v.source.is_some() {
            return Err(unsupported(&at, "only host-path volumes are supported"));
        }
        let host = v
            .host_path
            .as_ref()
            .ok_or_else(|| invalid(&format!("{at}.host_path"), "is required"))?;
        out.volumes.push(Volume {
            host_path: PathBuf::from(host),
            container_path: PathBuf::from(&v.container_path),
            read_only: v.mode == wire::VolumeMode::Ro,
        });
    }
    Ok(())
}

fn command_info(command: &CommandInfo, out: &mut ContainerSpec) -> Result<()> {
    if !command.uris.is_empty() {
        return Err(unsupported(
            "command.uris",
            "fetching URIs is not supported; bake them into the image",
        ));
    }
    if let Some(env) = &command.environment {
        for (i, var) in env.variables.iter().enumerate() {
            match var.kind.as_deref() {
                None | Some("VALUE") => {}
                Some(other) => {
                    return Err(unsupported(
                        &format!("command.environment.variables[{i}].type"),
                        &format!("variables of type {other} are not supported"),
                    ));
                }
            }
            out.env
                .insert(var.name.clone(), var.value.clone().unwrap_or_default());
        }
    }
    out.user.clone_from(&command.user);
    if command.is_shell() {
        let value = command
            .value
            .clone()
            .ok_or_else(|| invalid("command.value", "is required for a shell command"))?;
        out.command = vec!["/bin/sh".into(), "-c".into(), value];
    } else if out.image.is_some() {
        // As the Docker containerizer does: the image's entrypoint, with value and arguments.
        out.args = command
            .value
            .iter()
            .chain(&command.arguments)
            .cloned()
            .collect();
    } else {
        let value = command
            .value
            .clone()
            .ok_or_else(|| invalid("command.value", "is required without an image"))?;
        out.command = std::iter::once(value)
            .chain(command.arguments.iter().skip(1).cloned())
            .collect();
    }
    Ok(())
}

fn health_check(check: &HealthCheckInfo) -> Result<HealthCheck> {
    let probe = match check.kind {
        Some(HealthCheckType::Http) => {
            let http = check
                .http
                .as_ref()
                .ok_or_else(|| invalid("health_check.http", "is required for an HTTP check"))?;
            let scheme = match http.scheme.as_deref().unwrap_or("http") {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                other => {
                    return Err(invalid(
                        "health_check.http.scheme",
                        &format!("is `{other}`; expected http or https"),
                    ));
                }
            };
            let statuses = http
                .statuses
                .iter()
                .map(|s| {
                    u16::try_from(*s)
                        .map_err(|_| invalid("health_check.http.statuses", &format!("has {s}")))
                })
                .collect::<Result<_>>()?;
            Probe::Http(HttpProbe {
                scheme,
                port: check_port(http.port, "health_check.http.port")?,
                path: http.path.clone().unwrap_or_else(|| "/".into()),
                statuses,
            })
        }
        Some(HealthCheckType::Tcp) => {
            let tcp = check
                .tcp
                .as_ref()
                .ok_or_else(|| invalid("health_check.tcp", "is required for a TCP check"))?;
            Probe::Tcp(TcpProbe {
                port: check_port(tcp.port, "health_check.tcp.port")?,
            })
        }
        Some(HealthCheckType::Command) => {
            let command = check.command.as_ref().ok_or_else(|| {
                invalid("health_check.command", "is required for a COMMAND check")
            })?;
            let value = command.value.clone().unwrap_or_default();
            if command.is_shell() {
                Probe::Command(CommandProbe {
                    argv: vec![],
                    shell: Some(value),
                })
            } else {
                let argv = std::iter::once(value)
                    .chain(command.arguments.iter().skip(1).cloned())
                    .collect();
                Probe::Command(CommandProbe { argv, shell: None })
            }
        }
        Some(HealthCheckType::Unknown) | None => {
            return Err(invalid("health_check.type", "must be COMMAND, HTTP or TCP"));
        }
    };
    let mut out = HealthCheck::new(probe);
    let seconds = |v: Option<f64>, field: &str, default: Duration| -> Result<Duration> {
        match v {
            None => Ok(default),
            Some(s) => Duration::try_from_secs_f64(s)
                .map_err(|_| invalid(field, &format!("is {s}; must be a non-negative number"))),
        }
    };
    out.delay = seconds(check.delay_seconds, "health_check.delay_seconds", out.delay)?;
    out.interval = seconds(
        check.interval_seconds,
        "health_check.interval_seconds",
        out.interval,
    )?;
    out.timeout = seconds(
        check.timeout_seconds,
        "health_check.timeout_seconds",
        out.timeout,
    )?;
    out.grace_period = seconds(
        check.grace_period_seconds,
        "health_check.grace_period_seconds",
        out.grace_period,
    )?;
    if let Some(n) = check.consecutive_failures {
        out.consecutive_failures = n;
    }
    Ok(out)
}

fn check_port(port: u32, field: &str) -> Result<u16> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(field, "must be between 1 and 65535"))
}

fn invalid(field: &str, problem: &str) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("`{field}` {problem}")).with_context("field", field)
}

fn unsupported(field: &str, problem: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("`{field}`: {problem}")).with_context("field", field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        ContainerInfo, DockerInfo, DurationInfo, Environment, EnvironmentVariable, HttpCheckInfo,
        KillPolicyInfo, Label, Labels, NetworkInfo, Parameter, Resource,
    };

    fn docker_task() -> TaskInfoFields {
        let mut info = TaskInfoFields::new("web.1", "a1");
        info.name = "web".into();
        info.container = Some(ContainerInfo {
            kind: ContainerType::Docker,
            volumes: vec![],
            hostname: None,
            docker: Some(DockerInfo {
                image: "busybox:latest".into(),
                network: Some(DockerNetwork::Bridge),
                port_mappings: vec![wire::PortMapping {
                    host_port: 31000,
                    container_port: 8080,
                    protocol: None,
                }],
                privileged: None,
                parameters: vec![],
                force_pull_image: Some(true),
            }),
            mesos: None,
            network_infos: vec![],
        });
        info.command = Some(CommandInfo {
            environment: Some(Environment {
                variables: vec![EnvironmentVariable {
                    name: "A".into(),
                    kind: None,
                    value: Some("1".into()),
                }],
            }),
            ..CommandInfo::shell("httpd -f")
        });
        info.resources = vec![
            Resource::scalar("cpus", 0.25),
            Resource::scalar("mem", 32.0),
            Resource::scalar("disk", 5.0),
        ];
        info.labels = Some(Labels {
            labels: vec![Label {
                key: "EXECUTOR_0_ACL".into(),
                value: Some("10.0.0.0/8".into()),
            }],
        });
        info.health_check = Some(HealthCheckInfo {
            kind: Some(HealthCheckType::Http),
            delay_seconds: Some(1.0),
            interval_seconds: None,
            timeout_seconds: Some(0.5),
            consecutive_failures: Some(2),
            grace_period_seconds: None,
            command: None,
            http: Some(HttpCheckInfo {
                scheme: None,
                port: 8080,
                path: Some("/health".into()),
                statuses: vec![200],
            }),
            tcp: None,
        });
        info.kill_policy = Some(KillPolicyInfo {
            grace_period: Some(DurationInfo {
                nanoseconds: 1_500_000_000,
            }),
        });
        info
    }

    #[test]
    fn a_docker_task_maps_every_field() {
        let spec = task_spec(&docker_task()).unwrap();
        assert_eq!(spec.id.as_str(), "web.1");
        assert_eq!(spec.name, "web");
        let c = &spec.container;
        assert_eq!(c.image.as_deref(), Some("busybox:latest"));
        assert_eq!(c.pull_policy, PullPolicy::Always);
        assert_eq!(c.network, Some(NetworkMode::Bridge));
        assert_eq!(c.ports, [PortMapping::tcp(8080, Some(31000))]);
        assert_eq!(c.command, ["/bin/sh", "-c", "httpd -f"]);
        assert_eq!(c.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(c.resources.cpus, Some(0.25));
        assert_eq!(c.resources.memory, Some(32 << 20));
        assert_eq!(
            spec.labels.get("EXECUTOR_0_ACL").map(String::as_str),
            Some("10.0.0.0/8")
        );
        let check = spec.health_check.unwrap();
        assert_eq!(check.delay, Duration::from_secs(1));
        assert_eq!(check.interval, Duration::from_secs(10));
        assert_eq!(check.timeout, Duration::from_millis(500));
        assert_eq!(check.consecutive_failures, 2);
        assert!(
            matches!(check.probe, Probe::Http(ref h) if h.path == "/health" && h.statuses == [200])
        );
        assert_eq!(spec.kill_policy.grace, Duration::from_millis(1500));
    }

    #[test]
    fn argv_commands_follow_mesos() {
        let mut info = docker_task();
        info.command = Some(CommandInfo {
            shell: Some(false),
            value: Some("serve".into()),
            arguments: vec!["--port".into(), "80".into()],
            ..CommandInfo::shell("")
        });
        let spec = task_spec(&info).unwrap();
        assert!(
            spec.container.command.is_empty(),
            "the image's entrypoint runs"
        );
        assert_eq!(spec.container.args, ["serve", "--port", "80"]);

        let mut info = TaskInfoFields::new("t", "a");
        info.command = Some(CommandInfo {
            shell: Some(false),
            value: Some("/bin/echo".into()),
            arguments: vec!["echo".into(), "hi".into()],
            ..CommandInfo::shell("")
        });
        assert_eq!(
            task_spec(&info).unwrap().container.command,
            ["/bin/echo", "hi"]
        );
    }

    #[test]
    fn user_network_takes_its_name_from_network_infos() {
        let mut info = docker_task();
        let c = info.container.as_mut().unwrap();
        c.docker.as_mut().unwrap().network = Some(DockerNetwork::User);
        let err = task_spec(&info).unwrap_err();
        assert_eq!(err.context_value("field"), Some("container.network_infos"));
        info.container.as_mut().unwrap().network_infos = vec![NetworkInfo {
            name: Some("front".into()),
        }];
        assert_eq!(
            task_spec(&info).unwrap().container.network,
            Some(NetworkMode::User("front".into()))
        );
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let mut info = docker_task();
        info.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .parameters = vec![Parameter {
            key: "cap-add".into(),
            value: "NET_ADMIN".into(),
        }];
        let err = task_spec(&info).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("cap-add"), "{err}");

        let mut info = docker_task();
        info.command.as_mut().unwrap().uris = vec![wire::Uri {
            value: "http://x/y.tgz".into(),
        }];
        assert_eq!(
            task_spec(&info).unwrap_err().context_value("field"),
            Some("command.uris")
        );

        let mut info = docker_task();
        info.command
            .as_mut()
            .unwrap()
            .environment
            .as_mut()
            .unwrap()
            .variables[0]
            .kind = Some("SECRET".into());
        assert_eq!(
            task_spec(&info).unwrap_err().context_value("field"),
            Some("command.environment.variables[0].type")
        );

        let mut info = docker_task();
        info.container
            .as_mut()
            .unwrap()
            .docker
            .as_mut()
            .unwrap()
            .port_mappings[0]
            .protocol = Some("sctp".into());
        assert_eq!(
            task_spec(&info).unwrap_err().context_value("field"),
            Some("container.docker.port_mappings[0].protocol")
        );
    }
}
