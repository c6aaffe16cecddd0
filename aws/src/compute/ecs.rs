//! ECS (JSON 1.1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`): clusters,
//! task definitions, tasks and services. Members are botocore's `ecs` model's; error codes
//! are its exceptions (`ClusterNotFoundException`, `ServiceNotFoundException`,
//! `ServiceNotActiveException`, `ClientException`, `InvalidParameterException`) with the
//! messages ECS gives as LocalStack (moto) records them ("Cluster not found.").
//! How tasks run and services keep their count is in [`super::reconcile`].

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::reconcile::{self, SERVICES, TASKS};
use super::{Shared, ecs_services, now_secs, paginate, store_error};
use crate::protocol::AwsError;

const CLUSTERS: &str = "ecs-cluster";
const DEFINITIONS: &str = "ecs-task-definition";

/// `ClientException` (400) with `message`.
pub(crate) fn client_error(message: impl Into<String>) -> AwsError {
    AwsError::new("ClientException", StatusCode::BAD_REQUEST, message)
}

/// `ServerException` (500) with `message`.
pub(crate) fn server_error(message: impl Into<String>) -> AwsError {
    AwsError::new(
        "ServerException",
        StatusCode::INTERNAL_SERVER_ERROR,
        message,
    )
}

pub(crate) fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(
        "InvalidParameterException",
        StatusCode::BAD_REQUEST,
        message,
    )
}

fn cluster_not_found() -> AwsError {
    AwsError::new(
        "ClusterNotFoundException",
        StatusCode::BAD_REQUEST,
        "Cluster not found.",
    )
}

pub(crate) fn str_field<'a>(input: &'a Value, key: &str) -> Result<&'a str, AwsError> {
    input[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("{key} must be given")))
}

pub(crate) async fn handle(
    shared: &Shared,
    operation: &str,
    input: Value,
) -> Result<Value, AwsError> {
    match operation {
        "CreateCluster" => create_cluster(shared, &input).await,
        "ListClusters" => {
            let all = all(shared, CLUSTERS)?;
            Ok(
                json!({"clusterArns": all.iter().filter(|c| c["status"] == "ACTIVE").map(|c| c["clusterArn"].clone()).collect::<Vec<_>>()}),
            )
        }
        "DescribeClusters" => describe_clusters(shared, &input),
        "DeleteCluster" => delete_cluster(shared, &input).await,
        "RegisterTaskDefinition" => register_definition(shared, &input).await,
        "DescribeTaskDefinition" => {
            let definition = definition(shared, str_field(&input, "taskDefinition")?)?;
            Ok(json!({"taskDefinition": public(&definition), "tags": definition["Tags"].clone()}))
        }
        "ListTaskDefinitions" => list_definitions(shared, &input),
        "DeregisterTaskDefinition" => {
            let _guard = shared.lock.lock().await;
            let mut d = definition(shared, str_field(&input, "taskDefinition")?)?;
            d["status"] = json!("INACTIVE");
            d["deregisteredAt"] = json!(now_secs());
            put(
                shared,
                DEFINITIONS,
                d["taskDefinitionArn"].as_str().unwrap_or_default(),
                &d,
            )?;
            Ok(json!({"taskDefinition": public(&d)}))
        }
        "RunTask" => run_task(shared, &input).await,
        "StopTask" => {
            let cluster = cluster(shared, &input)?;
            let task = find_task(shared, &cluster, str_field(&input, "task")?)?;
            let reason = input["reason"].as_str().unwrap_or("Task stopped by user");
            let _guard = shared.lock.lock().await;
            let task = reconcile::stop(shared, task, reason, "UserInitiated").await?;
            Ok(json!({"task": public(&task)}))
        }
        "DescribeTasks" => {
            let cluster = cluster(shared, &input)?;
            let mut tasks = Vec::new();
            let mut failures = Vec::new();
            for t in input["tasks"].as_array().into_iter().flatten() {
                let t = t.as_str().unwrap_or_default();
                match find_task(shared, &cluster, t) {
                    Ok(task) => tasks.push(public(&task)),
                    Err(_) => failures.push(json!({"arn": t, "reason": "MISSING"})),
                }
            }
            Ok(json!({"tasks": tasks, "failures": failures}))
        }
        "ListTasks" => list_tasks(shared, &input),
        "CreateService" => ecs_services::create_service(shared, &input).await,
        "UpdateService" => ecs_services::update_service(shared, &input).await,
        "DeleteService" => ecs_services::delete_service(shared, &input).await,
        "DescribeServices" => ecs_services::describe_services(shared, &input),
        other => Err(AwsError::new(
            "UnknownOperationException",
            StatusCode::BAD_REQUEST,
            format!("{other} is not an ECS operation this endpoint serves"),
        )),
    }
}

