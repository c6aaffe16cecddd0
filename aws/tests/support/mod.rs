//! What the client tests share: a function host that records what it is asked and echoes
//! invocations, a server on loopback, and the venv with boto3 and the AWS CLI.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_aws::AwsError;
use hoist_aws::lambda::{
    Deployment, FunctionHost, InvocationType, InvokeOutput, InvokeRequest, LambdaConfig,
    LambdaService, errors,
};
use serde_json::{Value, json};

/// Records deploys, removals and reservations; echoes invocations. Deploys of functions named
/// `slow-*` wait until [`TestHost::release`]; deploys of `broken-*` fail.
#[derive(Default)]
pub struct TestHost {
    /// Whether it declares that it runs images.
    pub images: bool,
    pub deploys: Mutex<Vec<Deployment>>,
    pub removed: Mutex<Vec<(String, Option<String>)>>,
    pub reserved: Mutex<HashMap<String, Option<u32>>>,
    pub released: AtomicBool,
    pub gate: tokio::sync::Notify,
}

impl TestHost {
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.gate.notify_waiters();
    }

    /// The versions deployed for `function`, in order.
    pub fn deployed(&self, function: &str) -> Vec<String> {
        self.deploys
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.function == function)
            .map(|d| d.version.clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl FunctionHost for TestHost {
    async fn deploy(&self, deployment: Deployment) -> Result<(), AwsError> {
        if deployment.function.starts_with("slow-") {
            while !self.released.load(Ordering::SeqCst) {
                let notified = self.gate.notified();
                if self.released.load(Ordering::SeqCst) {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        }
        if deployment.function.starts_with("broken-") {
            return Err(errors::service(format!(
                "no interpreter for {}",
                deployment.runtime.as_deref().unwrap_or("the image")
            )));
        }
        self.deploys.lock().unwrap().push(deployment);
        Ok(())
    }

    fn capabilities(&self) -> hoist_aws::lambda::HostCapabilities {
        let mut capabilities = hoist_aws::lambda::HostCapabilities::default();
        capabilities.images = self.images;
        capabilities
    }

    async fn remove(&self, function: &str, version: Option<&str>) -> Result<(), AwsError> {
        self.removed
            .lock()
            .unwrap()
            .push((function.to_owned(), version.map(str::to_owned)));
        Ok(())
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError> {
        let reserved = self
            .reserved
            .lock()
            .unwrap()
            .get(&request.function)
            .copied();
        if reserved == Some(Some(0)) {
            return Err(errors::too_many_requests(
                "ReservedFunctionConcurrentInvocationLimitExceeded",
                1,
            ));
        }
        let event: Value = serde_json::from_slice(&request.payload).unwrap();
        let log_tail = request.tail_log.then(|| {
            format!(
                "START RequestId: {} Version: {}\nEND RequestId: {}\n",
                request.request_id, request.version, request.request_id
            )
            .into()
        });
        if event.get("fail") == Some(&Value::Bool(true)) {
            return Ok(InvokeOutput {
                payload: json!({"errorType": "TestError", "errorMessage": "asked to fail"})
                    .to_string()
                    .into(),
                function_error: Some("Unhandled".into()),
                log_tail,
            });
        }
        let payload = match request.invocation_type {
            InvocationType::RequestResponse => json!({
                "event": event,
                "function": request.function,
                "version": request.version,
                "invoked_arn": request.invoked_arn,
                "request_id": request.request_id,
                "client_context": request.client_context,
            })
            .to_string()
            .into(),
            InvocationType::Event | InvocationType::DryRun => bytes::Bytes::new(),
        };
        Ok(InvokeOutput {
            payload,
            function_error: None,
            log_tail,
        })
    }

    async fn set_reserved_concurrency(
        &self,
        function: &str,
        reserved: Option<u32>,
    ) -> Result<(), AwsError> {
        self.reserved
            .lock()
            .unwrap()
            .insert(function.to_owned(), reserved);
        Ok(())
    }
}

/// The Lambda API served on loopback.
pub struct Server {
    pub endpoint: String,
    pub service: LambdaService,
    pub host: Arc<TestHost>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(state_dir: &Path) -> Server {
        Server::start_with(state_dir, Arc::new(TestHost::default())).await
    }

    pub async fn start_with(state_dir: &Path, host: Arc<TestHost>) -> Server {
        let store = hoist_store::Store::open(state_dir).unwrap();
        let service = LambdaService::start(store, host.clone(), LambdaConfig::default()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, task) = serve(listener, service.router());
        Server {
            endpoint,
            service,
            host,
            stop,
            task,
        }
    }

    pub async fn stop(mut self) {
        unserve(self.stop.take(), &mut self.task).await;
        self.service.shutdown().await;
    }
}

/// The EC2, ECS and ELBv2 APIs served on loopback over `backend`.
pub struct ComputeServer {
    pub endpoint: String,
    pub service: hoist_aws::compute::ComputeService,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ComputeServer {
    /// Serves the state directory `state` over `backend`, reconciling every 200 ms.
    pub async fn start(
        state: &Path,
        backend: Arc<dyn hoist_core::Containerizer>,
        config: hoist_aws::compute::ComputeConfig,
    ) -> ComputeServer {
        let store = hoist_store::Store::open(state).unwrap();
        let config = hoist_aws::compute::ComputeConfig {
            reconcile_interval: Duration::from_millis(200),
            stop_grace: Duration::from_secs(3),
            ..config
        };
        let service = hoist_aws::compute::ComputeService::start(store, backend, config).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, task) = serve(listener, service.router());
        ComputeServer {
            endpoint,
            service,
            stop,
            task,
        }
    }

    pub async fn stop(mut self) {
        unserve(self.stop.take(), &mut self.task).await;
        self.service.shutdown().await;
    }
}

/// Serves `router` on `listener` until the returned sender is used (see [`unserve`]).
pub fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> (
    Option<tokio::sync::oneshot::Sender<()>>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (Some(stop), task)
}

/// Stops what [`serve`] serves, waiting up to 10 s.
pub async fn unserve(
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: &mut tokio::task::JoinHandle<()>,
) {
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops")
        .unwrap();
}

/// The venv with boto3 and the AWS CLI (made by `functions/tests/setup-python.sh`):
/// `HOIST_LAMBDA_VENV`, else `target/lambda-venv`.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("HOIST_LAMBDA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("target")
                .join("lambda-venv")
        });
    assert!(
        venv.join("bin").join("aws").exists(),
        "no venv with boto3 and the AWS CLI at {}: run functions/tests/setup-python.sh",
        venv.display()
    );
    venv
}

/// An AWS client process with test credentials and no configuration of the machine's.
pub fn client_command(program: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .kill_on_drop(true);
    command
}

/// Runs one phase of `tests/python/lambda_boto3.py` against `endpoint`; returns what it
/// printed, failing with its output when it fails.
pub async fn boto3(endpoint: &str, phase: &str, args: &[&str]) -> Value {
    python("lambda_boto3.py", endpoint, phase, args).await
}

/// Runs one phase of the script `tests/python/<script>` against `endpoint`; returns the JSON
/// it printed last, failing with its output when it fails.
pub async fn python(script: &str, endpoint: &str, phase: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(script);
    let output = tokio::time::timeout(
        Duration::from_secs(240),
        client_command(&venv().join("bin").join("python"))
            .arg(script)
            .arg(endpoint)
            .arg(phase)
            .args(args)
            .output(),
    )
    .await
    .expect("the boto3 phase finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "boto3 phase {phase} failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("phase {phase} printed no JSON ({e}):\n{stdout}"))
}

/// Sends one request to `router`; returns the status, the headers and the JSON body (`null`
/// for none).
pub async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: impl Into<axum::body::Body>,
) -> (axum::http::StatusCode, axum::http::HeaderMap, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(
            axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {uri}: the answer is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, headers, value)
}

/// A zip archive holding one file.
pub fn zip_of(name: &str, text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(text.as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}
