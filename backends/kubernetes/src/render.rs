//! Renders a [`ContainerSpec`] (and optional build steps) into a pod.

use std::collections::BTreeMap;

use hoist_core::{ContainerSpec, Error, NetworkMode, Owner, PullPolicy, Result};
use k8s_openapi::api::core::v1::{
    Capabilities as KubeCapabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    HostPathVolumeSource, LocalObjectReference, Pod, PodDNSConfig, PodDNSConfigOption, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{KubeConfig, check_label, fnv, label_value};
use crate::copy::CopiedVolume;
use crate::profiles::{Architecture, PodProfile};

/// The name of the main container in every pod.
pub const MAIN_CONTAINER: &str = "main";
const BUILD_VOLUME: &str = "hoist-build";

/// One step that runs before the main container, as an init container sharing the build
/// volume: installing dependencies, compiling (the build plans of function runtimes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    /// The init container's name (`install`, `compile`).
    pub name: String,
    /// The image that runs the step.
    pub image: String,
    /// The command, run as given (use `["sh", "-c", "..."]` for a shell line).
    pub command: Vec<String>,
    /// Environment for the step.
    pub env: BTreeMap<String, String>,
}

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::unsupported("kubernetes", what).with_operation("create")
}

/// The labels that say which executor and task own an object (label-safe forms of the ids).
pub(crate) fn ownership_labels(owner: &Owner) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            hoist_core::labels::EXECUTOR_ID.to_owned(),
            label_value(owner.executor_id.as_str()),
        ),
        (
            hoist_core::labels::TASK_ID.to_owned(),
            label_value(owner.task_id.as_str()),
        ),
    ])
}

/// The pod for `spec`, owned by `owner`, named `name`. `copies` holds, when host volumes are
/// copied, the copy of each of `spec.volumes`; empty, they are `hostPath` volumes.
pub(crate) fn render_pod(
    config: &KubeConfig,
    name: &str,
    owner: &Owner,
    spec: &ContainerSpec,
    steps: &[BuildStep],
    copies: &[CopiedVolume],
) -> Result<Pod> {
    let image = spec
        .image
        .clone()
        .or_else(|| config.default_image.clone())
        .ok_or_else(|| {
            Error::invalid(
                "a pod needs an image: set `image` in the container spec or `default_image` in the kube config",
            )
            .with_operation("create")
            .with_context("field", "container.image")
        })?;
    for (key, value) in &spec.labels {
        check_label(key, value).map_err(|problem| {
            Error::invalid(format!("container label `{key}={value}` {problem}"))
                .with_operation("create")
                .with_context("label", key)
        })?;
    }
    let profile = profile_of(config, spec);
    let (labels, annotations) = metadata(config, owner, spec, profile);

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let volume_name = format!("host-{i}");
        let copy = copies.get(i);
        volumes.push(Volume {
            name: volume_name.clone(),
            host_path: copy.is_none().then(|| HostPathVolumeSource {
                path: volume.host_path.display().to_string(),
                type_: None,
            }),
            config_map: copy.map(CopiedVolume::source),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: volume_name,
            mount_path: volume.container_path.display().to_string(),
            read_only: Some(volume.read_only),
            sub_path: copy.and_then(|c| c.sub_path.clone()),
            ..VolumeMount::default()
        });
    }
    let build_mount = VolumeMount {
        name: BUILD_VOLUME.into(),
        mount_path: config.build_mount.clone(),
        ..VolumeMount::default()
    };
    if !steps.is_empty() {
        volumes.push(Volume {
            name: BUILD_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        mounts.push(build_mount.clone());
    }

    let security_context = security_context(config, spec)?;
    // Build steps see the spec's volumes too (a step may copy files from one into the build
    // volume), then the build volume.
    let step_mounts = mounts.clone();
    let main = Container {
        name: MAIN_CONTAINER.into(),
        image: Some(image),
        image_pull_policy: Some(pull_policy(spec.pull_policy).into()),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: env_vars(&spec.env),
        working_dir: spec.working_dir.as_ref().map(|d| d.display().to_string()),
        ports: ports(spec),
        resources: profile
            .and_then(|p| p.resources.clone())
            .or_else(|| resources(spec)),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context: Some(security_context.clone()),
        ..Container::default()
    };
    let init_containers: Vec<Container> = steps
        .iter()
        .map(|step| Container {
            name: step.name.clone(),
            image: Some(step.image.clone()),
            image_pull_policy: Some(pull_policy(spec.pull_policy).into()),
            command: Some(step.command.clone()),
            env: env_vars(&step.env),
            working_dir: Some(config.build_mount.clone()),
            volume_mounts: Some(step_mounts.clone()),
            security_context: Some(security_context.clone()),
            ..Container::default()
        })
        .collect();

    let host_network = match &spec.network {
        None | Some(NetworkMode::Bridge) => None,
        Some(NetworkMode::Host) => Some(true),
        Some(NetworkMode::None) => return Err(unsupported("network mode `none` for pods")),
        Some(NetworkMode::User(net)) => {
            return Err(unsupported(format!("user network `{net}` for pods")));
        }
    };
    let (dns_policy, dns_config) = dns(config, spec);
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![main],
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            restart_policy: Some("Never".into()),
            volumes: (!volumes.is_empty()).then_some(volumes),
            image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| {
                config
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            host_network,
            dns_policy,
            dns_config,
            // A profile's scheduling fields replace the backend's, as LocalStack's do.
            node_selector: profile.and_then(|p| p.node_selector.clone()).or_else(|| {
                (!config.node_selector.is_empty()).then(|| config.node_selector.clone())
            }),
            affinity: profile
                .and_then(|p| p.affinity.clone())
                .or_else(|| config.affinity.clone()),
            tolerations: profile
                .and_then(|p| p.tolerations.clone())
                .or_else(|| (!config.tolerations.is_empty()).then(|| config.tolerations.clone())),
            topology_spread_constraints: profile
                .and_then(|p| p.topology_spread_constraints.clone()),
            priority_class_name: profile.and_then(|p| p.priority_class_name.clone()),
            service_account_name: config.service_account.clone(),
            automount_service_account_token: Some(config.service_account.is_some()),
            ..PodSpec::default()
        }),
        status: None,
    })
}