pub(crate) fn all(shared: &Shared, kind: &str) -> Result<Vec<Value>, AwsError> {
    super::documents(shared, kind)
}

pub(crate) fn put(shared: &Shared, kind: &str, id: &str, value: &Value) -> Result<(), AwsError> {
    shared
        .store
        .write(|tx| tx.put_resource(kind, id, value))
        .map_err(store_error)
}

/// A record without hoist's own members (capitalised: `Container`, `Service`, `Tags`, `Id`).
pub(crate) fn public(record: &Value) -> Value {
    match record {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with(|c: char| c.is_ascii_uppercase()))
                .map(|(k, v)| (k.clone(), public(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(public).collect()),
        other => other.clone(),
    }
}

pub(crate) fn arn(shared: &Shared, rest: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:{rest}",
        shared.config.region, shared.config.account_id
    )
}

/// The cluster `name_or_arn` (`default` when not given).
fn cluster_named(shared: &Shared, name_or_arn: Option<&str>) -> Result<Value, AwsError> {
    let name = name_or_arn.unwrap_or("default");
    let name = name.rsplit_once(":cluster/").map_or(name, |(_, n)| n);
    shared
        .store
        .read(|tx| tx.resource(CLUSTERS, name))
        .map_err(store_error)?
        .filter(|c| c["status"] == "ACTIVE")
        .ok_or_else(cluster_not_found)
}

pub(crate) fn cluster(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    cluster_named(shared, input["cluster"].as_str())
}

/// The cluster with `arn`.
pub(crate) fn cluster_by_arn(shared: &Shared, arn: &str) -> Result<Value, AwsError> {
    cluster_named(shared, Some(arn))
}

async fn create_cluster(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let name = input["clusterName"].as_str().unwrap_or("default");
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "Cluster name can have up to 255 characters: letters, numbers, hyphens and underscores.",
        ));
    }
    let _guard = shared.lock.lock().await;
    let existing = shared
        .store
        .read(|tx| tx.resource(CLUSTERS, name))
        .map_err(store_error)?;
    if let Some(c) = existing.filter(|c| c["status"] == "ACTIVE") {
        return Ok(json!({"cluster": describe_cluster(shared, &c)?}));
    }
    let cluster = json!({
        "clusterArn": arn(shared, &format!("cluster/{name}")),
        "clusterName": name,
        "status": "ACTIVE",
        "tags": input["tags"].as_array().cloned().unwrap_or_default(),
        "settings": input["settings"].as_array().cloned().unwrap_or_default(),
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    });
    put(shared, CLUSTERS, name, &cluster)?;
    Ok(json!({"cluster": describe_cluster(shared, &cluster)?}))
}

