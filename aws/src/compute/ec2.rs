//! EC2 instances (Query protocol, `Version=2016-11-15`): RunInstances, DescribeInstances,
//! StartInstances, StopInstances, TerminateInstances. Each running instance is one container
//! owned by the executor `hoist-ec2` with the instance id as its task id.
//!
//! States and codes are AWS's (botocore `InstanceStateName`; codes from the EC2 API reference's
//! `InstanceState`): pending 0, running 16, shutting-down 32, terminated 48, stopping 64,
//! stopped 80. As AWS answers, RunInstances reports `pending`, StopInstances `stopping`,
//! StartInstances `pending` and TerminateInstances `shutting-down`, while the change itself is
//! done before the answer: the next DescribeInstances shows `running`, `stopped` or
//! `terminated`. Error codes and messages are EC2's as LocalStack (moto) writes them
//! (`InvalidInstanceID.NotFound`: "The instance ID 'i-...' does not exist";
//! `IncorrectInstanceState`).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use hoist_core::capabilities::{Images, Limit};
use hoist_core::{
    ContainerId, ContainerSpec, ContainerState, ContainerizerExt, ErrorKind, ExecutorId, Owner,
    TaskId,
};
use serde_json::{Value, json};

use super::{Shared, backend_error, hex_id, iso8601, now_secs, store_error};
use crate::protocol::{AwsError, RequestId};
use crate::query::{EC2, Params, invalid_value};

/// The store's kind for instances.
pub(crate) const KIND: &str = "ec2-instance";
/// The executor owning instance containers.
pub(crate) const EXECUTOR: &str = "hoist-ec2";

/// The instance types hoist knows the size of: vCPUs and MiB of memory (the EC2 instance
/// types page). Others are recorded and run unlimited.
const TYPES: &[(&str, f64, u64)] = &[
    ("t2.nano", 1.0, 512),
    ("t2.micro", 1.0, 1024),
    ("t2.small", 1.0, 2048),
    ("t2.medium", 2.0, 4096),
    ("t2.large", 2.0, 8192),
    ("t3.nano", 2.0, 512),
    ("t3.micro", 2.0, 1024),
    ("t3.small", 2.0, 2048),
    ("t3.medium", 2.0, 4096),
    ("t3.large", 2.0, 8192),
    ("m1.small", 1.0, 1740),
    ("m5.large", 2.0, 8192),
    ("m5.xlarge", 4.0, 16384),
    ("c5.large", 2.0, 4096),
];

/// The architecture of an instance type's family, as Kubernetes names it: AWS Graviton
/// families (`a1`, and those with `g` after the generation: `t4g`, `m6gd`, `c7gn`) are
/// `arm64`, the others `amd64`.
fn architecture_of(instance_type: &str) -> &'static str {
    let family = instance_type.split('.').next().unwrap_or_default();
    let after_generation = family
        .trim_start_matches(|c: char| c.is_ascii_lowercase())
        .trim_start_matches(|c: char| c.is_ascii_digit());
    if family == "a1" || after_generation.starts_with('g') {
        "arm64"
    } else {
        "amd64"
    }
}

pub(crate) fn code_of(state: &str) -> u32 {
    match state {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    }
}

fn incorrect_state(id: &str, action: &str) -> AwsError {
    AwsError::new(
        "IncorrectInstanceState",
        StatusCode::BAD_REQUEST,
        format!("The instance '{id}' is not in a state from which it can be {action}."),
    )
}

pub(crate) fn not_found(ids: &[String]) -> AwsError {
    let message = if ids.len() == 1 {
        format!("The instance ID '{}' does not exist", ids[0])
    } else {
        format!("The instance IDs '{}' do not exist", ids.join(", "))
    };
    AwsError::new(
        "InvalidInstanceID.NotFound",
        StatusCode::BAD_REQUEST,
        message,
    )
}

