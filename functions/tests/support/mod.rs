//! Shared set-up of the function executor tests.

#![allow(dead_code)]

pub mod local;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hoist_functions::FunctionExecutor;
use hoist_functions::config::{FunctionsConfig, RuntimeCommand};

pub use local::LocalProcesses;

/// The repository's target directory, from this test binary's path (`target/debug/deps/...`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds the `echo-lambda` example (a `lambda_runtime` function) once and returns its path.
pub fn echo_lambda() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
            let status = std::process::Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "echo-lambda",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the echo-lambda example failed");
            let path = target_profile_dir().join("examples").join("echo-lambda");
            assert!(path.exists(), "{} was not built", path.display());
            path
        })
        .clone()
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

/// A function executor on local processes.
pub fn executor(config: FunctionsConfig) -> (FunctionExecutor, LocalProcesses) {
    let processes = LocalProcesses::default();
    let executor = FunctionExecutor::start(Arc::new(processes.clone()), config).unwrap();
    (executor, processes)
}

/// The Python virtual environment with boto3 and awslambdaric (made by
/// `functions/tests/setup-python.sh`): `HOIST_LAMBDA_VENV`, else `target/lambda-venv`.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("HOIST_LAMBDA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_profile_dir().parent().unwrap().join("lambda-venv"));
    assert!(
        venv.join("bin").join("python").exists(),
        "no Python venv at {}: run functions/tests/setup-python.sh",
        venv.display()
    );
    venv
}
