//! EC2, ECS and ELBv2 as AWS's clients see them, over a [`Store`] and a [`Containerizer`]:
//! one axum [`Router`] serving `POST /` for all three, told apart as botocore sends them —
//! ECS by its `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>` header (JSON
//! 1.1), EC2 and ELBv2 by the form body's `Version` (`2016-11-15`, `2015-12-01`; the Query
//! protocol).
//!
//! Every resource lives in the store (instances, clusters, task definitions, tasks, services,
//! target groups and their targets), so a server started again on the same state directory
//! serves what its predecessor did: it finds the containers still running by their ids,
//! reports those that died meanwhile as stopped, with a reason, and removes the containers it
//! owns (`list_owned`) that no record names. A background pass
//! ([`ComputeConfig::reconcile_interval`]) keeps services at their desired count, registers
//! their tasks with their target groups, and probes every target with hoist's health checkers.
//!
//! The router has no fallback, so it merges with the Lambda API's (which has one): this is how
//! a server mounts both on one port.
//!
//! ```no_run
//! # async fn run(
//! #     host: std::sync::Arc<dyn hoist_aws::lambda::FunctionHost>,
//! #     backend: std::sync::Arc<dyn hoist_core::Containerizer>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use hoist_aws::compute::{ComputeConfig, ComputeService};
//! use hoist_aws::lambda::{LambdaConfig, LambdaService};
//!
//! let store = hoist_store::Store::open("/var/lib/hoist")?;
//! let lambda = LambdaService::start(store.clone(), host, LambdaConfig::default()).await;
//! let config = ComputeConfig::from_vars(std::env::vars())?;
//! let compute = ComputeService::start(store, backend, config).await;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4566").await?;
//! axum::serve(listener, lambda.router().merge(compute.router())).await?;
//! compute.shutdown().await;
//! lambda.shutdown().await;
//! # Ok(()) }
//! ```

mod ec2;
mod ec2_describe;
mod ecs;
mod ecs_services;
mod elbv2;
mod reconcile;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use hoist_core::{Capabilities, Containerizer};
use hoist_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{AwsError, RequestId};
use crate::query::{EC2, ELBV2, Params, json11_error, json11_response};

/// The `X-Amz-Target` prefix of ECS operations.
pub const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// Where the APIs say resources live, how images are found, and the background pass's pace.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeConfig {
    /// The region in ARNs (`us-east-1`).
    pub region: String,
    /// The account id in ARNs and `ownerId` (`000000000000`, LocalStack's default).
    pub account_id: String,
    /// `EC2_IMAGE_MAPPING`: AMI id to the backend image an instance of it runs (a JSON object,
    /// `{"ami-12345678": "ubuntu:24.04"}`). Backends that run images refuse an AMI it does not
    /// name; the process backend needs none (an instance runs its user data).
    pub image_mapping: BTreeMap<String, String>,
    /// How often services are reconciled and targets probed.
    pub reconcile_interval: Duration,
    /// How long a stopped instance or task gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// How long a terminated instance stays visible (AWS: about an hour).
    pub terminated_retention: Duration,
    /// How long [`ComputeService::shutdown`] waits for the background pass.
    pub shutdown_grace: Duration,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            image_mapping: BTreeMap::new(),
            reconcile_interval: Duration::from_secs(2),
            stop_grace: Duration::from_secs(10),
            terminated_retention: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ComputeConfig {
    /// Reads `EC2_IMAGE_MAPPING` and `AWS_DEFAULT_REGION` from `vars` (a program passes its
    /// environment); unset ones keep their defaults.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> hoist_core::Result<Self> {
        let mut config = ComputeConfig::default();
        for (key, value) in vars {
            match key.as_ref() {
                "AWS_DEFAULT_REGION" => config.region = value.as_ref().to_owned(),
                "EC2_IMAGE_MAPPING" => {
                    config.image_mapping =
                        serde_json::from_str(value.as_ref()).map_err(|e| {
                            hoist_core::Error::invalid_field(
                                "EC2_IMAGE_MAPPING",
                                format!(
                                    "must be a JSON object of AMI ids to images, such as {{\"ami-12345678\": \"ubuntu:24.04\"}}: {e}"
                                ),
                            )
                        })?;
                }
                _ => {}
            }
        }
        Ok(config)
    }
}

