//! The backend of a function executor, chosen by its configuration
//! ([`FunctionsConfig::backend`], LocalStack's `LAMBDA_RUNTIME_EXECUTOR`): local processes
//! (feature `process`), Docker containers (feature `docker`) or Kubernetes pods (feature
//! `kube`). A backend whose feature is not compiled in is an error naming the variable and the
//! feature to enable.
//!
//! ```no_run
//! # async fn run() -> hoist::Result<()> {
//! use hoist::function_backend::{BackendSettings, containerizer};
//! use hoist::functions::FunctionExecutor;
//! use hoist::functions::config::FunctionsConfig;
//!
//! let config = FunctionsConfig::from_vars(std::env::vars())?;
//! let state = std::env::temp_dir().join("hoist-functions");
//! let backend = containerizer(&config, &BackendSettings::new(&state)).await?;
//! let functions = FunctionExecutor::start(backend, config)?;
//! # functions.shutdown().await;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use hoist_core::Containerizer;
#[cfg(any(feature = "docker", feature = "kube"))]
use hoist_core::{Error, ErrorKind};
use hoist_functions::config::{Backend, FunctionsConfig};

/// The variable that chooses the backend.
pub const BACKEND_VARIABLE: &str = "LAMBDA_RUNTIME_EXECUTOR";
/// The variable that gives each runtime its image on container backends.
pub const IMAGE_MAPPING_VARIABLE: &str = "LAMBDA_RUNTIME_IMAGE_MAPPING";

pub use crate::backend::BackendSettings;

/// On a container backend every runtime needs an image.
#[cfg(any(feature = "docker", feature = "kube"))]
fn check_images(config: &FunctionsConfig) -> hoist_core::Result<()> {
    match config.runtimes.iter().find(|(_, r)| r.image.is_none()) {
        Some((runtime, _)) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{BACKEND_VARIABLE}` is `{}` but runtime `{runtime}` has no image: give it one \
                 in `{IMAGE_MAPPING_VARIABLE}`",
                config.backend.as_str()
            ),
        )
        .with_context("field", IMAGE_MAPPING_VARIABLE)),
        None => Ok(()),
    }
}

/// The variable that tells environments where the executor's Runtime API is.
pub const RUNTIME_API_HOST_VARIABLE: &str = "HOSTNAME_FROM_LAMBDA";

/// What pods need that local environments do not: pods have their own network, so they reach
/// the executor's Runtime API only at an address the executor names.
#[cfg(feature = "kube")]
fn check_pods(config: &FunctionsConfig) -> hoist_core::Result<()> {
    if config.runtime_api_host.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{BACKEND_VARIABLE}` is `kubernetes` but `{RUNTIME_API_HOST_VARIABLE}` is not \
                 set: pods cannot reach the Runtime API on the executor's loopback; set it to \
                 the executor's address as pods see it (its pod IP or a Service)"
            ),
        )
        .with_context("field", RUNTIME_API_HOST_VARIABLE));
    }
    Ok(())
}

