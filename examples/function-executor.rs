//! A function executor on loopback: the function registry, plain HTTP invoke and the AWS Lambda
//! Invoke API, with a few example functions. Environments run on the backend
//! `LAMBDA_RUNTIME_EXECUTOR` names: `process` (the default), `docker` (feature `docker`) or
//! `kubernetes` (feature `kube`, with `KUBECONFIG` or the in-cluster account, and LocalStack's
//! `LOCALSTACK_K8S_*` variables, `LOCALSTACK_K8S_POD_CONFIG` included).
//!
//! ```sh
//! cargo run --example function-executor --features functions
//! # Docker: every runtime needs an image with python3 (and awslambdaric for `python3`).
//! LAMBDA_RUNTIME_EXECUTOR=docker \
//!   LAMBDA_RUNTIME_IMAGE_MAPPING='{"python-contract":"python:3.12-slim"}' \
//!   cargo run --example function-executor --features functions,docker
//! curl -X POST -H 'event-id: 1' -d '{"it-s":"alive"}' \
//!     -H 'content-type: application/json' http://127.0.0.1:9000/functions/echo
//! aws --endpoint-url http://127.0.0.1:9000 lambda invoke --function-name hello out.json
//! ```
//!
//! Settings, read from the environment: `HOIST_LISTEN` (default `127.0.0.1:9000`),
//! LocalStack's variables (`LAMBDA_KEEPALIVE_MS`, `LAMBDA_LIMITS_CONCURRENT_EXECUTIONS`,
//! `LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT`...), and `HOIST_LAMBDA_PYTHON`: a Python with
//! `awslambdaric` installed, which adds a `python3` Lambda runtime and the `lambda-echo`
//! function (`functions/tests/setup-python.sh` makes one at `target/lambda-venv`); on a
//! container backend the `python3` runtime is the image's own `python3`, added when
//! `LAMBDA_RUNTIME_IMAGE_MAPPING` maps `python3`.

use std::path::Path;

use hoist::Volume;
use hoist::function_backend::{BackendSettings, containerizer};
use hoist::functions::config::{Backend, FunctionsConfig, RuntimeProtocol};
use hoist::functions::{FunctionExecutor, FunctionSpec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = FunctionsConfig::from_vars(std::env::vars())?;
    let containers = config.backend != Backend::Process;

    // Contract runtimes: hoist-runtimes' Python shim serves a module's handler on FUNC_PORT.
    // The image (on container backends) comes from LAMBDA_RUNTIME_IMAGE_MAPPING; the shim is
    // mounted at its host path. The shim listens on loopback only (it is meant to sit behind
    // hoist-proxy), which a pod's own network hides from the executor, so on Kubernetes only
    // the Lambda runtime is offered; a contract runtime image for pods serves FUNC_PORT on every
    // interface, as hoist-proxy and Kubeless's runtimes do.
    let with_contract = config.backend != Backend::Kubernetes;
    if with_contract {
        let shims = repo.join("runtimes/shims/python");
        let contract = config.runtimes.entry("python-contract".into()).or_default();
        contract.command = vec![
            "python3".into(),
            shims
                .join("hoist_runtime.py")
                .to_string_lossy()
                .into_owned(),
        ];
        contract.protocol = RuntimeProtocol::Contract;
        if containers {
            contract.volumes.push(Volume {
                host_path: shims.clone(),
                container_path: shims.clone(),
                read_only: true,
            });
        }
    }
    // A Lambda runtime: a host Python with awslambdaric, or an image that has it.
    let lambda_python = if containers {
        config
            .runtimes
            .get("python3")
            .is_some_and(|r| r.image.is_some())
            .then(|| "python3".to_owned())
    } else {
        std::env::var("HOIST_LAMBDA_PYTHON").ok()
    };
    if let Some(python) = &lambda_python {
        let runtime = config.runtimes.entry("python3".into()).or_default();
        runtime.command = [python.as_str(), "-m", "awslambdaric", "{handler}"]
            .map(String::from)
            .to_vec();
        runtime.protocol = RuntimeProtocol::LambdaRuntimeApi;
    }

    let state = tempfile::tempdir()?;
    // KUBECONFIG, and LocalStack's LOCALSTACK_K8S_* variables (pod profiles...) for pods.
    let settings = BackendSettings::from_vars(state.path(), std::env::vars());
    let backend = containerizer(&config, &settings).await?;
    tracing::info!(backend = backend.name(), "environments run on this backend");
    let functions = FunctionExecutor::start(backend, config)?;

    let examples = repo.join("examples/functions/python");
    let mut registered = Vec::new();
    if with_contract {
        registered.push(FunctionSpec::new(
            "hello",
            "python-contract",
            "helloget.foo",
            &examples,
        ));
        registered.push(FunctionSpec::new(
            "echo",
            "python-contract",
            "hellowithdata.handler",
            &examples,
        ));
    }
    if lambda_python.is_some() {
        registered.push(FunctionSpec::new(
            "lambda-echo",
            "python3",
            "app.handler",
            repo.join("functions/tests/python"),
        ));
    }
    for mut spec in registered {
        spec.env
            .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        let version = functions.create(spec)?;
        tracing::info!(function = %version.spec.name, runtime = %version.spec.runtime, "registered");
    }

    let listen = std::env::var("HOIST_LISTEN").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /functions and /2015-03-31/functions/{{name}}/invocations");
    hoist::functions::http::serve(listener, functions.clone(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    tracing::info!("shutting down: stopping every environment");
    functions.shutdown().await;
    Ok(())
}
