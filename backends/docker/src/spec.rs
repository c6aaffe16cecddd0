//! The mapping from a hoist [`ContainerSpec`] to the Engine's container-create body.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, PortBinding};
use hoist_core::labels;
use hoist_core::{ContainerSpec, Error, NetworkMode, Owner, Result};

use crate::config::DockerConfig;

/// Builds the Engine's create body for `spec`, owned by `owner`.
///
/// `command` becomes the entrypoint and `args` the command (so an empty `command` keeps the
/// image's entrypoint); every container carries the ownership labels
/// [`labels::EXECUTOR_ID`] and [`labels::TASK_ID`]. Parts of the spec Docker cannot honour (ports
/// under network `none`, a host port that differs from the container port under `host`,
/// relative paths, labels that would forge ownership) are [`hoist_core::ErrorKind::InvalidInput`]
/// errors naming the field.
///
/// ```
/// use hoist_core::{ContainerSpec, Owner, PortMapping};
/// use hoist_docker::{DockerConfig, create_body};
///
/// let mut spec = ContainerSpec::command(["/bin/busybox", "httpd", "-f"]);
/// spec.image = Some("web:1".into());
/// spec.ports.push(PortMapping::tcp(8080, None));
/// let owner = Owner { executor_id: "exec-1".into(), task_id: "web.1".into() };
/// let body = create_body(&owner, &spec, &DockerConfig::new()).unwrap();
/// assert_eq!(body.image.as_deref(), Some("web:1"));
/// assert_eq!(body.labels.unwrap()["io.hoist.task-id"], "web.1");
/// assert_eq!(body.exposed_ports.unwrap(), ["8080/tcp"]);
/// ```
pub fn create_body(
    owner: &Owner,
    spec: &ContainerSpec,
    config: &DockerConfig,
) -> Result<ContainerCreateBody> {
    body(owner, spec, config)
        .map_err(|e| e.with_operation("create").with_context("backend", "docker"))
}

fn body(owner: &Owner, spec: &ContainerSpec, config: &DockerConfig) -> Result<ContainerCreateBody> {
    let image = spec
        .image
        .clone()
        .or_else(|| config.default_image.clone())
        .ok_or_else(|| {
            Error::invalid_field(
                "container.image",
                "is required by the docker backend (or configure a default image)",
            )
        })?;

    let mut container_labels: HashMap<String, String> =
        HashMap::with_capacity(spec.labels.len() + 2);
    for (key, value) in &spec.labels {
        if labels::OWNERSHIP.contains(&key.as_str()) {
            return Err(Error::invalid_field(
                "container.labels",
                format!("sets `{key}`, which records the container's owner: only hoist writes it"),
            ));
        }
        container_labels.insert(key.clone(), value.clone());
    }
    container_labels.insert(
        labels::EXECUTOR_ID.to_owned(),
        owner.executor_id.to_string(),
    );
    container_labels.insert(labels::TASK_ID.to_owned(), owner.task_id.to_string());

    let working_dir = match &spec.working_dir {
        Some(dir) => Some(absolute("container.working_dir", dir)?),
        None => None,
    };

    let network_mode = spec.network.as_ref().map(|mode| match mode {
        NetworkMode::Host => "host".to_owned(),
        NetworkMode::Bridge => "bridge".to_owned(),
        NetworkMode::User(name) => name.clone(),
        NetworkMode::None => "none".to_owned(),
    });

    let mut exposed_ports = Vec::new();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let key = format!("{}/{}", port.container_port, port.protocol);
        match &spec.network {
            Some(NetworkMode::None) => {
                return Err(Error::invalid_field(
                    format!("container.ports[{i}]"),
                    "cannot be published: the container has no network (`network: none`)",
                ));
            }
            Some(NetworkMode::Host) => {
                if port.host_port.is_some_and(|p| p != port.container_port) {
                    return Err(Error::invalid_field(
                        format!("container.ports[{i}].host_port"),
                        "must equal `container_port` (or be left out) under host networking, where the container uses the host's ports directly",
                    ));
                }
                if !exposed_ports.contains(&key) {
                    exposed_ports.push(key);
                }
            }
            _ => {
                let binding = PortBinding {
                    host_ip: port.host_ip.map(|ip| ip.to_string()),
                    host_port: Some(port.host_port.map(|p| p.to_string()).unwrap_or_default()),
                };
                port_bindings
                    .entry(key.clone())
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(binding);
                if !exposed_ports.contains(&key) {
                    exposed_ports.push(key);
                }
            }
        }
    }

    let mut mounts = Vec::with_capacity(spec.volumes.len());
    for (i, volume) in spec.volumes.iter().enumerate() {
        let source = absolute(
            &format!("container.volumes[{i}].host_path"),
            &volume.host_path,
        )?;
        let target = absolute(
            &format!("container.volumes[{i}].container_path"),
            &volume.container_path,
        )?;
        mounts.push(Mount {
            typ: Some(MountType::BIND),
            source: Some(source),
            target: Some(target),
            read_only: Some(volume.read_only),
            ..Mount::default()
        });
    }

    let memory = match spec.resources.memory {
        Some(bytes) => Some(
            i64::try_from(bytes)
                .map_err(|_| Error::invalid_field("container.resources.memory", "is too large"))?,
        ),
        None => None,
    };
    let nano_cpus = spec.resources.cpus.map(|cpus| (cpus * 1e9).round() as i64);

    let host_config = HostConfig {
        network_mode,
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        nano_cpus,
        memory,
        // No swap beyond the limit: the limit is the memory the container can use.
        memory_swap: memory,
        dns: (!spec.dns.is_empty()).then(|| spec.dns.iter().map(ToString::to_string).collect()),
        mounts: (!mounts.is_empty()).then_some(mounts),
        init: config.init.then_some(true),
        ..HostConfig::default()
    };

    Ok(ContainerCreateBody {
        image: Some(image),
        entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: (!spec.env.is_empty())
            .then(|| spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir,
        user: spec.user.clone(),
        labels: Some(container_labels),
        exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    })
}

