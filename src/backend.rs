//! Choosing a backend by name: local processes (feature `process`), Docker containers
//! (feature `docker`), Kubernetes pods (feature `kube`) or sandboxed containers through runc
//! (feature `sandbox`). Programs take the name from a flag
//! or a variable (`--backend`, LocalStack's `LAMBDA_RUNTIME_EXECUTOR`); a backend whose feature
//! is not compiled in is an error naming the feature to enable.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> hoist::Result<()> {
//! use hoist::backend::{Backend, BackendSettings};
//!
//! let backend: Backend = "process".parse()?;
//! let state = tempfile::tempdir()?;
//! let containerizer = backend.connect(&BackendSettings::new(state.path())).await?;
//! assert_eq!(containerizer.name(), "process");
//! assert!("podman".parse::<Backend>().is_err());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist_core::{Containerizer, Error, ErrorKind, Result};

/// A backend, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Local processes (feature `process`), the default.
    #[default]
    Process,
    /// Docker containers (feature `docker`).
    Docker,
    /// Kubernetes pods (feature `kube`).
    Kubernetes,
    /// Namespaces, cgroups and an image's root through runc (feature `sandbox`); needs root.
    Sandbox,
}

impl Backend {
    /// Every backend, in the order of their names.
    pub const ALL: [Backend; 4] = [
        Backend::Process,
        Backend::Docker,
        Backend::Kubernetes,
        Backend::Sandbox,
    ];

    /// The backend's name: `process`, `docker`, `kubernetes` or `sandbox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Process => "process",
            Backend::Docker => "docker",
            Backend::Kubernetes => "kubernetes",
            Backend::Sandbox => "sandbox",
        }
    }

    /// The feature of the `hoist` crate that compiles the backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Process => "process",
            Backend::Docker => "docker",
            Backend::Kubernetes => "kube",
            Backend::Sandbox => "sandbox",
        }
    }

    /// Whether this build of hoist has the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Process => cfg!(feature = "process"),
            Backend::Docker => cfg!(feature = "docker"),
            Backend::Kubernetes => cfg!(feature = "kube"),
            Backend::Sandbox => cfg!(feature = "sandbox"),
        }
    }

    /// Connects to the backend: makes the process backend's state directory, or reaches the
    /// Docker Engine the way the Docker CLI does (`DOCKER_HOST`, else the local socket), or the
    /// Kubernetes API server of the kubeconfig (or the in-cluster service account), or checks
    /// that this machine can run sandboxed containers and makes their state directory.
    pub async fn connect(self, settings: &BackendSettings) -> Result<Arc<dyn Containerizer>> {
        if !self.is_available() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the `{}` backend is not in this build of hoist: enable the `{}` feature \
                     or choose another backend",
                    self.as_str(),
                    self.feature()
                ),
            )
            .with_context("backend", self.as_str()));
        }
        let _ = settings;
        match self {
            #[cfg(feature = "process")]
            Backend::Process => Ok(Arc::new(hoist_process::ProcessContainerizer::new(
                &settings.state_dir,
            )?)),
            #[cfg(feature = "sandbox")]
            Backend::Sandbox => Ok(Arc::new(hoist_sandbox::SandboxContainerizer::new(
                &settings.state_dir,
            )?)),
            #[cfg(feature = "docker")]
            Backend::Docker => Ok(Arc::new(
                hoist_docker::DockerContainerizer::connect(hoist_docker::DockerConfig::from_env())
                    .await?,
            )),
            #[cfg(feature = "kube")]
            Backend::Kubernetes => {
                let config = hoist_kube::KubeConfig {
                    namespace: settings
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    host_volumes: if settings.copy_host_volumes {
                        hoist_kube::HostVolumes::Copy
                    } else {
                        hoist_kube::HostVolumes::HostPath
                    },
                    ..hoist_kube::KubeConfig::default()
                };
                let kube = match &settings.kubeconfig {
                    Some(path) => {
                        hoist_kube::KubeContainerizer::from_kubeconfig(path, config).await?
                    }
                    None => hoist_kube::KubeContainerizer::in_cluster(config)?,
                };
                Ok(Arc::new(kube))
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("an unavailable backend was refused above"),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Backend::ALL
            .into_iter()
            .find(|b| b.as_str() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "`{name}` is not a backend (known: process, docker, kubernetes, sandbox)"
                ))
            })
    }
}

/// What the backends need to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// The process and sandbox backends' state directory.
    pub state_dir: PathBuf,
    /// The Kubernetes backend's kubeconfig; `None` uses the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of Kubernetes pods (default `default`).
    pub namespace: Option<String>,
    /// How host volumes reach pods: `true` (the default) copies each into a ConfigMap the pod
    /// owns, so pods run on any node, at most `hoist_kube::COPY_LIMIT` bytes per volume;
    /// `false` mounts them as `hostPath` volumes, which must then exist on every node.
    pub copy_host_volumes: bool,
}

impl BackendSettings {
    /// Settings with the process backend's state in `state_dir`, the in-cluster Kubernetes
    /// configuration, the default namespace, and host volumes copied into pods.
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        BackendSettings {
            state_dir: state_dir.as_ref().to_path_buf(),
            kubeconfig: None,
            namespace: None,
            copy_host_volumes: true,
        }
    }
}