pub(crate) fn check_ids(ids: &[String]) -> Result<(), AwsError> {
    for id in ids {
        let hex = id.strip_prefix("i-").unwrap_or("");
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(AwsError::new(
                "InvalidInstanceID.Malformed",
                StatusCode::BAD_REQUEST,
                format!("Invalid id: \"{id}\""),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn handle(
    shared: &Shared,
    params: &Params,
    id: &RequestId,
) -> Result<Response, AwsError> {
    let action = params.required("Action")?;
    match action {
        "RunInstances" => run_instances(shared, params, id).await,
        "DescribeInstances" => super::ec2_describe::describe_instances(shared, params, id).await,
        "StartInstances" => change(shared, params, id, Change::Start).await,
        "StopInstances" => change(shared, params, id, Change::Stop).await,
        "TerminateInstances" => change(shared, params, id, Change::Terminate).await,
        "DescribeInstanceStatus" => {
            super::ec2_describe::describe_instance_status(shared, params, id).await
        }
        "DescribeImages" => super::ec2_describe::describe_images(shared, params, id),
        other => Err(AwsError::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

fn container_spec(shared: &Shared, instance: &Value) -> ContainerSpec {
    let id = instance["InstanceId"].as_str().unwrap_or_default();
    let mut spec = match instance["Image"].as_str() {
        Some(image) => ContainerSpec {
            image: Some(image.to_owned()),
            ..ContainerSpec::default()
        },
        // The process backend: the user data is the instance's boot script, and the instance
        // stays running until it is stopped.
        None => ContainerSpec::command([
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; if [ -n \"$EC2_USER_DATA\" ]; then /bin/sh -c \"$EC2_USER_DATA\"; fi; while :; do sleep 1; done",
        ]),
    };
    if let Some(data) = instance["UserData"].as_str()
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
    {
        spec.env.insert(
            "EC2_USER_DATA".into(),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
    }
    spec.env.insert("EC2_INSTANCE_ID".into(), id.to_owned());
    let kind = instance["InstanceType"].as_str().unwrap_or_default();
    super::service_labels(&mut spec, "ec2", Some(architecture_of(kind)));
    if let Some((_, cpus, memory)) = TYPES.iter().find(|(name, ..)| *name == kind) {
        if shared.capabilities.cpu_limit == Limit::Enforced {
            spec.resources.cpus = Some(*cpus);
        }
        if shared.capabilities.memory_limit == Limit::Enforced {
            spec.resources.memory = Some(memory * 1024 * 1024);
        }
    }
    spec
}

/// Creates and starts the instance's container; records its id in `instance`.
async fn launch(shared: &Shared, instance: &mut Value) -> Result<(), AwsError> {
    let id = instance["InstanceId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let owner = Owner {
        executor_id: ExecutorId::new(EXECUTOR),
        task_id: TaskId::new(id.as_str()),
    };
    let spec = container_spec(shared, instance);
    let container = shared
        .backend
        .create(&owner, &spec)
        .await
        .map_err(|e| capacity(&id, e))?;
    if let Err(e) = shared.backend.start(&container).await {
        let _ = shared.backend.remove(&container, true).await;
        return Err(capacity(&id, e));
    }
    if let Ok(info) = shared.backend.inspect(&container).await
        && let Some(address) = info.addresses.first()
    {
        instance["PrivateIpAddress"] = json!(address.to_string());
    }
    instance["Container"] = json!(container.as_str());
    instance["State"] = json!("running");
    instance["StateReason"] = Value::Null;
    instance["StateTransitionReason"] = json!("");
    Ok(())
}

fn capacity(id: &str, e: hoist_core::Error) -> AwsError {
    AwsError::new(
        "InsufficientInstanceCapacity",
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("The backend could not start instance {id}: {e}"),
    )
}

/// Stops and removes the instance's container, if it has one.
async fn release(shared: &Shared, instance: &mut Value) -> Result<(), AwsError> {
    if let Some(container) = instance["Container"].as_str().map(ContainerId::new) {
        let grace = shared.config.stop_grace;
        match shared.backend.stop(&container, grace).await {
            Ok(()) => {
                let _ = shared
                    .backend
                    .as_ref()
                    .wait_timeout(&container, grace + Duration::from_secs(5))
                    .await;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(backend_error("stop the instance's container", e)),
        }
        match shared.backend.remove(&container, true).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(backend_error("remove the instance's container", e)),
        }
    }
    instance["Container"] = Value::Null;
    Ok(())
}

async fn run_instances(
    shared: &Shared,
    params: &Params,
    request: &RequestId,
) -> Result<Response, AwsError> {
    let image_id = params.required("ImageId")?.to_owned();
    let min = params.int("MinCount")?;
    let max = params.int("MaxCount")?;
    let (Some(min), Some(max)) = (min, max) else {
        return Err(params
            .required("MinCount")
            .and(params.required("MaxCount"))
            .unwrap_err());
    };
    if min < 1 || max < 1 {
        return Err(invalid_value(format!(
            "Value ({}) for parameter {} is invalid. Expected a positive number.",
            min.min(max),
            if min < 1 { "minCount" } else { "maxCount" }
        )));
    }
    if min > max {
        return Err(invalid_value(
            "MinCount must be less than or equal to MaxCount.",
        ));
    }
    if !image_id.starts_with("ami-") {
        return Err(AwsError::new(
            "InvalidAMIID.Malformed",
            StatusCode::BAD_REQUEST,
            format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
        ));
    }
    let image = if shared.capabilities.images == Images::Pull {
        match shared.config.image_mapping.get(&image_id) {
            Some(image) => Some(image.clone()),
            None => {
                return Err(AwsError::new(
                    "InvalidAMIID.NotFound",
                    StatusCode::BAD_REQUEST,
                    format!("The image id '[{image_id}]' does not exist"),
                ));
            }
        }
    } else {
        None
    };
    let user_data = params.get("UserData").map(str::to_owned);
    if let Some(data) = &user_data
        && base64::engine::general_purpose::STANDARD
            .decode(data)
            .is_err()
    {
        return Err(invalid_value("Invalid BASE64 encoding of user data."));
    }
    let mut tags = Vec::new();
    for spec in params.structs("TagSpecification") {
        if spec.get("ResourceType").unwrap_or("instance") != "instance" {
            continue;
        }
        for tag in spec.structs("Tag") {
            let key = tag.required("Key")?;
            tags.push(json!({"Key": key, "Value": tag.get("Value").unwrap_or("")}));
        }
    }
    let reservation = format!("r-{}", hex_id(17));
    let launched_at = now_secs();
    let _guard = shared.lock.lock().await;
    let mut launched: Vec<Value> = Vec::new();
    let mut failure = None;
    for index in 0..max {
        let mut instance = json!({
            "InstanceId": format!("i-{}", hex_id(17)),
            "ImageId": image_id,
            "Image": image,
            "InstanceType": params.get("InstanceType").unwrap_or("m1.small"),
            "KeyName": params.get("KeyName"),
            "ReservationId": reservation,
            "AmiLaunchIndex": index,
            "LaunchTime": launched_at,
            "UserData": user_data,
            "Tags": tags,
        });
        match launch(shared, &mut instance).await {
            Ok(()) => launched.push(instance),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if (launched.len() as i64) < min {
        for instance in &mut launched {
            let _ = release(shared, instance).await;
        }
        return Err(failure.unwrap_or_else(|| invalid_value("no instance could be launched")));
    }
    shared
        .store
        .write(|tx| {
            for instance in &launched {
                tx.put_resource(
                    KIND,
                    instance["InstanceId"].as_str().unwrap_or_default(),
                    instance,
                )?;
            }
            Ok(())
        })
        .map_err(store_error)?;
    let owner = shared.config.account_id.clone();
    Ok(EC2.respond("RunInstances", request, |x| {
        x.text("reservationId", &reservation)
            .text("ownerId", &owner)
            .node("groupSet", |_| {})
            .list("instancesSet", "item", &launched, |x, i| {
                // AWS answers RunInstances with every instance pending.
                super::ec2_describe::instance_xml(shared, x, i, "pending");
            });
    }))
}

/// Records instances whose containers ended as stopped, with AWS's reason, and forgets
/// terminated instances past their retention.
pub(crate) async fn refresh(shared: &Shared) -> Result<(), AwsError> {
    let all = shared
        .store
        .read(|tx| tx.resources(KIND))
        .map_err(store_error)?;
    let now = now_secs();
    for (id, mut instance) in all {
        let state = instance["State"].as_str().unwrap_or_default().to_owned();
        if state == "terminated" {
            let at = instance["TerminatedAt"].as_f64().unwrap_or(now);
            if now - at >= shared.config.terminated_retention.as_secs_f64() {
                shared
                    .store
                    .write(|tx| tx.delete_resource(KIND, &id))
                    .map_err(store_error)?;
            }
            continue;
        }
        if state != "running" {
            continue;
        }
        let Some(container) = instance["Container"].as_str().map(ContainerId::new) else {
            continue;
        };
        let reason = match shared.backend.inspect(&container).await {
            Ok(info) if info.state != ContainerState::Exited => continue,
            Ok(info) => {
                let exit = info.exit.map(|e| format!("{e:?}")).unwrap_or_default();
                let _ = shared.backend.remove(&container, true).await;
                ("Client.InstanceInitiatedShutdown", format!("Client.InstanceInitiatedShutdown: Instance initiated shutdown ({exit})"))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => (
                "Server.InternalError",
                "Server.InternalError: the instance's container is gone (it ended while no server watched it)".to_owned(),
            ),
            Err(e) => return Err(backend_error("inspect an instance's container", e)),
        };
        instance["State"] = json!("stopped");
        instance["Container"] = Value::Null;
        instance["StateReason"] = json!({"Code": reason.0, "Message": reason.1});
        shared
            .store
            .write(|tx| tx.put_resource(KIND, &id, &instance))
            .map_err(store_error)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Start,
    Stop,
    Terminate,
}

async fn change(
    shared: &Shared,
    params: &Params,
    request: &RequestId,
    change: Change,
) -> Result<Response, AwsError> {
    let ids = params.list("InstanceId");
    if ids.is_empty() {
        return Err(params.required("InstanceId.1").unwrap_err());
    }
    check_ids(&ids)?;
    let _guard = shared.lock.lock().await;
    refresh(shared).await?;
    let mut instances = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in &ids {
        match shared
            .store
            .read(|tx| tx.resource(KIND, id))
            .map_err(store_error)?
        {
            Some(i) => instances.push(i),
            None => missing.push(id.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(not_found(&missing));
    }
    for i in &instances {
        let state = i["State"].as_str().unwrap_or_default();
        let id = i["InstanceId"].as_str().unwrap_or_default();
        if state == "terminated" && change == Change::Start {
            return Err(incorrect_state(id, "started"));
        }
        if state == "terminated" && change == Change::Stop {
            return Err(incorrect_state(id, "stopped"));
        }
    }
    let mut changes = Vec::with_capacity(instances.len());
    for mut i in instances {
        let previous = i["State"].as_str().unwrap_or_default().to_owned();
        let id = i["InstanceId"].as_str().unwrap_or_default().to_owned();
        let current = match (change, previous.as_str()) {
            (Change::Start, "stopped") => {
                launch(shared, &mut i).await?;
                "pending"
            }
            (Change::Stop, "running" | "pending") => {
                release(shared, &mut i).await?;
                i["State"] = json!("stopped");
                i["StateReason"] = json!({
                    "Code": "Client.UserInitiatedShutdown",
                    "Message": "Client.UserInitiatedShutdown: User initiated shutdown",
                });
                i["StateTransitionReason"] =
                    json!(format!("User initiated ({})", iso8601(now_secs())));
                "stopping"
            }
            (Change::Terminate, "terminated") => "terminated",
            (Change::Terminate, _) => {
                release(shared, &mut i).await?;
                i["State"] = json!("terminated");
                i["TerminatedAt"] = json!(now_secs());
                i["StateReason"] = json!({
                    "Code": "Client.UserInitiatedShutdown",
                    "Message": "Client.UserInitiatedShutdown: User initiated shutdown",
                });
                i["StateTransitionReason"] =
                    json!(format!("User initiated ({})", iso8601(now_secs())));
                "shutting-down"
            }
            // Already where it was asked to be.
            (_, state) => state,
        }
        .to_owned();
        shared
            .store
            .write(|tx| tx.put_resource(KIND, &id, &i))
            .map_err(store_error)?;
        changes.push((id, current, previous));
    }
    let (action, set) = match change {
        Change::Start => ("StartInstances", "instancesSet"),
        Change::Stop => ("StopInstances", "instancesSet"),
        Change::Terminate => ("TerminateInstances", "instancesSet"),
    };
    Ok(EC2.respond(action, request, |x| {
        x.list(set, "item", &changes, |x, (id, current, previous)| {
            x.text("instanceId", id)
                .node("currentState", |x| {
                    x.text("code", code_of(current)).text("name", current);
                })
                .node("previousState", |x| {
                    x.text("code", code_of(previous)).text("name", previous);
                });
        });
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graviton_families_are_arm64() {
        for kind in [
            "t4g.micro",
            "m6gd.large",
            "c7gn.xlarge",
            "a1.medium",
            "g5g.xlarge",
        ] {
            assert_eq!(architecture_of(kind), "arm64", "{kind}");
        }
        for kind in [
            "t3.micro",
            "m5.large",
            "g5.xlarge",
            "c6i.large",
            "",
            "weird",
        ] {
            assert_eq!(architecture_of(kind), "amd64", "{kind}");
        }
    }
}