/// The pod profile of `spec`'s pod: the one its service and architecture labels resolve to.
fn profile_of<'a>(config: &'a KubeConfig, spec: &ContainerSpec) -> Option<&'a PodProfile> {
    let service = spec.labels.get(hoist_core::labels::SERVICE);
    let architecture = spec
        .labels
        .get(hoist_core::labels::ARCHITECTURE)
        .and_then(|a| Architecture::parse(a));
    config
        .pod_profiles
        .resolve(service.map(String::as_str), architecture)
}

/// The pod's labels and annotations, each layer over the one before: the backend's, the
/// spec's, the profile's (LocalStack's profiles override its `LOCALSTACK_K8S_LABELS` and
/// `_ANNOTATIONS`), then hoist's own, which nothing overrides: the spec's `io.hoist.*` labels
/// and the ownership labels and annotations.
fn metadata(
    config: &KubeConfig,
    owner: &Owner,
    spec: &ContainerSpec,
    profile: Option<&PodProfile>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (hoist, others): (BTreeMap<_, _>, BTreeMap<_, _>) = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k.starts_with(hoist_core::labels::PREFIX));
    let mut labels = config.labels.clone();
    labels.extend(others);
    let mut annotations = config.annotations.clone();
    if let Some(profile) = profile {
        labels.extend(profile.labels.clone());
        annotations.extend(profile.annotations.clone());
    }
    labels.extend(hoist);
    labels.extend(ownership_labels(owner));
    annotations.extend([
        (
            hoist_core::labels::EXECUTOR_ID.to_owned(),
            owner.executor_id.to_string(),
        ),
        (
            hoist_core::labels::TASK_ID.to_owned(),
            owner.task_id.to_string(),
        ),
    ]);
    (labels, annotations)
}

fn pull_policy(policy: PullPolicy) -> &'static str {
    match policy {
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Always => "Always",
        PullPolicy::Never => "Never",
    }
}

fn env_vars(env: &BTreeMap<String, String>) -> Option<Vec<EnvVar>> {
    (!env.is_empty()).then(|| {
        env.iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            })
            .collect()
    })
}