fn describe_cluster(shared: &Shared, cluster: &Value) -> Result<Value, AwsError> {
    let arn = &cluster["clusterArn"];
    let tasks = all(shared, TASKS)?;
    let running = tasks
        .iter()
        .filter(|t| &t["clusterArn"] == arn && t["lastStatus"] == "RUNNING")
        .count();
    let services = all(shared, SERVICES)?;
    let active = services
        .iter()
        .filter(|s| &s["clusterArn"] == arn && s["status"] == "ACTIVE")
        .count();
    let mut out = public(cluster);
    out["runningTasksCount"] = json!(running);
    out["pendingTasksCount"] = json!(0);
    out["activeServicesCount"] = json!(active);
    out["registeredContainerInstancesCount"] = json!(0);
    Ok(out)
}

fn describe_clusters(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let names: Vec<String> = match input["clusters"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect(),
        _ => vec!["default".into()],
    };
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for name in names {
        match cluster_named(shared, Some(&name)) {
            Ok(c) => clusters.push(describe_cluster(shared, &c)?),
            Err(_) => failures
                .push(json!({"arn": arn(shared, &format!("cluster/{name}")), "reason": "MISSING"})),
        }
    }
    Ok(json!({"clusters": clusters, "failures": failures}))
}

async fn delete_cluster(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let _guard = shared.lock.lock().await;
    let mut c = cluster_named(shared, Some(str_field(input, "cluster")?))?;
    let arn = c["clusterArn"].clone();
    if all(shared, SERVICES)?
        .iter()
        .any(|s| s["clusterArn"] == arn && s["status"] != "INACTIVE")
    {
        return Err(AwsError::new(
            "ClusterContainsServicesException",
            StatusCode::BAD_REQUEST,
            "The Cluster cannot be deleted while Services are active.",
        ));
    }
    if all(shared, TASKS)?
        .iter()
        .any(|t| t["clusterArn"] == arn && t["lastStatus"] != "STOPPED")
    {
        return Err(AwsError::new(
            "ClusterContainsTasksException",
            StatusCode::BAD_REQUEST,
            "The Cluster cannot be deleted while Tasks are active.",
        ));
    }
    c["status"] = json!("INACTIVE");
    put(
        shared,
        CLUSTERS,
        c["clusterName"].as_str().unwrap_or_default(),
        &c,
    )?;
    Ok(json!({"cluster": public(&c)}))
}

async fn register_definition(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let family = str_field(input, "family")?.to_owned();
    let containers = input["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if containers.is_empty() {
        return Err(client_error("Container list cannot be empty."));
    }
    for c in &containers {
        if c["name"].as_str().is_none_or(str::is_empty) {
            return Err(client_error("Container.name should not be null or empty."));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            return Err(client_error("Container.image should not be null or empty."));
        }
    }
    let _guard = shared.lock.lock().await;
    let revision = all(shared, DEFINITIONS)?
        .iter()
        .filter(|d| d["family"] == family.as_str())
        .filter_map(|d| d["revision"].as_u64())
        .max()
        .unwrap_or(0)
        + 1;
    let arn = arn(shared, &format!("task-definition/{family}:{revision}"));
    let mut d = input.clone();
    let tags = d
        .as_object_mut()
        .and_then(|m| m.remove("tags"))
        .unwrap_or(json!([]));
    d["taskDefinitionArn"] = json!(arn);
    d["revision"] = json!(revision);
    d["status"] = json!("ACTIVE");
    d["registeredAt"] = json!(now_secs());
    if d["networkMode"].is_null() {
        d["networkMode"] = json!("bridge");
    }
    d["Tags"] = tags.clone();
    put(shared, DEFINITIONS, &arn, &d)?;
    Ok(json!({"taskDefinition": public(&d), "tags": tags}))
}

/// The task definition `family`, `family:revision` or its ARN (`family` alone: the latest
/// ACTIVE revision).
pub(crate) fn definition(shared: &Shared, name: &str) -> Result<Value, AwsError> {
    let short = name
        .rsplit_once(":task-definition/")
        .map_or(name, |(_, n)| n);
    let all = all(shared, DEFINITIONS)?;
    let found = match short.split_once(':') {
        Some((family, revision)) => all.into_iter().find(|d| {
            d["family"] == family
                && d["revision"].as_u64().map(|r| r.to_string()).as_deref() == Some(revision)
        }),
        None => all
            .into_iter()
            .filter(|d| d["family"] == short && d["status"] == "ACTIVE")
            .max_by_key(|d| d["revision"].as_u64()),
    };
    found.ok_or_else(|| client_error("Unable to describe task definition."))
}

