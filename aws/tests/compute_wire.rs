//! The compute router's envelopes on the wire, below any SDK: the Query protocol's XML answers
//! and its two error shapes, and JSON 1.1's `__type` errors, as botocore's parsers read them.

use std::sync::Arc;

use hoist_aws::compute::{ComputeConfig, ComputeService};
use hoist_process::ProcessContainerizer;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn post(
    router: &axum::Router,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut request = axum::http::Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = router
        .clone()
        .oneshot(
            request
                .body(axum::body::Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn each_protocol_answers_and_fails_in_its_own_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(dir.path().join("state")).unwrap();
    let backend = Arc::new(ProcessContainerizer::new(dir.path().join("backend")).unwrap());
    let service = ComputeService::start(store, backend, ComputeConfig::default()).await;
    let router = service.router();

    let (status, kind, body) = post(
        &router,
        &[FORM],
        "Action=DescribeInstances&Version=2016-11-15",
    )
    .await;
    assert_eq!((status, kind.as_str()), (200, "text/xml"));
    assert!(
        body.contains("<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>")
            && body.contains("<reservationSet></reservationSet>"),
        "{body}"
    );
    let (status, _, body) = post(
        &router,
        &[FORM],
        "Action=RebootInstances&Version=2016-11-15",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("<Response><Errors><Error><Code>InvalidAction</Code><Message>The action RebootInstances is not valid for this web service.</Message></Error></Errors><RequestID>"),
        "{body}"
    );
    let (status, _, body) = post(
        &router,
        &[FORM],
        "Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>MissingParameter</Code><Message>The request must contain the parameter ImageId</Message>"), "{body}");

    let (status, _, body) = post(
        &router,
        &[FORM],
        "Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A000000000000%3Atargetgroup%2Fx%2F1",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code>"),
        "{body}"
    );

    let target = |op: &'static str| {
        [
            ("x-amz-target", op),
            ("content-type", "application/x-amz-json-1.1"),
        ]
    };
    let (status, kind, body) = post(
        &router,
        &target("AmazonEC2ContainerServiceV20141113.ListClusters"),
        "{}",
    )
    .await;
    assert_eq!((status, kind.as_str()), (200, "application/x-amz-json-1.1"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"clusterArns": []})
    );
    let (status, _, body) = post(
        &router,
        &target("AmazonEC2ContainerServiceV20141113.DescribeServices"),
        "{\"services\": [\"x\"]}",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"__type": "ClusterNotFoundException", "message": "Cluster not found."})
    );
    let (status, _, body) = post(
        &router,
        &target("AmazonEC2ContainerServiceV20141113.ListClusters"),
        "{not json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("\"__type\":\"SerializationException\""),
        "{body}"
    );
    let (status, _, body) = post(&router, &target("AmazonSQS.ListQueues"), "{}").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("\"__type\":\"UnknownOperationException\""),
        "{body}"
    );
    service.shutdown().await;
}

fn xml_values<'a>(body: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    body.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split(close.as_str()).next())
        .collect()
}

#[tokio::test]
async fn terminated_instances_are_forgotten_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(dir.path().join("state")).unwrap();
    let backend = Arc::new(ProcessContainerizer::new(dir.path().join("backend")).unwrap());
    let config = ComputeConfig {
        terminated_retention: std::time::Duration::ZERO,
        stop_grace: std::time::Duration::from_secs(2),
        ..ComputeConfig::default()
    };
    let service = ComputeService::start(store.clone(), backend, config).await;
    let router = service.router();
    let (status, _, body) = post(
        &router,
        &[FORM],
        "Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=2&MaxCount=2",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids = xml_values(&body, "instanceId");
    assert_eq!(ids.len(), 2);
    let (status, _, body) = post(
        &router,
        &[FORM],
        &format!(
            "Action=TerminateInstances&Version=2016-11-15&InstanceId.1={}",
            ids[0]
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = post(
        &router,
        &[FORM],
        "Action=DescribeInstances&Version=2016-11-15",
    )
    .await;
    // With no retention the terminated instance is gone at the next look; the other runs.
    assert_eq!(xml_values(&body, "instanceId"), [ids[1]]);
    assert!(
        store
            .read(|tx| tx.resource("ec2-instance", ids[0]))
            .unwrap()
            .is_none()
    );
    let (_, _, body) = post(
        &router,
        &[FORM],
        &format!(
            "Action=TerminateInstances&Version=2016-11-15&InstanceId.1={}",
            ids[1]
        ),
    )
    .await;
    assert!(body.contains("<name>shutting-down</name>"), "{body}");
    service.shutdown().await;
}

#[tokio::test]
async fn a_restart_removes_containers_no_record_names_and_keeps_the_others() {
    use hoist_core::{ContainerSpec, Containerizer, Owner};
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(ProcessContainerizer::new(dir.path().join("backend")).unwrap());
    let store = hoist_store::Store::open(dir.path().join("state")).unwrap();
    let service = ComputeService::start(store, backend.clone(), ComputeConfig::default()).await;
    let (_, _, body) = post(
        &service.router(),
        &[FORM],
        "Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&MaxCount=1",
    )
    .await;
    let kept = xml_values(&body, "instanceId")[0].to_owned();
    service.shutdown().await;
    // A container the server created but never recorded (it crashed in between).
    let owner = Owner {
        executor_id: "hoist-ec2".into(),
        task_id: "i-00000000000000001".into(),
    };
    let stray = backend
        .create(
            &owner,
            &ContainerSpec::command(["/bin/sh", "-c", "sleep 60"]),
        )
        .await
        .unwrap();
    backend.start(&stray).await.unwrap();

    let store = hoist_store::Store::open(dir.path().join("state")).unwrap();
    let service = ComputeService::start(store, backend.clone(), ComputeConfig::default()).await;
    let owned = backend.list_owned(&"hoist-ec2".into()).await.unwrap();
    let tasks: Vec<&str> = owned.iter().map(|c| c.owner.task_id.as_str()).collect();
    assert_eq!(tasks, [kept.as_str()]);
    let (_, _, body) = post(
        &service.router(),
        &[FORM],
        &format!("Action=TerminateInstances&Version=2016-11-15&InstanceId.1={kept}"),
    )
    .await;
    assert!(body.contains("<name>shutting-down</name>"), "{body}");
    service.shutdown().await;
}
