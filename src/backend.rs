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

use std::collections::BTreeMap;
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
                let mut config = hoist_kube::KubeConfig::from_vars(&settings.variables)?;
                if let Some(namespace) = &settings.namespace {
                    config.namespace = namespace.clone();
                }
                config.host_volumes = if settings.copy_host_volumes {
                    hoist_kube::HostVolumes::Copy
                } else {
                    hoist_kube::HostVolumes::HostPath
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
    /// The namespace of Kubernetes pods, over `LOCALSTACK_K8S_NAMESPACE` in
    /// [`BackendSettings::variables`] (default `default`).
    pub namespace: Option<String>,
    /// How host volumes reach pods: `true` (the default) copies each into a ConfigMap the pod
    /// owns, so pods run on any node, at most `hoist_kube::COPY_LIMIT` bytes per volume;
    /// `false` mounts them as `hostPath` volumes, which must then exist on every node.
    pub copy_host_volumes: bool,
    /// LocalStack's variables of the Kubernetes backend, by name: `LOCALSTACK_K8S_NAMESPACE`,
    /// `LOCALSTACK_K8S_LABELS` (or `LAMBDA_K8S_LABELS`), `LOCALSTACK_K8S_ANNOTATIONS`,
    /// `LOCALSTACK_K8S_POD_CONFIG` (pod profiles) and `K8S_CONTAINER_SECURITY_CONTEXT`, as
    /// `hoist_kube::KubeConfig::from_vars` reads them; a malformed one fails
    /// [`Backend::connect`] naming it. Other backends ignore them.
    pub variables: BTreeMap<String, String>,
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
            variables: BTreeMap::new(),
        }
    }

    /// Settings as [`BackendSettings::new`] gives them, with what a program's environment
    /// `vars` says of Kubernetes: the kubeconfig `KUBECONFIG` names (its first path; unset,
    /// the in-cluster service account) and LocalStack's variables of pods (see
    /// [`BackendSettings::variables`]).
    ///
    /// ```
    /// use hoist::backend::BackendSettings;
    ///
    /// let settings = BackendSettings::from_vars(
    ///     "/var/lib/hoist",
    ///     [("KUBECONFIG", "/etc/kube/a:/etc/kube/b"), ("LOCALSTACK_K8S_NAMESPACE", "work"), ("HOME", "/root")],
    /// );
    /// assert_eq!(settings.kubeconfig.as_deref(), Some(std::path::Path::new("/etc/kube/a")));
    /// assert_eq!(settings.variables["LOCALSTACK_K8S_NAMESPACE"], "work");
    /// assert!(!settings.variables.contains_key("HOME"));
    /// ```
    pub fn from_vars<K, V>(
        state_dir: impl AsRef<Path>,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut settings = BackendSettings::new(state_dir);
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            if key == "KUBECONFIG" {
                settings.kubeconfig = value
                    .split(':')
                    .find(|p| !p.trim().is_empty())
                    .map(PathBuf::from);
            } else if KUBE_VARIABLES.contains(&key) {
                settings.variables.insert(key.to_owned(), value.to_owned());
            }
        }
        settings
    }
}

/// The variables [`BackendSettings::from_vars`] keeps for the Kubernetes backend.
const KUBE_VARIABLES: [&str; 6] = [
    "LOCALSTACK_K8S_NAMESPACE",
    "LOCALSTACK_K8S_LABELS",
    "LAMBDA_K8S_LABELS",
    "LOCALSTACK_K8S_ANNOTATIONS",
    "LOCALSTACK_K8S_POD_CONFIG",
    "K8S_CONTAINER_SECURITY_CONTEXT",
];

#[cfg(all(test, feature = "kube", feature = "testing"))]
mod tests {
    use super::*;
    use hoist_core::{ContainerSpec, Owner};

    #[tokio::test]
    async fn pods_are_shaped_by_localstacks_variables() {
        let server = hoist_kube::testing::FakeApiServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let kubeconfig = kubeconfig.display().to_string();
        let profiles = r#"{"profiles": {"ecs": {"priorityClassName": "tasks"}},
                           "services": {"ecs": {"profile": "ecs"}}}"#;
        let vars = [
            ("KUBECONFIG", kubeconfig.as_str()),
            ("LOCALSTACK_K8S_NAMESPACE", "work"),
            ("LOCALSTACK_K8S_POD_CONFIG", profiles),
            ("LOCALSTACK_K8S_ANNOTATIONS", "team=data"),
        ];
        let settings = BackendSettings::from_vars(dir.path(), vars);
        let pods = Backend::Kubernetes.connect(&settings).await.unwrap();
        let mut spec = ContainerSpec::command(["sleep", "100"]);
        spec.image = Some("busybox:1.37".into());
        spec.labels
            .insert(hoist_core::labels::SERVICE.into(), "ecs".into());
        let owner = Owner {
            executor_id: "hoist-ecs".into(),
            task_id: "t1/app".into(),
        };
        let id = pods.create(&owner, &spec).await.unwrap();
        pods.start(&id).await.unwrap();
        let pod = server.pod(id.as_str()).unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("work"));
        assert_eq!(pod.metadata.annotations.unwrap()["team"], "data");
        assert_eq!(
            pod.spec.unwrap().priority_class_name.as_deref(),
            Some("tasks")
        );
        pods.remove(&id, true).await.unwrap();

        // A document with an unknown field fails the connection, naming it.
        let vars = [
            ("KUBECONFIG", kubeconfig.as_str()),
            (
                "LOCALSTACK_K8S_POD_CONFIG",
                r#"{"profiles": {}, "service": {}}"#,
            ),
        ];
        let settings = BackendSettings::from_vars(dir.path(), vars);
        let Err(err) = Backend::Kubernetes.connect(&settings).await else {
            panic!("an unknown field is refused");
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            err.context_value("field"),
            Some("LOCALSTACK_K8S_POD_CONFIG")
        );
        assert!(err.to_string().contains("`service`"), "{err}");
    }
}
