//! Every example function deployed on the process backend: the steps and the runtime run as
//! local processes in the function's work directory.

mod support;

use std::sync::Arc;

use hoist_process::ProcessContainerizer;
use support::deploy::{Host, run_examples};

fn host(state: &tempfile::TempDir) -> Host {
    Host {
        backend: Arc::new(ProcessContainerizer::new(state.path()).unwrap()),
        docker: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_examples_on_processes() {
    let state = tempfile::tempdir().unwrap();
    run_examples(&host(&state), "python", "python3.11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_examples_on_processes() {
    let state = tempfile::tempdir().unwrap();
    run_examples(&host(&state), "nodejs", "nodejs20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_examples_on_processes() {
    let state = tempfile::tempdir().unwrap();
    run_examples(&host(&state), "rust", "rust1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_installation_ends_with_its_output() {
    let state = tempfile::tempdir().unwrap();
    support::deploy::failed_install(&host(&state)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_compilation_ends_with_its_output() {
    let state = tempfile::tempdir().unwrap();
    support::deploy::failed_compile(&host(&state)).await;
}