fn ports(spec: &ContainerSpec) -> Option<Vec<ContainerPort>> {
    (!spec.ports.is_empty()).then(|| {
        spec.ports
            .iter()
            .map(|p| ContainerPort {
                container_port: i32::from(p.container_port),
                host_port: p.host_port.map(i32::from),
                host_ip: p.host_ip.map(|ip| ip.to_string()),
                protocol: Some(p.protocol.as_str().to_uppercase()),
                name: None,
            })
            .collect()
    })
}

fn resources(spec: &ContainerSpec) -> Option<ResourceRequirements> {
    let mut amounts = BTreeMap::new();
    if let Some(cpus) = spec.resources.cpus {
        let millis = (cpus * 1000.0).ceil().max(1.0) as u64;
        amounts.insert("cpu".to_owned(), Quantity(format!("{millis}m")));
    }
    if let Some(memory) = spec.resources.memory {
        amounts.insert("memory".to_owned(), Quantity(memory.to_string()));
    }
    (!amounts.is_empty()).then(|| ResourceRequirements {
        limits: Some(amounts.clone()),
        requests: Some(amounts),
        ..ResourceRequirements::default()
    })
}

fn security_context(config: &KubeConfig, spec: &ContainerSpec) -> Result<SecurityContext> {
    let mut context = config
        .security_context
        .clone()
        .unwrap_or_else(|| SecurityContext {
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(KubeCapabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        });
    if let Some(user) = &spec.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let parse = |text: &str| {
            text.parse::<i64>().map_err(|_| {
                unsupported(format!(
                    "user `{user}`: pods run as numeric ids only (`uid` or `uid:gid`)"
                ))
                .with_context("field", "container.user")
            })
        };
        let uid = parse(uid)?;
        context.run_as_user = Some(uid);
        if let Some(gid) = gid {
            context.run_as_group = Some(parse(gid)?);
        }
        if uid == 0 {
            context.run_as_non_root = Some(false);
        }
    }
    Ok(context)
}

fn dns(config: &KubeConfig, spec: &ContainerSpec) -> (Option<String>, Option<PodDNSConfig>) {
    let mut nameservers: Vec<String> = config
        .dns
        .nameservers
        .iter()
        .map(ToString::to_string)
        .collect();
    for server in &spec.dns {
        let server = server.to_string();
        if !nameservers.contains(&server) {
            nameservers.push(server);
        }
    }
    let settings = &config.dns;
    if nameservers.is_empty() && settings.searches.is_empty() && settings.options.is_empty() {
        return (None, None);
    }
    let policy = if nameservers.is_empty() {
        "ClusterFirst"
    } else {
        "None"
    };
    let config = PodDNSConfig {
        nameservers: (!nameservers.is_empty()).then_some(nameservers),
        searches: (!settings.searches.is_empty()).then(|| settings.searches.clone()),
        options: (!settings.options.is_empty()).then(|| {
            settings
                .options
                .iter()
                .map(|(name, value)| PodDNSConfigOption {
                    name: Some(name.clone()),
                    value: value.clone(),
                })
                .collect()
        }),
    };
    (Some(policy.into()), Some(config))
}