/// EC2, ECS and ELBv2 over a store and a containerizer. Cheap to clone.
#[derive(Clone)]
pub struct ComputeService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ComputeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeService")
            .field("state_dir", &self.shared.store.dir())
            .field("backend", &self.shared.backend.name())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    store: Store,
    backend: Arc<dyn Containerizer>,
    capabilities: Capabilities,
    config: ComputeConfig,
    /// Serialises every change (requests and the background pass).
    lock: tokio::sync::Mutex<()>,
    /// Each target's health, by (target group ARN, target id, port): transient, as a load
    /// balancer's view is (after a restart, targets start `initial` again).
    health: std::sync::Mutex<HashMap<elbv2::TargetKey, elbv2::Health>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl ComputeService {
    /// Starts the APIs over `store` and `backend`: reconciles what the store holds with what
    /// still runs (instances and tasks whose containers are gone are reported stopped), then
    /// runs the background pass until [`ComputeService::shutdown`].
    pub async fn start(
        store: Store,
        backend: Arc<dyn Containerizer>,
        config: ComputeConfig,
    ) -> Self {
        let service = ComputeService {
            shared: Arc::new(Shared {
                store,
                capabilities: backend.capabilities(),
                backend,
                config,
                lock: tokio::sync::Mutex::new(()),
                health: std::sync::Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
        };
        if let Err(e) = service.remove_strays().await {
            tracing::warn!(error = %e, "could not remove containers no record names");
        }
        if let Err(e) = service.reconcile().await {
            tracing::warn!(error = %e, "the first reconciliation failed");
        }
        let background = service.clone();
        let cancel = service.shared.cancel.clone();
        service.shared.tracker.spawn(async move {
            let interval = background.shared.config.reconcile_interval;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                if let Err(e) = background.reconcile().await {
                    tracing::warn!(error = %e, "reconciliation failed");
                }
            }
        });
        service
    }

    /// The router serving `POST /` for EC2, ECS and ELBv2.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(dispatch))
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(crate::protocol::request_id_layer))
    }

    /// Stops the background pass, waiting up to [`ComputeConfig::shutdown_grace`]. Instances
    /// and tasks keep running: a server started again finds them.
    pub async fn shutdown(&self) {
        self.shared.tracker.close();
        self.shared.cancel.cancel();
        let _ = tokio::time::timeout(
            self.shared.config.shutdown_grace,
            self.shared.tracker.wait(),
        )
        .await;
    }

    /// One pass of the background work: instances and tasks whose containers ended are
    /// recorded as stopped, services are brought to their desired count, their targets
    /// registered, and every target probed once.
    pub async fn reconcile(&self) -> Result<(), AwsError> {
        {
            let _guard = self.shared.lock.lock().await;
            ec2::refresh(&self.shared).await?;
            reconcile::refresh_tasks(&self.shared).await?;
            reconcile::services(&self.shared).await?;
        }
        elbv2::probe_all(&self.shared).await
    }

    /// Removes the containers of `hoist-ec2` and `hoist-ecs` (found with `list_owned`) that
    /// no instance or task in the store names: those a server created and then crashed before
    /// recording. Run by [`ComputeService::start`], before any request.
    async fn remove_strays(&self) -> Result<(), AwsError> {
        let shared = &self.shared;
        let mut named = std::collections::HashSet::new();
        for instance in documents(shared, ec2::KIND)? {
            named.extend(instance["Container"].as_str().map(str::to_owned));
        }
        for task in documents(shared, reconcile::TASKS)? {
            for c in task["containers"].as_array().into_iter().flatten() {
                named.extend(c["Container"].as_str().map(str::to_owned));
            }
        }
        for executor in [ec2::EXECUTOR, reconcile::EXECUTOR] {
            let owned = shared
                .backend
                .list_owned(&executor.into())
                .await
                .map_err(|e| backend_error("list the containers it owns", e))?;
            for container in owned {
                if !named.contains(container.id.as_str()) {
                    tracing::info!(container = %container.id, task = %container.owner.task_id, "removing a container no record names");
                    let _ = shared.backend.remove(&container.id, true).await;
                }
            }
        }
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }
}

async fn dispatch(
    State(service): State<ComputeService>,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &service.shared;
    if let Some(target) = headers.get("x-amz-target") {
        let target = target.to_str().unwrap_or_default();
        let result: Result<serde_json::Value, AwsError> =
            match target.strip_prefix(ECS_TARGET_PREFIX) {
                Some(operation) => match parse_json_body(&body) {
                    Ok(input) => ecs::handle(shared, operation, input).await,
                    Err(e) => Err(e),
                },
                None => Err(AwsError::new(
                    "UnknownOperationException",
                    StatusCode::BAD_REQUEST,
                    format!("{target} is not an operation this endpoint serves"),
                )),
            };
        return match result {
            Ok(output) => json11_response(&output),
            Err(e) => json11_error(&e),
        };
    }
    let params = Params::parse(&body);
    if params.get("Version") == Some("2015-12-01") {
        return elbv2::handle(shared, &params, &request_id)
            .await
            .unwrap_or_else(|e| ELBV2.error(&e, &request_id));
    }
    ec2::handle(shared, &params, &request_id)
        .await
        .unwrap_or_else(|e| EC2.error(&e, &request_id))
}

