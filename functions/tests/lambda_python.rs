//! boto3 against the Lambda Invoke API, invoking Python functions that run under awslambdaric
//! inside environments on local processes. Needs the venv of `setup-python.sh`.

mod support;

use support::boto3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_invokes_python_functions_running_under_awslambdaric() {
    let venv = support::venv();
    let (functions, processes) = support::executor(support::config(Some(&venv)));
    boto3::create_functions(&functions, "python3");
    let r = boto3::run_client(&functions, &venv).await;
    boto3::check_results(&r);
    assert_eq!(boto3::environments_of(&functions, "py-wide"), 3);

    functions.shutdown().await;
    processes.assert_clean().await;
}
