//! The wire shape of every answer, on the router itself: each operation of botocore's Lambda
//! model is served or refused with an AWS error, never a bare 404; every answer carries a
//! request id, every error `X-Amzn-ErrorType` and a JSON body with `Type` and `message`.

mod support;

use support::call;

use axum::http::StatusCode;
use hoist_aws::lambda::model::OPERATIONS;
use hoist_aws::lambda::{LambdaConfig, LambdaService};
use serde_json::Value;

async fn start(dir: &std::path::Path) -> (LambdaService, axum::Router) {
    let host = std::sync::Arc::new(support::TestHost::default());
    let store = hoist_store::Store::open(dir).unwrap();
    let service = LambdaService::start(store, host, LambdaConfig::default()).await;
    let router = service.router();
    (service, router)
}

fn assert_aws_error(what: &str, status: StatusCode, headers: &axum::http::HeaderMap, body: &Value) {
    let code = headers
        .get("x-amzn-errortype")
        .unwrap_or_else(|| panic!("{what}: {status} without X-Amzn-ErrorType: {body}"))
        .to_str()
        .unwrap();
    assert!(!code.is_empty(), "{what}");
    assert_eq!(headers["content-type"], "application/json", "{what}");
    assert!(
        body["Type"] == "User" || body["Type"] == "Service",
        "{what}: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_model_gets_an_aws_shaped_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (service, router) = start(dir.path()).await;
    let mut unserved = Vec::new();
    for (name, method, template) in OPERATIONS {
        let uri = template
            .replace("{FunctionName}", "missing")
            .replace(
                "{Resource}",
                "arn:aws:lambda:us-east-1:000000000000:function:missing",
            )
            .split('{')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_owned()
                } else {
                    format!("x{}", part.split_once('}').map_or("", |(_, rest)| rest))
                }
            })
            .collect::<String>();
        let body = if matches!(*method, "POST" | "PUT") {
            "{}"
        } else {
            ""
        };
        let (status, headers, value) = call(&router, method, &uri, body).await;
        let what = format!("{name} ({method} {uri})");
        assert!(
            headers.contains_key("x-amzn-requestid"),
            "{what}: no request id"
        );
        if !status.is_success() {
            assert_aws_error(&what, status, &headers, &value);
            let code = headers["x-amzn-errortype"].to_str().unwrap();
            assert_ne!(
                code, "UnknownOperationException",
                "{what} is an operation of the model"
            );
            if code == "InternalFailure" {
                assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{what}");
                assert!(
                    value["message"].as_str().unwrap().contains(name),
                    "{what}: {value}"
                );
                unserved.push(*name);
            }
        }
    }
    // The served operations answer for themselves (here: the function does not exist).
    for served in [
        "CreateFunction",
        "GetFunction",
        "GetFunctionConfiguration",
        "ListFunctions",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "DeleteFunction",
        "PublishVersion",
        "ListVersionsByFunction",
        "CreateAlias",
        "GetAlias",
        "UpdateAlias",
        "DeleteAlias",
        "ListAliases",
        "PutFunctionConcurrency",
        "GetFunctionConcurrency",
        "DeleteFunctionConcurrency",
        "GetAccountSettings",
        "TagResource",
        "UntagResource",
        "ListTags",
        "Invoke",
    ] {
        assert!(!unserved.contains(&served), "{served} is served");
    }
    assert_eq!(unserved.len(), OPERATIONS.len() - 22, "{unserved:?}");
    service.shutdown().await;
}

#[tokio::test]
async fn requests_outside_the_model_and_bad_bodies_get_aws_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (service, router) = start(dir.path()).await;
    for (method, uri) in [
        ("GET", "/nothing"),
        ("PATCH", "/2015-03-31/functions"),
        ("PUT", "/2015-03-31/functions/f"),
    ] {
        let (status, headers, body) = call(&router, method, uri, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_aws_error(uri, status, &headers, &body);
        assert_eq!(headers["x-amzn-errortype"], "UnknownOperationException");
        assert!(body["message"].as_str().unwrap().contains(uri), "{body}");
    }
    let (status, headers, body) = call(&router, "POST", "/2015-03-31/functions", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_aws_error("bad JSON", status, &headers, &body);
    assert_eq!(headers["x-amzn-errortype"], "SerializationException");
    let (status, headers, body) = call(&router, "GET", "/2015-03-31/functions/missing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["x-amzn-errortype"], "ResourceNotFoundException");
    // The model spells this shape's member `Message`; both spellings are sent.
    assert_eq!(body["Message"], body["message"]);
    let (status, headers, body) = call(&router, "GET", "/2016-08-19/account-settings", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("x-amzn-requestid"));
    assert_eq!(body["AccountUsage"]["FunctionCount"], 0);
    service.shutdown().await;
}

/// Found by the `lambda_api` fuzz target: a path whose percent-encoding does not decode was
/// refused by the framework's own extractor, a plain-text 400 without AWS's error headers.
#[tokio::test]
async fn a_path_that_does_not_decode_gets_an_aws_error() {
    let dir = tempfile::tempdir().unwrap();
    let (service, router) = start(dir.path()).await;
    for uri in [
        "/2015-03-31/functions/%ff%fe/configuration",
        "/2015-03-31/functions/f%cc%/invocations",
        "/2019-09-30/functions/%c3%28/concurrency",
    ] {
        let method = if uri.ends_with("invocations") {
            "POST"
        } else {
            "GET"
        };
        let (status, headers, body) = call(&router, method, uri, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_aws_error(uri, status, &headers, &body);
        assert_eq!(
            headers["x-amzn-errortype"],
            "InvalidParameterValueException"
        );
        assert!(headers.contains_key("x-amzn-requestid"), "{uri}");
    }
    service.shutdown().await;
}
