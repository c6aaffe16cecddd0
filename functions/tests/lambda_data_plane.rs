//! The Lambda data plane as AWS's own client sees it: boto3 (and raw HTTP for the error shape
//! of every route) against the Invoke API, with a Python function under awslambdaric in
//! environments on local processes. Needs the venv of `setup-python.sh`.

mod support;

use std::time::Duration;

use hoist_functions::FunctionSpec;
use serde_json::{Value, json};
use support::boto3;

fn assert_aws_error(answer: &Value, status: u16, code: &str) {
    assert_eq!(answer["status"], status, "{answer}");
    assert_eq!(answer["error_type"], code, "{answer}");
    let request_id = answer["request_id"].as_str().unwrap_or_default();
    assert_eq!(request_id.len(), 36, "x-amzn-RequestId: {answer}");
    assert_eq!(answer["body"]["Type"], "User", "{answer}");
    assert!(answer["body"]["message"].is_string(), "{answer}");
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sees_the_lambda_data_plane_as_aws_gives_it() {
    let venv = support::venv();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut config = support::config(Some(&venv));
    config.endpoint_url = Some(endpoint.clone());
    config.credentials.session_token = "session".into();
    let (functions, processes) = support::executor(config);
    let code = boto3::code_dir();
    let mut spec = FunctionSpec::new("py-inspect", "python3", "app.inspect", &code);
    spec.env
        .insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    spec.timeout = Duration::from_secs(20);
    functions.create(spec).unwrap();

    let r = boto3::run_script(listener, &functions, &venv, "data_plane.py").await;

    // No payload: the function gets `{}`.
    assert_eq!(r["no_payload"]["status"], 200, "{r}");
    assert_eq!(r["no_payload"]["function_error"], Value::Null, "{r}");
    assert_eq!(r["no_payload"]["payload"]["event"], json!({}));

    // Invalid JSON: 400 InvalidRequestContentException, for Event too.
    for case in ["bad_json", "bad_json_event"] {
        assert_eq!(r[case]["status"], 400, "{case}: {r}");
        assert_eq!(r[case]["code"], "InvalidRequestContentException", "{r}");
        let message = r[case]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Could not parse request body into json: "),
            "{message}"
        );
    }

    // The client context reaches the runtime decoded.
    let context = &r["client_context"]["payload"]["client_context"];
    assert_eq!(r["client_context"]["function_error"], Value::Null, "{r}");
    assert_eq!(context["custom"], json!({"k": "v"}), "{r}");
    assert_eq!(context["env"], json!({"platform": "test"}), "{r}");
    assert_eq!(context["client"]["app_title"], "t", "{r}");
    assert_eq!(r["bad_client_context"]["status"], 400, "{r}");
    assert_eq!(
        r["bad_client_context"]["code"],
        "InvalidRequestContentException"
    );

    // Sizes: a request over 6291456 bytes, a response over 6291556 bytes.
    assert_eq!(r["big_request"]["status"], 413, "{r}");
    assert_eq!(r["big_request"]["code"], "RequestEntityTooLargeException");
    assert_eq!(
        r["big_request"]["message"],
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );
    assert_eq!(r["big_response"]["status"], 200, "{r}");
    assert_eq!(r["big_response"]["function_error"], "Unhandled");
    assert_eq!(
        r["big_response"]["payload"],
        json!({
            "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            "errorType": "Function.ResponseSizeTooLarge"
        })
    );
    assert_eq!(
        r["after_big_response"]["payload"]["pid"], r["before_big_response"]["payload"]["pid"],
        "the environment survived the oversize response: {r}"
    );

    // The environment as AWS gives it.
    let env = &r["no_payload"]["payload"]["env"];
    assert_eq!(env["AWS_EXECUTION_ENV"], "AWS_Lambda_python3", "{env}");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["LANG"], "en_US.UTF-8");
    assert_eq!(env["LAMBDA_RUNTIME_DIR"], "/var/runtime");
    assert_eq!(env["LAMBDA_TASK_ROOT"], code.to_str().unwrap());
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "test");
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "test");
    assert_eq!(env["AWS_SESSION_TOKEN"], "session");
    assert_eq!(env["AWS_ENDPOINT_URL"], endpoint.as_str());
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    let trace = env["_X_AMZN_TRACE_ID"].as_str().unwrap();
    let (root, rest) = trace.split_once(";Parent=").unwrap();
    let (parent, sampled) = rest.split_once(';').unwrap();
    let root: Vec<&str> = root.split('-').collect();
    assert_eq!(root[0], "Root=1", "{trace}");
    assert!(
        is_hex(root[1], 8) && is_hex(root[2], 24) && is_hex(parent, 16),
        "{trace}"
    );
    assert_eq!(sampled, "Sampled=0", "{trace}");
    let stream = env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap();
    let (date, id) = stream.split_once("/[$LATEST]").unwrap();
    let parts: Vec<&str> = date.split('/').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [4, 2, 2],
        "{stream}"
    );
    assert!(
        parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())),
        "{stream}"
    );
    assert!(is_hex(id, 32), "{stream}");

    // A qualifier that does not exist is named in the ARN as AWS writes it.
    assert_eq!(r["missing_version"]["status"], 404, "{r}");
    let message = r["missing_version"]["message"].as_str().unwrap();
    assert!(
        message.ends_with(":function:py-inspect:42"),
        "the qualified ARN: {message}"
    );

    // Every error on every route: X-Amzn-ErrorType, x-amzn-RequestId, a JSON Type and message.
    let routes = &r["routes"];
    assert_aws_error(&routes["unknown_path"], 404, "UnknownOperationException");
    assert_aws_error(&routes["wrong_method"], 404, "UnknownOperationException");
    assert_aws_error(
        &routes["missing_function"],
        404,
        "ResourceNotFoundException",
    );
    assert_aws_error(
        &routes["bad_invocation_type"],
        400,
        "InvalidParameterValueException",
    );
    assert_aws_error(&routes["bad_json"], 400, "InvalidRequestContentException");
    assert_aws_error(&routes["too_large"], 413, "RequestEntityTooLargeException");

    functions.shutdown().await;
    processes.assert_clean().await;
}