fn list_definitions(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let status = input["status"].as_str().unwrap_or("ACTIVE");
    let mut arns: Vec<Value> = all(shared, DEFINITIONS)?
        .into_iter()
        .filter(|d| d["status"] == status)
        .filter(|d| {
            input["familyPrefix"]
                .as_str()
                .is_none_or(|p| d["family"].as_str().unwrap_or_default().starts_with(p))
        })
        .map(|d| d["taskDefinitionArn"].clone())
        .collect();
    if input["sort"] == "DESC" {
        arns.reverse();
    }
    page(arns, input, "taskDefinitionArns")
}

/// A page of `items` under `key`, by `maxResults` and `nextToken` (an offset).
fn page(items: Vec<Value>, input: &Value, key: &str) -> Result<Value, AwsError> {
    let size = input["maxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let (page, next) = paginate(items, input["nextToken"].as_str(), size, |t| {
        invalid(format!("Invalid nextToken: {t}"))
    })?;
    let mut out = json!({ key: page });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(out)
}

async fn run_task(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let cluster = cluster(shared, input)?;
    let definition = definition(shared, str_field(input, "taskDefinition")?)?;
    let count = input["count"].as_u64().unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(invalid("count must be between 1 and 10."));
    }
    let overrides = input["overrides"].clone();
    for o in overrides["containerOverrides"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let known = definition["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == o["name"]);
        if !known {
            return Err(invalid(format!(
                "Override for container named {} is not a container in the TaskDefinition.",
                o["name"].as_str().unwrap_or_default()
            )));
        }
    }
    let _guard = shared.lock.lock().await;
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..count {
        match reconcile::launch(
            shared,
            &cluster,
            &definition,
            &overrides,
            input["startedBy"].as_str(),
            None,
        )
        .await
        {
            Ok(mut task) => {
                // ECS answers RunTask before the task is placed.
                task["lastStatus"] = json!("PROVISIONING");
                tasks.push(public(&task));
            }
            Err(e) => failures.push(json!({"reason": e.message()})),
        }
    }
    Ok(json!({"tasks": tasks, "failures": failures}))
}

fn find_task(shared: &Shared, cluster: &Value, task: &str) -> Result<Value, AwsError> {
    let id = task.rsplit('/').next().unwrap_or(task);
    let arn = format!(
        "{}/{id}",
        cluster["clusterArn"]
            .as_str()
            .unwrap_or_default()
            .replace(":cluster/", ":task/")
    );
    shared
        .store
        .read(|tx| tx.resource(TASKS, &arn))
        .map_err(store_error)?
        .ok_or_else(|| invalid("The referenced task was not found."))
}

fn list_tasks(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let cluster = cluster(shared, input)?;
    let desired = input["desiredStatus"].as_str().unwrap_or("RUNNING");
    let arns: Vec<Value> = all(shared, TASKS)?
        .into_iter()
        .filter(|t| t["clusterArn"] == cluster["clusterArn"] && t["desiredStatus"] == desired)
        .filter(|t| {
            input["family"]
                .as_str()
                .is_none_or(|f| t["group"] == format!("family:{f}").as_str())
        })
        .filter(|t| {
            input["serviceName"]
                .as_str()
                .is_none_or(|s| t["Service"] == s)
        })
        .filter(|t| {
            input["startedBy"]
                .as_str()
                .is_none_or(|s| t["startedBy"] == s)
        })
        .map(|t| t["taskArn"].clone())
        .collect();
    page(arns, input, "taskArns")
}
