//! ECS services: CreateService, UpdateService, DeleteService, DescribeServices. A service's
//! record holds its desired count, task definition and `loadBalancers`; the background pass
//! ([`super::reconcile::services`]) keeps its tasks and targets in step. DeleteService needs a
//! desired count of 0 or `force`, as ECS does ("The service cannot be stopped while it is
//! scaled above 0.").

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ecs::{all, arn, cluster, definition, invalid, public, put, str_field};
use super::reconcile::{self, SERVICES, TASKS};
use super::{Shared, hex_id, now_secs, store_error};
use crate::protocol::AwsError;

fn service_key(cluster: &Value, name: &str) -> String {
    format!(
        "{}/{name}",
        cluster["clusterArn"].as_str().unwrap_or_default()
    )
}

fn describe_service(shared: &Shared, service: &Value) -> Result<Value, AwsError> {
    let running = all(shared, TASKS)?
        .iter()
        .filter(|t| {
            t["Service"] == service["serviceName"]
                && t["clusterArn"] == service["clusterArn"]
                && t["lastStatus"] == "RUNNING"
        })
        .count();
    let mut out = public(service);
    out["runningCount"] = json!(running);
    out["pendingCount"] = json!(0);
    out["deployments"] = json!([{
        "id": format!("ecs-svc/{}", service["Id"].as_str().unwrap_or_default()),
        "status": "PRIMARY",
        "taskDefinition": service["taskDefinition"],
        "desiredCount": service["desiredCount"],
        "runningCount": running,
        "pendingCount": 0,
        "launchType": "EC2",
        "createdAt": service["createdAt"],
        "updatedAt": service["updatedAt"],
        "rolloutState": if running as u64 == service["desiredCount"].as_u64().unwrap_or(0) { "COMPLETED" } else { "IN_PROGRESS" },
    }]);
    Ok(out)
}

pub(crate) async fn create_service(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let cluster = cluster(shared, input)?;
    let name = str_field(input, "serviceName")?;
    let definition = definition(shared, str_field(input, "taskDefinition")?)?;
    let desired = input["desiredCount"].as_i64().unwrap_or(0);
    if desired < 0 {
        return Err(invalid("desiredCount cannot be negative."));
    }
    let load_balancers = input["loadBalancers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for lb in &load_balancers {
        let tg = str_field(lb, "targetGroupArn")?;
        if shared
            .store
            .read(|tx| tx.resource(super::elbv2::KIND, tg))
            .map_err(store_error)?
            .is_none()
        {
            return Err(invalid(format!("Unable to find target group {tg}")));
        }
        let container = str_field(lb, "containerName")?;
        let port = lb["containerPort"].as_u64();
        let maps = definition["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["name"] == container
                    && c["portMappings"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["containerPort"].as_u64() == port)
            });
        if !maps {
            return Err(invalid(format!(
                "The container {container} did not have a container port {} defined.",
                port.unwrap_or(0)
            )));
        }
    }
    let _guard = shared.lock.lock().await;
    let key = service_key(&cluster, name);
    let existing = shared
        .store
        .read(|tx| tx.resource(SERVICES, &key))
        .map_err(store_error)?;
    if existing.is_some_and(|s| s["status"] != "INACTIVE") {
        return Err(invalid("Creation of service was not idempotent."));
    }
    let now = now_secs();
    let service = json!({
        "serviceArn": arn(shared, &format!("service/{}/{name}", cluster["clusterName"].as_str().unwrap_or_default())),
        "serviceName": name,
        "clusterArn": cluster["clusterArn"],
        "loadBalancers": load_balancers,
        "status": "ACTIVE",
        "desiredCount": desired,
        "launchType": "EC2",
        "taskDefinition": definition["taskDefinitionArn"],
        "schedulingStrategy": "REPLICA",
        "events": [],
        "createdAt": now,
        "updatedAt": now,
        "Id": hex_id(20),
    });
    put(shared, SERVICES, &key, &service)?;
    Ok(json!({"service": describe_service(shared, &service)?}))
}

fn service_not_found() -> AwsError {
    AwsError::new(
        "ServiceNotFoundException",
        StatusCode::BAD_REQUEST,
        "Service not found.",
    )
}

fn find_service(shared: &Shared, cluster: &Value, name: &str) -> Result<Value, AwsError> {
    let name = name.rsplit('/').next().unwrap_or(name);
    shared
        .store
        .read(|tx| tx.resource(SERVICES, &service_key(cluster, name)))
        .map_err(store_error)?
        .ok_or_else(service_not_found)
}

fn save(shared: &Shared, cluster: &Value, service: &Value) -> Result<(), AwsError> {
    let name = service["serviceName"].as_str().unwrap_or_default();
    put(shared, SERVICES, &service_key(cluster, name), service)
}

/// The service `input["service"]` names, which must be ACTIVE.
fn active_service(shared: &Shared, cluster: &Value, input: &Value) -> Result<Value, AwsError> {
    let service = find_service(shared, cluster, str_field(input, "service")?)?;
    if service["status"] != "ACTIVE" {
        return Err(AwsError::new(
            "ServiceNotActiveException",
            StatusCode::BAD_REQUEST,
            "Service was not ACTIVE.",
        ));
    }
    Ok(service)
}

pub(crate) async fn update_service(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let cluster = cluster(shared, input)?;
    let _guard = shared.lock.lock().await;
    let mut service = active_service(shared, &cluster, input)?;
    if let Some(desired) = input["desiredCount"].as_i64() {
        if desired < 0 {
            return Err(invalid("desiredCount cannot be negative."));
        }
        service["desiredCount"] = json!(desired);
    }
    if let Some(name) = input["taskDefinition"].as_str() {
        service["taskDefinition"] = definition(shared, name)?["taskDefinitionArn"].clone();
    }
    service["updatedAt"] = json!(now_secs());
    save(shared, &cluster, &service)?;
    Ok(json!({"service": describe_service(shared, &service)?}))
}

pub(crate) async fn delete_service(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let cluster = cluster(shared, input)?;
    let _guard = shared.lock.lock().await;
    let mut service = active_service(shared, &cluster, input)?;
    if service["desiredCount"].as_u64().unwrap_or(0) > 0 && input["force"] != true {
        return Err(invalid(
            "The service cannot be stopped while it is scaled above 0.",
        ));
    }
    reconcile::drain(shared, &service).await?;
    service["status"] = json!("INACTIVE");
    service["desiredCount"] = json!(0);
    service["updatedAt"] = json!(now_secs());
    save(shared, &cluster, &service)?;
    // ECS answers with the service draining; it is INACTIVE once its tasks are gone, as here.
    let mut out = describe_service(shared, &service)?;
    out["status"] = json!("DRAINING");
    Ok(json!({"service": out}))
}

pub(crate) fn describe_services(shared: &Shared, input: &Value) -> Result<Value, AwsError> {
    let cluster = cluster(shared, input)?;
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for name in input["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        match find_service(shared, &cluster, name) {
            Ok(s) => services.push(describe_service(shared, &s)?),
            Err(_) => failures.push(json!({"arn": arn(shared, &format!("service/{}/{name}", cluster["clusterName"].as_str().unwrap_or_default())), "reason": "MISSING"})),
        }
    }
    Ok(json!({"services": services, "failures": failures}))
}