fn parse_json_body(body: &[u8]) -> Result<serde_json::Value, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        AwsError::new(
            "SerializationException",
            StatusCode::BAD_REQUEST,
            format!("the request body is not JSON: {e}"),
        )
    })
}

/// Every document of `kind` in the store, in the order first written.
pub(crate) fn documents(shared: &Shared, kind: &str) -> Result<Vec<serde_json::Value>, AwsError> {
    Ok(shared
        .store
        .read(|tx| tx.resources(kind))
        .map_err(store_error)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// A store failure, as the service's fault.
pub(crate) fn store_error(e: StoreError) -> AwsError {
    AwsError::new(
        "InternalFailure",
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the state store failed: {e}"),
    )
}

/// A backend failure, as the service's fault, naming what was being done.
pub(crate) fn backend_error(action: &str, e: hoist_core::Error) -> AwsError {
    AwsError::new(
        "InternalFailure",
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("could not {action}: {e}"),
    )
}

/// An architecture as AWS writes it (`x86_64`, `X86_64`, `arm64`, `ARM64`) as Kubernetes names
/// it, for the [`ARCHITECTURE`](hoist_core::labels::ARCHITECTURE) label; `None` for others.
pub(crate) fn architecture(aws: &str) -> Option<&'static str> {
    match aws.to_ascii_lowercase().as_str() {
        "x86_64" | "amd64" => Some("amd64"),
        "arm64" | "aarch64" => Some("arm64"),
        _ => None,
    }
}

/// Labels every container of `service` (`ec2`, `ecs`) carries: the service, and the
/// architecture when known, by which the Kubernetes backend picks a pod profile.
pub(crate) fn service_labels(
    spec: &mut hoist_core::ContainerSpec,
    service: &str,
    architecture: Option<&str>,
) {
    spec.labels
        .insert(hoist_core::labels::SERVICE.into(), service.into());
    if let Some(architecture) = architecture {
        spec.labels
            .insert(hoist_core::labels::ARCHITECTURE.into(), architecture.into());
    }
}

/// `n` random lowercase hex digits (EC2's ids have 17, ECS's task ids 32).
pub(crate) fn hex_id(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Seconds since the epoch, with milliseconds.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// `secs` since the epoch as ISO 8601 UTC (`2024-05-01T12:00:00.000Z`), as EC2 writes times.
pub(crate) fn iso8601(secs: f64) -> String {
    let millis = (secs.max(0.0) * 1000.0).round() as u64;
    let (year, month, day, hour, minute, second) = crate::protocol::utc_parts(millis / 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z",
        millis % 1000
    )
}

/// The page of `items` from the offset `token` (`None`: the start) holding at most `size`,
/// and the token of the next page, if any. A token that is not an offset is `invalid`.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    token: Option<&str>,
    size: usize,
    invalid: impl FnOnce(&str) -> AwsError,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let start = match token {
        Some(t) => t.parse::<usize>().map_err(|_| invalid(t))?,
        None => 0,
    };
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    let page = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    Ok((page, next))
}

/// Whether `text` matches the AWS filter `pattern` (`*` any run, `?` any one character).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn matches(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => matches(&p[1..], t) || (!t.is_empty() && matches(p, &t[1..])),
            (Some('?'), Some(_)) => matches(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso8601_utc() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_709_251_199.5), "2024-02-29T23:59:59.500Z");
    }

    #[test]
    fn filters_glob_like_aws() {
        assert!(glob("web-*", "web-1"));
        assert!(glob("w?b", "web"));
        assert!(!glob("web", "web-1"));
        assert!(glob("*", ""));
    }

    #[test]
    fn the_image_mapping_is_a_json_object() {
        let config =
            ComputeConfig::from_vars([("EC2_IMAGE_MAPPING", r#"{"ami-1": "alpine:3"}"#)]).unwrap();
        assert_eq!(config.image_mapping["ami-1"], "alpine:3");
        let err = ComputeConfig::from_vars([("EC2_IMAGE_MAPPING", "ami-1=alpine")]).unwrap_err();
        assert!(err.to_string().contains("EC2_IMAGE_MAPPING"), "{err}");
    }
}
