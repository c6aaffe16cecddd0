//! What a backend can honour, and the one check of a spec against it.
//!
//! A backend declares its [`Capabilities`]; it does not write its own table of refusals.
//! [`Capabilities::check`] is the authority: the engine calls it before every `create` (after
//! the pre-create hooks, which may change the spec), the command health checker asks
//! [`Capabilities::exec`] before every `exec`, and [`CapabilityLayer`](crate::layer::CapabilityLayer)
//! applies the same check for callers that drive a containerizer without the engine.

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::task::{ContainerSpec, NetworkMode, PullPolicy};

/// What `image` means to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Images {
    /// The backend runs no images: a spec with `image` is refused.
    #[default]
    None,
    /// `image` is an absolute directory on the host (relative commands resolve in it); it cannot
    /// be pulled.
    Directory,
    /// `image` is a reference the backend pulls and runs.
    Pull,
}

/// Which port mappings a backend can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ports {
    /// No port mappings.
    #[default]
    None,
    /// The task binds its ports on the host itself: a mapping must keep the container's port
    /// and may name no host address but loopback or "any".
    SamePort,
    /// Any mapping: another host port, a host address.
    Any,
}

/// How a backend treats a resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    /// A spec asking for the limit is refused.
    #[default]
    Unsupported,
    /// The limit is accepted and recorded, but not enforced (as Mesos's agent without cgroup
    /// isolation runs tasks with `cpus` and `mem`); the backend says so when it is used.
    Advisory,
    /// The limit is enforced (and, for memory, exceeding it is reported as an OOM kill).
    Enforced,
}

impl Limit {
    /// Whether a spec asking for the limit is accepted.
    pub fn accepted(self) -> bool {
        self != Limit::Unsupported
    }
}

/// Which users a task can run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Users {
    /// Tasks run as the backend's own user: `user` is refused.
    #[default]
    None,
    /// Numeric ids only: `uid` or `uid:gid`.
    Numeric,
    /// Names or numeric ids.
    Any,
}

/// What a backend supports. Anything else is refused by [`Capabilities::check`] with an
/// [`ErrorKind::Unsupported`] error naming the field, never silently dropped.
///
/// The default supports nothing; a backend starts from it (or from [`Capabilities::all`]) and
/// sets what it has:
///
/// ```
/// use hoist_core::{Capabilities, ContainerSpec, capabilities::Limit};
///
/// let mut caps = Capabilities::default();
/// caps.network_host = true;
/// caps.cpu_limit = Limit::Advisory;
/// let mut spec = ContainerSpec::command(["server"]);
/// spec.resources.cpus = Some(0.5);
/// caps.check(&spec).unwrap(); // accepted, not enforced
/// spec.resources.memory = Some(64 << 20);
/// let err = caps.check(&spec).unwrap_err();
/// assert_eq!(err.context_value("field"), Some("resources.memory"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// What `image` means.
    pub images: Images,
    /// A spec may leave `command` empty to run its image's own command.
    pub image_command: bool,
    /// `exec` works.
    pub exec: bool,
    /// `logs` works.
    pub logs: bool,
    /// Host network mode (and the default, when no mode is given, is supported by every backend).
    pub network_host: bool,
    /// Bridge network mode.
    pub network_bridge: bool,
    /// Named user networks.
    pub network_user: bool,
    /// No network.
    pub network_none: bool,
    /// Port mappings.
    pub ports: Ports,
    /// CPU limits.
    pub cpu_limit: Limit,
    /// Memory limits (and OOM reporting when enforced).
    pub memory_limit: Limit,
    /// Volumes.
    pub volumes: bool,
    /// Running as another user.
    pub user: Users,
    /// Custom DNS servers.
    pub dns: bool,
    /// The containers survive an executor restart and `list_owned` finds them.
    pub recovery: bool,
    /// `stats` streams resource usage.
    pub stats: bool,
    /// `signal` sends any signal.
    pub signal: bool,
    /// `exec_stream` runs interactive commands.
    pub exec_stream: bool,
    /// `exec_stream` can give a command a terminal.
    pub tty: bool,
}

