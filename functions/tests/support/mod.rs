//! Shared set-up of the function executor tests.

#![allow(dead_code)]

pub mod boto3;
pub mod docker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hoist_functions::FunctionExecutor;
use hoist_functions::config::{FunctionsConfig, RuntimeCommand};

use hoist_core::testing::{cargo_build, target_profile_dir};
use hoist_core::{Containerizer, ExecutorId};
use hoist_process::ProcessContainerizer;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the `echo-lambda` example (a `lambda_runtime` function) once and returns its path.
pub fn echo_lambda() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let args = ["-p", "hoist-functions", "--example", "echo-lambda"];
            cargo_build(crate_dir, &args, "examples/echo-lambda").unwrap()
        })
        .clone()
}

/// Builds hoist-runtimes' `hoist-proxy` once (usually already built with the workspace's
/// tests) and returns its path.
pub fn hoist_proxy() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let args = ["-p", "hoist-runtimes", "--bin", "hoist-proxy"];
            cargo_build(crate_dir, &args, "hoist-proxy").unwrap()
        })
        .clone()
}

/// Waits (up to 10 s: under load placement can take a while) until an invocation of
/// `function` is placed on an environment, then a moment more for the runtime to take it up.
pub async fn until_placed(functions: &FunctionExecutor, function: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !functions
        .pool()
        .environments()
        .iter()
        .any(|e| e.key.function() == function && e.in_flight > 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no invocation of {function} is ever placed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// A code directory whose `bootstrap` is the echo-lambda binary, as a custom runtime expects.
pub fn rust_code_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(echo_lambda(), dir.path().join("bootstrap")).unwrap();
    dir
}

/// A config with the `provided` runtime (`{code}/bootstrap`) and, when a venv is given, the
/// `python3` runtime on awslambdaric.
pub fn config(venv: Option<&Path>) -> FunctionsConfig {
    let mut config = FunctionsConfig::from_vars(Vec::<(String, String)>::new()).unwrap();
    config.runtimes.insert(
        "provided".into(),
        RuntimeCommand::lambda(["{code}/bootstrap"]),
    );
    if let Some(venv) = venv {
        let python = venv
            .join("bin")
            .join("python")
            .to_string_lossy()
            .into_owned();
        config.runtimes.insert(
            "python3".into(),
            RuntimeCommand::lambda([python.as_str(), "-m", "awslambdaric", "{handler}"]),
        );
    }
    config
}

/// A function executor on the process backend, with its state directory.
pub fn executor(config: FunctionsConfig) -> (FunctionExecutor, Processes) {
    let state = tempfile::tempdir().unwrap();
    let backend = Arc::new(ProcessContainerizer::new(state.path()).unwrap());
    let executor = FunctionExecutor::start(backend.clone(), config).unwrap();
    (
        executor,
        Processes {
            backend,
            _state: state,
        },
    )
}

/// The process backend of a test, to check that nothing is left behind.
pub struct Processes {
    backend: Arc<ProcessContainerizer>,
    _state: tempfile::TempDir,
}

impl Processes {
    /// The environments' containers not yet removed (every one the executor created).
    pub async fn leftovers(&self) -> Vec<String> {
        self.backend
            .list_owned(&ExecutorId::new("hoist-functions"))
            .await
            .unwrap()
            .into_iter()
            .map(|c| format!("{} ({:?})", c.id, c.state))
            .collect()
    }

    /// Waits up to 5 s for every container to be removed, and says which were not.
    pub async fn assert_clean(&self) {
        for _ in 0..50 {
            if self.leftovers().await.is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "environments were left behind: {:?}",
            self.leftovers().await
        );
    }
}

/// Kills a process with SIGKILL, as an outside event.
pub fn kill_externally(pid: u32) {
    // SAFETY: kill(2) with a pid of a process the test started, and a valid signal.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// The Python virtual environment with boto3 and awslambdaric (made by
/// `functions/tests/setup-python.sh`): `HOIST_LAMBDA_VENV`, else `target/lambda-venv`.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("HOIST_LAMBDA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            target_profile_dir()
                .unwrap()
                .parent()
                .unwrap()
                .join("lambda-venv")
        });
    assert!(
        venv.join("bin").join("python").exists(),
        "no Python venv at {}: run functions/tests/setup-python.sh",
        venv.display()
    );
    venv
}