/// Builds the backend `config.backend` names. On Docker and Kubernetes every runtime of
/// `config.runtimes` must have an image (from `LAMBDA_RUNTIME_IMAGE_MAPPING`); on Kubernetes,
/// `config.runtime_api_host` must be set (`HOSTNAME_FROM_LAMBDA`).
pub async fn containerizer(
    config: &FunctionsConfig,
    settings: &BackendSettings,
) -> hoist_core::Result<Arc<dyn Containerizer>> {
    let backend = match config.backend {
        Backend::Process => crate::backend::Backend::Process,
        Backend::Docker => crate::backend::Backend::Docker,
        Backend::Kubernetes => crate::backend::Backend::Kubernetes,
    };
    if backend.is_available() {
        #[cfg(any(feature = "docker", feature = "kube"))]
        if backend != crate::backend::Backend::Process {
            check_images(config)?;
        }
        #[cfg(feature = "kube")]
        if backend == crate::backend::Backend::Kubernetes {
            check_pods(config)?;
        }
    }
    backend.connect(settings).await.map_err(|e| {
        if e.kind() == hoist_core::ErrorKind::Unsupported {
            e.with_context("field", BACKEND_VARIABLE)
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> FunctionsConfig {
        FunctionsConfig::from_vars(vars.iter().copied()).unwrap()
    }

    #[cfg(feature = "process")]
    #[tokio::test]
    async fn the_process_backend_is_the_default() {
        let state = tempfile::tempdir().unwrap();
        let backend = containerizer(&config(&[]), &BackendSettings::new(state.path()))
            .await
            .unwrap();
        assert_eq!(backend.name(), "process");
    }

    #[cfg(feature = "docker")]
    #[tokio::test]
    async fn a_container_backend_needs_an_image_for_every_runtime() {
        let mut config = config(&[
            (BACKEND_VARIABLE, "docker"),
            (IMAGE_MAPPING_VARIABLE, r#"{"python3.12":"python:3.12"}"#),
        ]);
        config.runtimes.entry("provided".into()).or_default();
        let Err(err) = containerizer(&config, &BackendSettings::new("/nonexistent")).await else {
            panic!("a runtime without an image is refused");
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("field"), Some(IMAGE_MAPPING_VARIABLE));
        assert!(err.to_string().contains("`provided`"), "{err}");
    }

    #[cfg(feature = "kube")]
    #[tokio::test]
    async fn pods_need_a_reachable_runtime_api() {
        let settings = BackendSettings::new("/nonexistent");
        let mapping = r#"{"provided":"runtime:1"}"#;
        let mut config = config(&[
            (BACKEND_VARIABLE, "kubernetes"),
            (IMAGE_MAPPING_VARIABLE, mapping),
        ]);
        config.runtimes.entry("provided".into()).or_default().image = Some("runtime:1".into());
        let Err(err) = containerizer(&config, &settings).await else {
            panic!("pods cannot reach the executor's loopback");
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("field"), Some(RUNTIME_API_HOST_VARIABLE));

        // With the host named, contract runtimes are accepted too; what fails next is reading
        // the (missing) kubeconfig.
        config.runtime_api_host = Some("10.0.0.7".into());
        let shim = hoist_functions::config::RuntimeCommand::contract(["shim"]).in_image("py:1");
        config.runtimes.insert("python-contract".into(), shim);
        let settings = BackendSettings {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            ..settings
        };
        let Err(err) = containerizer(&config, &settings).await else {
            panic!("there is no kubeconfig");
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("cannot read kubeconfig"), "{err}");
    }

    #[cfg(not(feature = "kube"))]
    #[tokio::test]
    async fn a_backend_not_compiled_in_names_the_variable_and_the_feature() {
        let config = config(&[(BACKEND_VARIABLE, "kubernetes")]);
        let Err(err) = containerizer(&config, &BackendSettings::new("/nonexistent")).await else {
            panic!("kubernetes is not compiled in");
        };
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(err.context_value("field"), Some(BACKEND_VARIABLE));
        let message = err.to_string();
        assert!(message.contains(BACKEND_VARIABLE), "{message}");
        assert!(message.contains("`kube` feature"), "{message}");
    }

    #[cfg(all(feature = "kube", feature = "testing"))]
    #[tokio::test]
    async fn pods_get_the_code_copied_unless_told_to_mount_it() {
        use hoist_core::{ContainerSpec, Owner, Volume};
        let server = hoist_kube::testing::FakeApiServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let code = dir.path().join("code");
        std::fs::create_dir(&code).unwrap();
        std::fs::write(code.join("handler.py"), "def handler(e, c): return e\n").unwrap();
        let mut config = config(&[
            (BACKEND_VARIABLE, "kubernetes"),
            (RUNTIME_API_HOST_VARIABLE, "10.0.0.5"),
        ]);
        config.runtimes.entry("provided".into()).or_default().image = Some("runtime:1".into());
        let mut spec = ContainerSpec::command(["/var/task/bootstrap"]);
        spec.image = Some("runtime:1".into());
        spec.volumes.push(Volume {
            host_path: code.clone(),
            container_path: "/var/task".into(),
            read_only: true,
        });
        let owner = Owner {
            executor_id: "hoist-functions".into(),
            task_id: "env-1".into(),
        };
        for copy in [true, false] {
            let settings = BackendSettings {
                kubeconfig: Some(kubeconfig.clone()),
                copy_host_volumes: copy,
                ..BackendSettings::new("/nonexistent")
            };
            let backend = containerizer(&config, &settings).await.unwrap();
            assert_eq!(backend.name(), "kubernetes");
            let id = backend.create(&owner, &spec).await.unwrap();
            backend.start(&id).await.unwrap();
            let pod = server.pod(id.as_str()).unwrap().spec.unwrap();
            let volume = &pod.volumes.unwrap()[0];
            assert_eq!(volume.config_map.is_some(), copy, "{volume:?}");
            assert_eq!(volume.host_path.is_some(), !copy, "{volume:?}");
            assert_eq!(server.config_maps().len(), usize::from(copy));
            backend.remove(&id, true).await.unwrap();
            assert!(server.config_maps().is_empty());
        }
    }
}
