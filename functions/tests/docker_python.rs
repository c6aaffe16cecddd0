//! boto3 against the Lambda Invoke API, invoking Python functions that run under awslambdaric
//! inside Docker containers: a `FROM scratch` busybox image built by the test, with the host's
//! Python, its libraries and the venv of `setup-python.sh` mounted read-only, on the host
//! network so that awslambdaric reaches its Runtime API endpoint on loopback.
//!
//! Without a reachable Docker Engine the test returns early with a note, unless
//! `HOIST_REQUIRE_DOCKER=1`.

mod support;

use std::path::Path;
use std::sync::Arc;

use hoist_functions::FunctionExecutor;
use hoist_functions::config::RuntimeCommand;
use support::boto3;

const FUNCTIONS: [&str; 5] = ["py-echo", "py-slow", "py-broken", "py-short", "py-wide"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_invokes_python_functions_in_docker_containers() {
    let venv = support::venv();
    let Some(docker) = support::docker::engine("the Docker boto3 scenarios").await else {
        return;
    };
    let tag = support::docker::busybox_image(&docker, "python").await;

    // The venv's python links to the host's interpreter: mount the venv, the interpreter's
    // installation (where the venv's symlink resolves) and the system libraries.
    let python = venv.join("bin").join("python");
    let interpreter = std::fs::canonicalize(&python).unwrap();
    let prefix = interpreter
        .parent()
        .and_then(Path::parent)
        .expect("the interpreter sits in <prefix>/bin");
    let mut runtime = RuntimeCommand::lambda([
        python.to_string_lossy().as_ref(),
        "-m",
        "awslambdaric",
        "{handler}",
    ])
    .in_image(&tag);
    runtime.volumes = support::docker::c_libraries();
    runtime
        .volumes
        .extend(support::docker::host_mounts(&[&venv, prefix]));
    let mut config = support::config(None);
    config.runtimes.insert("python3-docker".into(), runtime);
    let functions = FunctionExecutor::start(Arc::new(docker), config).unwrap();

    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenarios(
        &functions, &venv,
    )))
    .await;
    functions.shutdown().await;
    support::docker::wait_until_gone(&FUNCTIONS).await;
    support::docker::remove_test_image(&tag).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn scenarios(functions: &FunctionExecutor, venv: &Path) {
    boto3::create_functions(functions, "python3-docker");
    let r = boto3::run_client(functions, venv).await;
    boto3::check_results(&r);
    // The environments are containers: one per concurrent invocation, one reused for the
    // sequential ones.
    assert_eq!(boto3::environments_of(functions, "py-wide"), 3);
    assert_eq!(support::docker::containers_of("py-wide").len(), 3);
    assert_eq!(support::docker::containers_of("py-echo").len(), 1);
}