/// A pod name for a task: `<prefix>-<task>-<8 hex>`, a valid DNS label (≤ 63 characters).
pub(crate) fn pod_name(prefix: &str, task: &str, salt: u64) -> String {
    let cleaned: String = task
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let head: String = format!("{prefix}-{cleaned}").chars().take(53).collect();
    let head = head.trim_matches('-');
    let suffix = fnv(&format!("{task}/{salt}"));
    format!("{head}-{suffix:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_core::{PortMapping, TaskId};

    fn owner() -> Owner {
        Owner {
            executor_id: "exec 1".into(),
            task_id: TaskId::new("web.1"),
        }
    }

    #[test]
    fn a_full_spec_renders_into_the_pod_fields() {
        let mut spec = ContainerSpec::command(["/bin/server"]);
        spec.image = Some("example/web:1".into());
        spec.pull_policy = PullPolicy::Always;
        spec.args = vec!["--port".into(), "8080".into()];
        spec.env.insert("A".into(), "1".into());
        spec.ports.push(PortMapping::tcp(8080, None));
        spec.resources.cpus = Some(0.5);
        spec.resources.memory = Some(64 << 20);
        spec.dns.push("10.0.0.10".parse().unwrap());
        spec.labels.insert("app".into(), "web".into());
        spec.user = Some("1000:2000".into());
        let config = KubeConfig {
            namespace: "fns".into(),
            labels: BTreeMap::from([("team".into(), "data".into())]),
            image_pull_secrets: vec!["regcred".into()],
            ..KubeConfig::default()
        };
        let pod = render_pod(&config, "hoist-web-1", &owner(), &spec, &[], &[]).unwrap();
        let pod_spec = pod.spec.unwrap();
        let main = &pod_spec.containers[0];
        assert_eq!(main.image.as_deref(), Some("example/web:1"));
        assert_eq!(main.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(main.args.as_ref().unwrap()[1], "8080");
        let limits = main.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["cpu"].0, "500m");
        assert_eq!(limits["memory"].0, (64u64 << 20).to_string());
        let security = main.security_context.as_ref().unwrap();
        assert_eq!(
            (security.run_as_user, security.run_as_group),
            (Some(1000), Some(2000))
        );
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(pod_spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod_spec.dns_policy.as_deref(), Some("None"));
        assert_eq!(pod_spec.image_pull_secrets.unwrap()[0].name, "regcred");
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels["team"], "data");
        assert_eq!(labels["app"], "web");
        assert_ne!(labels[hoist_core::labels::EXECUTOR_ID], "exec 1");
        assert_eq!(
            pod.metadata.annotations.unwrap()[hoist_core::labels::EXECUTOR_ID],
            "exec 1"
        );
        assert_eq!(pod.metadata.namespace.as_deref(), Some("fns"));
    }

    #[test]
    fn build_steps_become_init_containers_on_a_shared_volume() {
        let mut spec = ContainerSpec::command(["python", "/hoist/build/handler.py"]);
        spec.image = Some("python:3.12".into());
        let steps = [BuildStep {
            name: "install".into(),
            image: "python:3.12".into(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "pip install -t . -r requirements.txt".into(),
            ],
            env: BTreeMap::new(),
        }];
        let pod = render_pod(&KubeConfig::default(), "p", &owner(), &spec, &steps, &[]).unwrap();
        let pod_spec = pod.spec.unwrap();
        let init = &pod_spec.init_containers.unwrap()[0];
        assert_eq!(
            init.volume_mounts.as_ref().unwrap()[0].mount_path,
            "/hoist/build"
        );
        assert_eq!(
            pod_spec.containers[0].volume_mounts.as_ref().unwrap()[0].name,
            BUILD_VOLUME
        );
        assert!(pod_spec.volumes.unwrap()[0].empty_dir.is_some());
    }

    #[test]
    fn what_pods_cannot_do_is_refused_by_name() {
        let mut spec = ContainerSpec::command(["x"]);
        let err = render_pod(&KubeConfig::default(), "p", &owner(), &spec, &[], &[]).unwrap_err();
        assert!(err.to_string().contains("default_image"), "{err}");
        spec.image = Some("img".into());
        spec.network = Some(NetworkMode::User("front".into()));
        let err = render_pod(&KubeConfig::default(), "p", &owner(), &spec, &[], &[]).unwrap_err();
        assert_eq!(err.kind(), hoist_core::ErrorKind::Unsupported);
        spec.network = None;
        spec.user = Some("nobody".into());
        let err = render_pod(&KubeConfig::default(), "p", &owner(), &spec, &[], &[]).unwrap_err();
        assert!(err.to_string().contains("numeric"), "{err}");
        spec.user = None;
        spec.labels.insert("bad key".into(), "v".into());
        let err = render_pod(&KubeConfig::default(), "p", &owner(), &spec, &[], &[]).unwrap_err();
        assert!(err.to_string().contains("bad key"), "{err}");
    }

    #[test]
    fn pod_names_are_dns_labels() {
        let name = pod_name(
            "hoist",
            "My Task/With.Dots_and_a_very_long_name_that_goes_on_and_on",
            7,
        );
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_ne!(
            name,
            pod_name(
                "hoist",
                "My Task/With.Dots_and_a_very_long_name_that_goes_on_and_on",
                8
            )
        );
    }
}