fn absolute(field: &str, path: &Path) -> Result<String> {
    if !path.is_absolute() {
        return Err(Error::invalid_field(
            field,
            format!("must be an absolute path, not `{}`", path.display()),
        ));
    }
    path.to_str().map(str::to_owned).ok_or_else(|| {
        Error::invalid_field(field, format!("is not valid UTF-8: `{}`", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use hoist_core::{ErrorKind, PortMapping, Protocol, Volume};

    use super::*;

    fn owner() -> Owner {
        Owner {
            executor_id: "exec-7".into(),
            task_id: "web.1".into(),
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: Some("web:1".into()),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn every_field_maps() {
        let mut spec = spec();
        spec.command = vec!["/bin/busybox".into(), "httpd".into()];
        spec.args = vec!["-f".into(), "-p".into(), "8080".into()];
        spec.env.insert("B".into(), "2".into());
        spec.env.insert("A".into(), "x=y".into());
        spec.working_dir = Some("/srv".into());
        spec.user = Some("1000:1000".into());
        spec.ports = vec![
            PortMapping::tcp(8080, Some(31000)),
            PortMapping {
                container_port: 53,
                host_port: None,
                protocol: Protocol::Udp,
                host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            },
        ];
        spec.network = Some(NetworkMode::User("frontends".into()));
        spec.resources.cpus = Some(0.5);
        spec.resources.memory = Some(64 << 20);
        spec.volumes = vec![Volume {
            host_path: "/data".into(),
            container_path: "/var/data".into(),
            read_only: true,
        }];
        spec.dns = vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))];
        spec.labels.insert("team".into(), "web".into());

        let body = create_body(&owner(), &spec, &DockerConfig::new()).unwrap();
        assert_eq!(body.image.as_deref(), Some("web:1"));
        assert_eq!(body.entrypoint.unwrap(), ["/bin/busybox", "httpd"]);
        assert_eq!(body.cmd.unwrap(), ["-f", "-p", "8080"]);
        assert_eq!(body.env.unwrap(), ["A=x=y", "B=2"]);
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let labels = body.labels.unwrap();
        assert_eq!(labels["team"], "web");
        assert_eq!(labels[labels::EXECUTOR_ID], "exec-7");
        assert_eq!(labels[labels::TASK_ID], "web.1");
        assert_eq!(body.exposed_ports.unwrap(), ["8080/tcp", "53/udp"]);

        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("frontends"));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_swap, Some(64 << 20));
        assert_eq!(host.dns.unwrap(), ["10.0.0.2"]);
        assert_eq!(host.init, Some(true));
        let bindings = host.port_bindings.unwrap();
        let web = bindings["8080/tcp"].as_ref().unwrap();
        assert_eq!(web[0].host_port.as_deref(), Some("31000"));
        assert_eq!(web[0].host_ip, None);
        let dns = bindings["53/udp"].as_ref().unwrap();
        assert_eq!(
            dns[0].host_port.as_deref(),
            Some(""),
            "an empty host port lets the Engine choose"
        );
        assert_eq!(dns[0].host_ip.as_deref(), Some("127.0.0.1"));
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.typ, Some(MountType::BIND));
        assert_eq!(mount.source.as_deref(), Some("/data"));
        assert_eq!(mount.target.as_deref(), Some("/var/data"));
        assert_eq!(mount.read_only, Some(true));
    }

    #[test]
    fn the_serialized_body_uses_engine_field_names() {
        let mut spec = spec();
        spec.ports = vec![PortMapping::tcp(80, None)];
        let body = create_body(&owner(), &spec, &DockerConfig::new().init(false)).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["Image"], "web:1");
        assert_eq!(json["ExposedPorts"], serde_json::json!({ "80/tcp": {} }));
        assert_eq!(
            json["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            ""
        );
        assert!(
            json["HostConfig"].get("Init").is_none(),
            "init off sends nothing: {json}"
        );
        assert!(
            json.get("Entrypoint").is_none(),
            "an empty command keeps the image's entrypoint"
        );
    }

    #[test]
    fn minimal_spec_keeps_image_defaults() {
        let body = create_body(&owner(), &spec(), &DockerConfig::new()).unwrap();
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.cmd, None);
        assert_eq!(body.env, None);
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode, None, "the Engine's default network");
        assert_eq!(host.memory, None);
        assert_eq!(host.port_bindings, None);
    }

    #[test]
    fn network_modes() {
        for (mode, name) in [
            (NetworkMode::Host, "host"),
            (NetworkMode::Bridge, "bridge"),
            (NetworkMode::None, "none"),
            (NetworkMode::User("mine".into()), "mine"),
        ] {
            let mut spec = spec();
            spec.network = Some(mode);
            let body = create_body(&owner(), &spec, &DockerConfig::new()).unwrap();
            assert_eq!(
                body.host_config.unwrap().network_mode.as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn host_networking_exposes_without_binding() {
        let mut spec = spec();
        spec.network = Some(NetworkMode::Host);
        spec.ports = vec![
            PortMapping::tcp(8080, None),
            PortMapping::tcp(9090, Some(9090)),
        ];
        let body = create_body(&owner(), &spec, &DockerConfig::new()).unwrap();
        assert_eq!(body.exposed_ports.unwrap(), ["8080/tcp", "9090/tcp"]);
        assert_eq!(body.host_config.unwrap().port_bindings, None);

        spec.ports = vec![PortMapping::tcp(8080, Some(31000))];
        let err = create_body(&owner(), &spec, &DockerConfig::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.context_value("field"),
            Some("container.ports[0].host_port")
        );
    }

    #[test]
    fn ports_without_a_network_are_rejected() {
        let mut spec = spec();
        spec.network = Some(NetworkMode::None);
        spec.ports = vec![PortMapping::tcp(8080, None)];
        let err = create_body(&owner(), &spec, &DockerConfig::new()).unwrap_err();
        assert_eq!(err.context_value("field"), Some("container.ports[0]"));
        assert!(err.message().contains("no network"), "{err}");
    }

    #[test]
    fn image_comes_from_the_spec_or_the_default() {
        let command = ContainerSpec::command(["sleep", "1"]);
        let err = create_body(&owner(), &command, &DockerConfig::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("field"), Some("container.image"));
        let body = create_body(
            &owner(),
            &command,
            &DockerConfig::new().default_image("base:2"),
        )
        .unwrap();
        assert_eq!(body.image.as_deref(), Some("base:2"));
        assert_eq!(body.entrypoint.unwrap(), ["sleep", "1"]);
    }

    #[test]
    fn reserved_labels_and_relative_paths_are_rejected() {
        let mut forged = spec();
        forged
            .labels
            .insert(labels::EXECUTOR_ID.into(), "someone-else".into());
        let err = create_body(&owner(), &forged, &DockerConfig::new()).unwrap_err();
        assert_eq!(err.context_value("field"), Some("container.labels"));
        assert!(err.message().contains("io.hoist.executor-id"), "{err}");

        let mut relative = spec();
        relative.working_dir = Some("srv".into());
        let err = create_body(&owner(), &relative, &DockerConfig::new()).unwrap_err();
        assert_eq!(err.context_value("field"), Some("container.working_dir"));

        let mut relative = spec();
        relative.volumes = vec![Volume {
            host_path: "data".into(),
            container_path: "/data".into(),
            read_only: false,
        }];
        let err = create_body(&owner(), &relative, &DockerConfig::new()).unwrap_err();
        assert_eq!(
            err.context_value("field"),
            Some("container.volumes[0].host_path")
        );
    }

    #[test]
    fn the_same_container_port_can_be_published_twice() {
        let mut spec = spec();
        spec.ports = vec![
            PortMapping::tcp(80, Some(8080)),
            PortMapping::tcp(80, Some(8081)),
        ];
        let body = create_body(&owner(), &spec, &DockerConfig::new()).unwrap();
        assert_eq!(body.exposed_ports.unwrap(), ["80/tcp"]);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let ports: Vec<_> = bindings["80/tcp"]
            .as_ref()
            .unwrap()
            .iter()
            .map(|b| b.host_port.clone().unwrap())
            .collect();
        assert_eq!(ports, ["8080", "8081"]);
    }
}