impl Capabilities {
    /// Everything a full container runtime does.
    pub fn all() -> Self {
        Capabilities {
            images: Images::Pull,
            image_command: true,
            exec: true,
            logs: true,
            network_host: true,
            network_bridge: true,
            network_user: true,
            network_none: true,
            ports: Ports::Any,
            cpu_limit: Limit::Enforced,
            memory_limit: Limit::Enforced,
            volumes: true,
            user: Users::Any,
            dns: true,
            recovery: true,
            stats: true,
            signal: true,
            exec_stream: true,
            tty: true,
        }
    }

    /// Refuses the first part of `spec` a backend with these capabilities cannot honour, with an
    /// [`ErrorKind::Unsupported`] error whose `field` context names it (`resources.cpus`,
    /// `ports[1].host_port`). Fields are checked in the order they appear in the spec.
    pub fn check(&self, spec: &ContainerSpec) -> Result<()> {
        if spec.command.is_empty() && !self.image_command {
            return Err(refuse(
                "command",
                "this backend cannot run an image's own command; give a `command`",
            ));
        }
        if let Some(image) = &spec.image {
            match self.images {
                Images::None => return Err(refuse("image", "this backend runs no images")),
                Images::Directory => {
                    if !Path::new(image).is_absolute() {
                        return Err(refuse(
                            "image",
                            "this backend reads `image` as a host directory, so it must be an absolute path",
                        ));
                    }
                    if spec.pull_policy == PullPolicy::Always {
                        return Err(refuse("pull_policy", "a host directory cannot be pulled"));
                    }
                }
                Images::Pull => {}
            }
        }
        if let Some(user) = &spec.user {
            match self.user {
                Users::None => {
                    return Err(refuse("user", "tasks run as the backend's own user"));
                }
                Users::Numeric if !is_numeric_user(user) => {
                    return Err(refuse(
                        "user",
                        format!(
                            "`{user}`: this backend takes numeric ids only (`uid` or `uid:gid`)"
                        ),
                    ));
                }
                Users::Numeric | Users::Any => {}
            }
        }
        match &spec.network {
            None => {}
            Some(NetworkMode::Host) if self.network_host => {}
            Some(NetworkMode::Bridge) if self.network_bridge => {}
            Some(NetworkMode::None) if self.network_none => {}
            Some(NetworkMode::User(_)) if self.network_user => {}
            Some(mode) => {
                return Err(refuse(
                    "network",
                    format!("this backend has no `{}` network mode", network_name(mode)),
                ));
            }
        }
        for (i, port) in spec.ports.iter().enumerate() {
            match self.ports {
                Ports::None => {
                    return Err(refuse(format!("ports[{i}]"), "this backend maps no ports"));
                }
                Ports::SamePort => {
                    if port
                        .host_port
                        .is_some_and(|host| host != port.container_port)
                    {
                        return Err(refuse(
                            format!("ports[{i}].host_port"),
                            "tasks bind their ports on the host themselves, so a port cannot be mapped to another",
                        ));
                    }
                    if port
                        .host_ip
                        .is_some_and(|ip| !(ip.is_loopback() || ip.is_unspecified()))
                    {
                        return Err(refuse(
                            format!("ports[{i}].host_ip"),
                            "tasks choose the address they bind themselves",
                        ));
                    }
                }
                Ports::Any => {}
            }
        }
        if spec.resources.cpus.is_some() && !self.cpu_limit.accepted() {
            return Err(refuse("resources.cpus", "this backend cannot limit CPU"));
        }
        if spec.resources.memory.is_some() && !self.memory_limit.accepted() {
            return Err(refuse(
                "resources.memory",
                "this backend cannot limit memory",
            ));
        }
        if !spec.volumes.is_empty() && !self.volumes {
            return Err(refuse("volumes", "this backend mounts no volumes"));
        }
        if !spec.dns.is_empty() && !self.dns {
            return Err(refuse("dns", "this backend uses the host's resolver"));
        }
        Ok(())
    }
}

/// `uid` or `uid:gid`, both numeric.
fn is_numeric_user(user: &str) -> bool {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match user.split_once(':') {
        Some((uid, gid)) => numeric(uid) && numeric(gid),
        None => numeric(user),
    }
}

