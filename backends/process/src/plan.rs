//! From a [`ContainerSpec`] to a command line: what this backend honours, what it refuses,
//! and how `image`, `working_dir` and `env` are read.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hoist_core::capabilities::{Images, Limit, Ports};
use hoist_core::{Capabilities, ContainerSpec, Error, ErrorKind};

/// The `PATH` a container gets when its spec sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What this backend honours: a command (an image has no command of its own here), `image`
/// as an absolute directory relative commands resolve against, the host network with ports the
/// process binds itself, `exec`, `logs` and recovery. [`Capabilities::check`] refuses the rest
/// by name.
pub(crate) fn capabilities(limits: Limit) -> Capabilities {
    let mut caps = Capabilities::default();
    caps.cpu_limit = limits;
    caps.memory_limit = limits;
    caps.images = Images::Directory;
    caps.exec = true;
    caps.logs = true;
    caps.network_host = true;
    caps.ports = Ports::SamePort;
    caps.recovery = true;
    caps.stats = true;
    caps.signal = true;
    caps.exec_stream = true;
    caps.tty = true;
    caps
}

/// A checked spec, ready to become a command.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) working_dir: PathBuf,
}

impl Plan {
    /// The plan for running `argv` (the container's own, or one to `exec`) with the
    /// environment and working directory of `spec`, whose default working directory is
    /// `sandbox`. `argv` must not be empty.
    pub(crate) fn new(spec: &ContainerSpec, sandbox: &Path, argv: &[String]) -> Self {
        Plan {
            program: resolve(spec, &argv[0]),
            args: argv[1..].to_vec(),
            env: environment(spec),
            working_dir: working_dir(spec, sandbox),
        }
    }

    /// The command: exactly the planned environment (nothing inherited from the executor),
    /// null stdin, and its own process group so a stop reaches every process it starts.
    pub(crate) fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.working_dir)
            .stdin(std::process::Stdio::null())
            .process_group(0);
        cmd
    }
}

/// A program given as a relative path (`bin/server`, not a bare name) resolves against the
/// image directory; bare names are looked up on the container's `PATH`.
fn resolve(spec: &ContainerSpec, program: &str) -> PathBuf {
    match &spec.image {
        Some(image) if program.contains('/') && !program.starts_with('/') => {
            Path::new(image).join(program)
        }
        _ => PathBuf::from(program),
    }
}

fn environment(spec: &ContainerSpec) -> BTreeMap<String, String> {
    let mut env = spec.env.clone();
    env.entry("PATH".to_owned())
        .or_insert_with(|| DEFAULT_PATH.to_owned());
    env
}

/// `working_dir` when absolute; when relative, under the image directory (or the sandbox);
/// when unset, the image directory (or the sandbox).
fn working_dir(spec: &ContainerSpec, sandbox: &Path) -> PathBuf {
    let base = spec
        .image
        .as_ref()
        .map_or_else(|| sandbox.to_path_buf(), PathBuf::from);
    match &spec.working_dir {
        Some(dir) => base.join(dir),
        None => base,
    }
}

/// The address a host-network process is reached on from this host.
pub(crate) fn loopback() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

/// The kind a failure to spawn gets: a missing program or directory is the spec's fault.
pub(crate) fn spawn_error(plan: &Plan, err: std::io::Error) -> Error {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            ErrorKind::InvalidInput
        }
        _ => ErrorKind::Backend,
    };
    Error::new(
        kind,
        format!(
            "could not run `{}` in {}",
            plan.program.display(),
            plan.working_dir.display()
        ),
    )
    .with_context("command", plan.program.display())
    .with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_core::{NetworkMode, PortMapping, Volume};

    fn refused_field(spec: &ContainerSpec) -> String {
        let err = capabilities(Limit::Unsupported).check(spec).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        err.context_value("field").unwrap().to_owned()
    }

    #[test]
    fn unsupported_parts_are_refused_by_name() {
        let base = ContainerSpec::command(["sleep", "1"]);
        let with = |f: &dyn Fn(&mut ContainerSpec)| {
            let mut spec = base.clone();
            f(&mut spec);
            refused_field(&spec)
        };
        assert_eq!(with(&|s| s.network = Some(NetworkMode::Bridge)), "network");
        assert_eq!(with(&|s| s.network = Some(NetworkMode::None)), "network");
        assert_eq!(
            with(&|s| s.network = Some(NetworkMode::User("n".into()))),
            "network"
        );
        assert_eq!(
            with(&|s| s.ports = vec![PortMapping::tcp(80, Some(8080))]),
            "ports[0].host_port"
        );
        assert_eq!(
            with(&|s| s.resources.memory = Some(1 << 20)),
            "resources.memory"
        );
        assert_eq!(with(&|s| s.resources.cpus = Some(0.5)), "resources.cpus");
        assert_eq!(
            with(&|s| s.volumes = vec![Volume {
                host_path: "/a".into(),
                container_path: "/b".into(),
                read_only: false
            }]),
            "volumes"
        );
        assert_eq!(with(&|s| s.dns = vec![loopback()]), "dns");
        assert_eq!(with(&|s| s.user = Some("nobody".into())), "user");
        assert_eq!(with(&|s| s.image = Some("busybox".into())), "image");
    }

    #[test]
    fn host_network_and_identity_ports_are_accepted() {
        let mut spec = ContainerSpec::command(["server"]);
        spec.network = Some(NetworkMode::Host);
        spec.ports = vec![
            PortMapping::tcp(8080, None),
            PortMapping::tcp(9090, Some(9090)),
        ];
        capabilities(Limit::Unsupported).check(&spec).unwrap();
        let image_only = ContainerSpec {
            image: Some("/opt/app".into()),
            ..ContainerSpec::default()
        };
        assert_eq!(refused_field(&image_only), "command");
    }

    #[test]
    fn image_directory_resolves_relative_programs_and_working_dirs() {
        let mut spec = ContainerSpec::command(["bin/server", "--port", "1"]);
        spec.image = Some("/opt/app".into());
        spec.working_dir = Some("data".into());
        let plan = Plan::new(&spec, Path::new("/state/c/sandbox"), &spec.argv());
        assert_eq!(plan.program, Path::new("/opt/app/bin/server"));
        assert_eq!(plan.args, ["--port", "1"]);
        assert_eq!(plan.working_dir, Path::new("/opt/app/data"));
        assert_eq!(plan.env["PATH"], DEFAULT_PATH);

        let mut bare = ContainerSpec::command(["sh"]);
        bare.env.insert("PATH".into(), "/only".into());
        let plan = Plan::new(&bare, Path::new("/state/c/sandbox"), &bare.argv());
        assert_eq!(plan.program, Path::new("sh"));
        assert_eq!(plan.working_dir, Path::new("/state/c/sandbox"));
        assert_eq!(plan.env["PATH"], "/only");
    }
}
