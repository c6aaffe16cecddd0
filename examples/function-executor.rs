//! A function executor on loopback: the function registry, plain HTTP invoke and the AWS Lambda
//! Invoke API, with environments on the process backend and a few example functions.
//!
//! ```sh
//! cargo run --example function-executor --features functions
//! curl -X POST -H 'event-id: 1' -d '{"it-s":"alive"}' \
//!     -H 'content-type: application/json' http://127.0.0.1:9000/functions/echo
//! aws --endpoint-url http://127.0.0.1:9000 lambda invoke --function-name hello out.json
//! ```
//!
//! Settings, read from the environment: `HOIST_LISTEN` (default `127.0.0.1:9000`),
//! LocalStack's variables (`LAMBDA_KEEPALIVE_MS`, `LAMBDA_LIMITS_CONCURRENT_EXECUTIONS`,
//! `LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT`...), and `HOIST_LAMBDA_PYTHON`: a Python with
//! `awslambdaric` installed, which adds a `python3` Lambda runtime and the `lambda-echo`
//! function (`functions/tests/setup-python.sh` makes one at `target/lambda-venv`).

use std::path::Path;
use std::sync::Arc;

use hoist::functions::config::{Backend, FunctionsConfig, RuntimeCommand};
use hoist::functions::{FunctionExecutor, FunctionSpec};
use hoist::process::ProcessContainerizer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = FunctionsConfig::from_vars(std::env::vars())?;
    if config.backend != Backend::Process {
        anyhow::bail!(
            "this example runs environments on the process backend; unset LAMBDA_RUNTIME_EXECUTOR"
        );
    }

    // Contract runtimes: hoist-runtimes' Python shim serves a module's handler on FUNC_PORT.
    let shim = repo.join("runtimes/shims/python/hoist_runtime.py");
    config.runtimes.insert(
        "python-contract".into(),
        RuntimeCommand::contract(["python3".to_owned(), shim.to_string_lossy().into_owned()]),
    );
    // A Lambda runtime, when a Python with awslambdaric is at hand.
    let lambda_python = std::env::var("HOIST_LAMBDA_PYTHON").ok();
    if let Some(python) = &lambda_python {
        config.runtimes.insert(
            "python3".into(),
            RuntimeCommand::lambda([python.as_str(), "-m", "awslambdaric", "{handler}"]),
        );
    }

    let state = tempfile::tempdir()?;
    let backend = Arc::new(ProcessContainerizer::new(state.path())?);
    let functions = FunctionExecutor::start(backend, config)?;

    let examples = repo.join("examples/functions/python");
    let mut registered = vec![
        FunctionSpec::new("hello", "python-contract", "helloget.foo", &examples),
        FunctionSpec::new(
            "echo",
            "python-contract",
            "hellowithdata.handler",
            &examples,
        ),
    ];
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