fn network_name(mode: &NetworkMode) -> &str {
    match mode {
        NetworkMode::Host => "host",
        NetworkMode::Bridge => "bridge",
        NetworkMode::None => "none",
        NetworkMode::User(name) => name,
    }
}

fn refuse(field: impl Into<String>, why: impl std::fmt::Display) -> Error {
    let field = field.into();
    Error::new(
        ErrorKind::Unsupported,
        format!("`{field}` cannot be honoured: {why}"),
    )
    .with_context("field", field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{PortMapping, Volume};

    fn refused(caps: &Capabilities, spec: &ContainerSpec) -> String {
        let err = caps.check(spec).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        err.context_value("field").unwrap().to_owned()
    }

    fn processes() -> Capabilities {
        Capabilities {
            images: Images::Directory,
            network_host: true,
            ports: Ports::SamePort,
            ..Capabilities::default()
        }
    }

    #[test]
    fn everything_passes_a_full_runtime() {
        let mut spec = ContainerSpec {
            image: Some("busybox".into()),
            user: Some("nobody".into()),
            network: Some(NetworkMode::User("backend".into())),
            ..ContainerSpec::default()
        };
        spec.ports.push(PortMapping::tcp(80, Some(8080)));
        spec.resources.cpus = Some(1.0);
        spec.resources.memory = Some(1 << 20);
        spec.dns.push("10.0.0.2".parse().unwrap());
        Capabilities::all().check(&spec).unwrap();
    }

    #[test]
    fn each_unsupported_field_is_named() {
        let caps = processes();
        let base = ContainerSpec::command(["server"]);
        caps.check(&base).unwrap();

        let spec = ContainerSpec {
            image: Some("/srv/app".into()),
            ..ContainerSpec::default()
        };
        assert_eq!(refused(&caps, &spec), "command");

        let mut spec = base.clone();
        spec.image = Some("busybox".into());
        assert_eq!(refused(&caps, &spec), "image");
        spec.image = Some("/srv/app".into());
        caps.check(&spec).unwrap();
        spec.pull_policy = PullPolicy::Always;
        assert_eq!(refused(&caps, &spec), "pull_policy");

        let mut spec = base.clone();
        spec.network = Some(NetworkMode::Bridge);
        assert_eq!(refused(&caps, &spec), "network");

        let mut spec = base.clone();
        spec.ports.push(PortMapping::tcp(80, Some(80)));
        spec.ports.push(PortMapping::tcp(81, Some(8081)));
        assert_eq!(refused(&caps, &spec), "ports[1].host_port");
        spec.ports.pop();
        spec.ports[0].host_ip = Some("10.1.2.3".parse().unwrap());
        assert_eq!(refused(&caps, &spec), "ports[0].host_ip");

        let mut spec = base.clone();
        spec.resources.cpus = Some(0.1);
        assert_eq!(refused(&caps, &spec), "resources.cpus");
        let mut spec = base.clone();
        spec.resources.memory = Some(32 << 20);
        assert_eq!(refused(&caps, &spec), "resources.memory");

        let mut spec = base.clone();
        spec.volumes.push(Volume {
            host_path: "/data".into(),
            container_path: "/data".into(),
            read_only: true,
        });
        assert_eq!(refused(&caps, &spec), "volumes");

        let mut spec = base.clone();
        spec.dns.push("10.0.0.2".parse().unwrap());
        assert_eq!(refused(&caps, &spec), "dns");

        let mut spec = base;
        spec.user = Some("1000".into());
        assert_eq!(refused(&caps, &spec), "user");
    }

    #[test]
    fn advisory_limits_are_accepted_and_numeric_users_checked() {
        let mut caps = processes();
        caps.cpu_limit = Limit::Advisory;
        caps.memory_limit = Limit::Enforced;
        caps.user = Users::Numeric;
        let mut spec = ContainerSpec::command(["server"]);
        spec.resources.cpus = Some(0.1);
        spec.resources.memory = Some(32 << 20);
        spec.user = Some("1000:1000".into());
        caps.check(&spec).unwrap();
        spec.user = Some("nobody".into());
        let err = caps.check(&spec).unwrap_err();
        assert!(err.message().contains("numeric ids only"), "{err}");
        spec.user = Some("1000:".into());
        assert_eq!(refused(&caps, &spec), "user");
    }
}
