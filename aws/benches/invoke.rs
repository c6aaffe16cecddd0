//! What the Lambda front door adds to an invocation: the router (request id, body checks,
//! resolving the qualifier in the store) against calling the same host directly, in the same
//! run. The host echoes at once, so the difference is the front door's whole cost.
//!
//! Run: `cargo bench -p hoist-aws --bench invoke` (prints a markdown table).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use hoist_aws::AwsError;
use hoist_aws::lambda::{
    Deployment, FunctionHost, InvocationType, InvokeOutput, InvokeRequest, LambdaConfig,
    LambdaService,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Echo;

#[async_trait::async_trait]
impl FunctionHost for Echo {
    async fn deploy(&self, _: Deployment) -> Result<(), AwsError> {
        Ok(())
    }
    async fn remove(&self, _: &str, _: Option<&str>) -> Result<(), AwsError> {
        Ok(())
    }
    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError> {
        Ok(InvokeOutput {
            payload: request.payload,
            function_error: None,
            log_tail: None,
        })
    }
}

const CALLS: usize = 20_000;

async fn measure<F, Fut>(mut call: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..1000 {
        call().await;
    }
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let start = Instant::now();
        call().await;
        times.push(start.elapsed());
    }
    times.sort();
    (times[CALLS / 2], times[CALLS * 99 / 100])
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

async fn request(router: &axum::Router, method: &str, uri: &str, body: String) -> Vec<u8> {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{method} {uri}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let host: Arc<dyn FunctionHost> = Arc::new(Echo);
    let store = hoist_store::Store::open(dir.path()).unwrap();
    let service = LambdaService::start(store, host.clone(), LambdaConfig::default()).await;
    let router = service.router();
    let zip = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("app.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"x = 1\n").unwrap();
        zip.finish().unwrap().into_inner()
    };
    let create = serde_json::json!({
        "FunctionName": "bench",
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "app.handler",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
    });
    request(&router, "POST", "/2015-03-31/functions", create.to_string()).await;
    // Active once the background deployment has been recorded.
    for _ in 0..500 {
        let conf = request(
            &router,
            "GET",
            "/2015-03-31/functions/bench/configuration",
            String::new(),
        )
        .await;
        if String::from_utf8_lossy(&conf).contains("\"State\":\"Active\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    request(
        &router,
        "POST",
        "/2015-03-31/functions/bench/versions",
        "{}".into(),
    )
    .await;
    request(
        &router,
        "POST",
        "/2015-03-31/functions/bench/aliases",
        r#"{"Name": "live", "FunctionVersion": "1"}"#.into(),
    )
    .await;

    let payload = r#"{"hello":"world"}"#;
    let direct = measure(|| {
        let host = host.clone();
        async move {
            host.invoke(InvokeRequest {
                request_id: hoist_aws::RequestId::new().0,
                function: "bench".into(),
                version: "$LATEST".into(),
                invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
                payload: bytes::Bytes::from_static(payload.as_bytes()),
                invocation_type: InvocationType::RequestResponse,
                tail_log: false,
                client_context: None,
            })
            .await
            .unwrap();
        }
    })
    .await;
    let mut rows = vec![("direct `FunctionHost::invoke`", direct)];
    for (label, uri) in [
        (
            "router, `$LATEST`",
            "/2015-03-31/functions/bench/invocations",
        ),
        (
            "router, alias",
            "/2015-03-31/functions/bench/invocations?Qualifier=live",
        ),
    ] {
        let router = router.clone();
        let timing = measure(|| {
            let router = router.clone();
            async move {
                request(&router, "POST", uri, payload.into()).await;
            }
        })
        .await;
        rows.push((label, timing));
    }
    println!("| path | median µs | p99 µs | median − direct µs |");
    println!("|---|---|---|---|");
    for (label, (median, p99)) in &rows {
        println!(
            "| {label} | {} | {} | {} |",
            micros(*median),
            micros(*p99),
            micros(median.saturating_sub(direct.0))
        );
    }
    service.shutdown().await;
}
