//! ECS tasks on the containerizer, and the services that keep them at a count.
//!
//! A task is one container per container definition, owned by the executor `hoist-ecs` with
//! `<task id>/<container name>` as the task id. Its `lastStatus` goes PROVISIONING (RunTask's
//! answer) → RUNNING → STOPPED, as ECS's task lifecycle documents it; a task stops when StopTask
//! asks (`stopCode` `UserInitiated`), when an essential container exits
//! (`EssentialContainerExited`, "Essential container in task exited", each container's
//! `exitCode`), or when its service scales in (`ServiceSchedulerInitiated`).
//!
//! A service keeps `desiredCount` tasks of its task definition RUNNING: each pass starts what
//! is missing, stops what is extra (or runs an older definition, once the new ones run), and
//! keeps its target groups' registrations in step — a task is registered (its address and
//! the host port of the `loadBalancers` entry's container port) once it runs, and deregistered
//! before it is stopped or as soon as it is found dead.

use std::net::TcpListener;

use hoist_core::capabilities::{Images, Ports};
use hoist_core::{
    ContainerId, ContainerSpec, ContainerState, ContainerizerExt, ErrorKind, ExecutorId, Owner,
    PortMapping, TaskId,
};
use serde_json::{Value, json};

use super::{Shared, backend_error, ecs, elbv2, hex_id, now_secs, store_error};
use crate::protocol::AwsError;

/// The store's kind for tasks.
pub(crate) const TASKS: &str = "ecs-task";
/// The store's kind for services.
pub(crate) const SERVICES: &str = "ecs-service";
/// The executor owning task containers.
pub(crate) const EXECUTOR: &str = "hoist-ecs";

/// A free TCP port on loopback, for a task's container port on a backend whose tasks bind
/// host ports themselves.
fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// The container definitions of `definition` with `overrides.containerOverrides` applied
/// (`command`, `environment` merged by name, `cpu`, `memory`).
fn containers_of(definition: &Value, overrides: &Value) -> Vec<Value> {
    let mut containers = definition["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for o in overrides["containerOverrides"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(c) = containers.iter_mut().find(|c| c["name"] == o["name"]) else {
            continue;
        };
        if let Some(command) = o.get("command") {
            c["command"] = command.clone();
        }
        for key in ["cpu", "memory"] {
            if let Some(v) = o.get(key) {
                c[key] = v.clone();
            }
        }
        let mut env = c["environment"].as_array().cloned().unwrap_or_default();
        for e in o["environment"].as_array().into_iter().flatten() {
            env.retain(|x| x["name"] != e["name"]);
            env.push(e.clone());
        }
        c["environment"] = Value::Array(env);
    }
    containers
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Starts a task of `definition` in `cluster`; returns its record (RUNNING, or an error with
/// nothing left behind).
pub(crate) async fn launch(
    shared: &Shared,
    cluster: &Value,
    definition: &Value,
    overrides: &Value,
    started_by: Option<&str>,
    service: Option<&str>,
) -> Result<Value, AwsError> {
    let id = hex_id(32);
    let cluster_name = cluster["clusterName"].as_str().unwrap_or_default();
    let arn = format!(
        "arn:aws:ecs:{}:{}:task/{cluster_name}/{id}",
        shared.config.region, shared.config.account_id
    );
    let images = shared.capabilities.images == Images::Pull;
    let same_port = shared.capabilities.ports == Ports::SamePort;
    let mut containers = Vec::new();
    let mut created: Vec<ContainerId> = Vec::new();
    let result = async {
        for def in containers_of(definition, overrides) {
            let name = def["name"].as_str().unwrap_or_default().to_owned();
            let entry = strings(&def["entryPoint"]);
            let command = strings(&def["command"]);
            let mut spec = if images {
                ContainerSpec {
                    image: def["image"].as_str().map(str::to_owned),
                    command: entry,
                    args: command,
                    ..ContainerSpec::default()
                }
            } else {
                let argv: Vec<String> = entry.into_iter().chain(command).collect();
                if argv.is_empty() {
                    return Err(ecs::client_error(format!(
                        "Container {name} has no entryPoint or command: this backend runs commands, not images"
                    )));
                }
                ContainerSpec::command(argv)
            };
            for e in def["environment"].as_array().into_iter().flatten() {
                if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                    spec.env.insert(k.to_owned(), v.to_owned());
                }
            }
            let mut bindings = Vec::new();
            for p in def["portMappings"].as_array().into_iter().flatten() {
                let container_port = p["containerPort"].as_u64().unwrap_or(0) as u16;
                let host_port = p["hostPort"].as_u64().filter(|p| *p != 0).map(|p| p as u16);
                if same_port {
                    // The process binds its port itself: it gets a free one in $PORT.
                    let port = host_port
                        .or_else(free_port)
                        .ok_or_else(|| ecs::server_error("no free port for the task"))?;
                    spec.ports.push(PortMapping::tcp(port, Some(port)));
                    spec.env.insert("PORT".into(), port.to_string());
                    bindings.push((container_port, port));
                } else {
                    spec.ports.push(PortMapping::tcp(container_port, host_port));
                    bindings.push((container_port, host_port.unwrap_or(0)));
                }
            }
            spec.env.insert("ECS_TASK_ARN".into(), arn.clone());
            let cpu_architecture = definition
                .pointer("/runtimePlatform/cpuArchitecture")
                .and_then(Value::as_str)
                .and_then(super::architecture);
            super::service_labels(&mut spec, "ecs", cpu_architecture);
            let owner = Owner {
                executor_id: ExecutorId::new(EXECUTOR),
                task_id: TaskId::new(format!("{id}/{name}")),
            };
            let container = shared
                .backend
                .create(&owner, &spec)
                .await
                .map_err(|e| backend_error(&format!("create container {name}"), e))?;
            created.push(container.clone());
            shared
                .backend
                .start(&container)
                .await
                .map_err(|e| backend_error(&format!("start container {name}"), e))?;
            let info = shared.backend.inspect(&container).await.ok();
            let address = info
                .as_ref()
                .and_then(|i| i.addresses.first().map(|a| a.to_string()))
                .unwrap_or_else(|| "127.0.0.1".into());
            let bindings: Vec<Value> = bindings
                .into_iter()
                .map(|(container_port, host)| binding(info.as_ref(), &address, container_port, host, same_port))
                .collect();
            containers.push(json!({
                "containerArn": format!("arn:aws:ecs:{}:{}:container/{cluster_name}/{id}/{}", shared.config.region, shared.config.account_id, hex_id(32)),
                "taskArn": arn,
                "name": name,
                "image": def["image"],
                "lastStatus": "RUNNING",
                "essential": def["essential"].as_bool().unwrap_or(true),
                "networkBindings": bindings,
                "networkInterfaces": [{"privateIpv4Address": address}],
                "Container": container.as_str(),
            }));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        for c in created {
            let _ = shared.backend.remove(&c, true).await;
        }
        return Err(e);
    }
    let now = now_secs();
    let task = json!({
        "taskArn": arn,
        "clusterArn": cluster["clusterArn"],
        "taskDefinitionArn": definition["taskDefinitionArn"],
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "containers": containers,
        "overrides": if overrides.is_object() { overrides.clone() } else { json!({"containerOverrides": []}) },
        "startedBy": started_by,
        "group": match service { Some(s) => format!("service:{s}"), None => format!("family:{}", definition["family"].as_str().unwrap_or_default()) },
        "launchType": "EC2",
        "cpu": definition["cpu"],
        "memory": definition["memory"],
        "createdAt": now,
        "startedAt": now,
        "version": 1,
        "Service": service,
    });
    shared
        .store
        .write(|tx| tx.put_resource(TASKS, &arn, &task))
        .map_err(store_error)?;
    Ok(task)
}

/// A container port's network binding, as ECS reports it, with the target a load balancer
/// reaches it at (hoist's own `Target` member): a port the backend published on the host
/// (Docker's bridge) is reached on loopback at its host port, with `bindIP` `0.0.0.0` as ECS
/// writes for bridge mode; an unpublished one (a pod) at the container's address and port; a
/// process's at loopback and the port it binds.
fn binding(
    info: Option<&hoist_core::ContainerInfo>,
    address: &str,
    container_port: u16,
    requested: u16,
    same_port: bool,
) -> Value {
    let wanted = if same_port { requested } else { container_port };
    let published = info
        .and_then(|i| i.ports.iter().find(|p| p.container_port == wanted))
        .and_then(|p| p.host_port);
    match (same_port, published) {
        (true, _) => json!({
            "bindIP": address, "containerPort": container_port, "hostPort": requested,
            "protocol": "tcp", "Target": {"Id": address, "Port": requested},
        }),
        (false, Some(host)) => json!({
            "bindIP": "0.0.0.0", "containerPort": container_port, "hostPort": host,
            "protocol": "tcp", "Target": {"Id": "127.0.0.1", "Port": host},
        }),
        (false, None) => json!({
            "bindIP": address, "containerPort": container_port, "hostPort": container_port,
            "protocol": "tcp", "Target": {"Id": address, "Port": container_port},
        }),
    }
}

/// The (target group, target id, port) entries a service's task is registered as.
fn registrations(service: &Value, task: &Value) -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    for lb in service["loadBalancers"].as_array().into_iter().flatten() {
        let Some(tg) = lb["targetGroupArn"].as_str() else {
            continue;
        };
        let container = task["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == lb["containerName"]);
        let Some(c) = container else { continue };
        for b in c["networkBindings"].as_array().into_iter().flatten() {
            if b["containerPort"] == lb["containerPort"] {
                out.push((
                    tg.to_owned(),
                    b["Target"]["Id"].as_str().unwrap_or("127.0.0.1").to_owned(),
                    b["Target"]["Port"].as_u64().unwrap_or(0) as u16,
                ));
            }
        }
    }
    out
}

fn register(shared: &Shared, service: &Value, task: &Value, on: bool) {
    for (tg, id, port) in registrations(service, task) {
        if let Err(e) = elbv2::change_targets(shared, &tg, &[(id, Some(port))], on) {
            tracing::warn!(target_group = %tg, error = %e, "could not change a service's target");
        }
    }
}

/// Stops the task's containers and records it STOPPED with `reason` and `code`, deregistering
/// it from its service's target groups first.
pub(crate) async fn stop(
    shared: &Shared,
    mut task: Value,
    reason: &str,
    code: &str,
) -> Result<Value, AwsError> {
    if task["lastStatus"] == "STOPPED" {
        return Ok(task);
    }
    if let Some(service) = task["Service"]
        .as_str()
        .and_then(|s| find_service(shared, &task, s))
    {
        register(shared, &service, &task, false);
    }
    let grace = shared.config.stop_grace;
    for c in task["containers"].as_array_mut().into_iter().flatten() {
        let Some(container) = c["Container"].as_str().map(ContainerId::new) else {
            continue;
        };
        match shared.backend.stop(&container, grace).await {
            Ok(()) | Err(_) => {}
        }
        let exit = shared
            .backend
            .as_ref()
            .wait_timeout(&container, grace + std::time::Duration::from_secs(5))
            .await
            .ok();
        if let Some(code) = exit.and_then(|e| e.code.or(e.signal.map(|s| 128 + s))) {
            c["exitCode"] = json!(code);
        }
        match shared.backend.remove(&container, true).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(backend_error("remove a task's container", e)),
        }
        c["lastStatus"] = json!("STOPPED");
        c["Container"] = Value::Null;
    }
    mark_stopped(shared, &mut task, reason, code)?;
    Ok(task)
}

fn mark_stopped(
    shared: &Shared,
    task: &mut Value,
    reason: &str,
    code: &str,
) -> Result<(), AwsError> {
    let now = now_secs();
    task["lastStatus"] = json!("STOPPED");
    task["desiredStatus"] = json!("STOPPED");
    task["stoppedReason"] = json!(reason);
    task["stopCode"] = json!(code);
    task["stoppingAt"] = json!(now);
    task["stoppedAt"] = json!(now);
    let arn = task["taskArn"].as_str().unwrap_or_default().to_owned();
    shared
        .store
        .write(|tx| tx.put_resource(TASKS, &arn, task))
        .map_err(store_error)
}

fn find_service(shared: &Shared, task: &Value, name: &str) -> Option<Value> {
    let cluster = task["clusterArn"].as_str()?;
    shared
        .store
        .read(|tx| tx.resource(SERVICES, &format!("{cluster}/{name}")))
        .ok()?
}

/// Records RUNNING tasks an essential container of which ended (or vanished) as STOPPED,
/// deregistering them, and stops their other containers.
pub(crate) async fn refresh_tasks(shared: &Shared) -> Result<(), AwsError> {
    let tasks = shared
        .store
        .read(|tx| tx.resources(TASKS))
        .map_err(store_error)?;
    let now = now_secs();
    for (arn, mut task) in tasks {
        if task["lastStatus"] == "STOPPED" {
            let at = task["stoppedAt"].as_f64().unwrap_or(now);
            if now - at >= shared.config.terminated_retention.as_secs_f64() {
                shared
                    .store
                    .write(|tx| tx.delete_resource(TASKS, &arn))
                    .map_err(store_error)?;
            }
            continue;
        }
        let mut ended = None;
        for c in task["containers"].as_array_mut().into_iter().flatten() {
            let Some(container) = c["Container"].as_str().map(ContainerId::new) else {
                continue;
            };
            let essential = c["essential"].as_bool().unwrap_or(true);
            match shared.backend.inspect(&container).await {
                Ok(info) if info.state == ContainerState::Exited => {
                    if let Some(exit) = info.exit {
                        c["exitCode"] = json!(exit.code.or(exit.signal.map(|s| 128 + s)));
                    }
                    c["lastStatus"] = json!("STOPPED");
                    if essential {
                        ended = Some("Essential container in task exited".to_owned());
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    c["lastStatus"] = json!("STOPPED");
                    c["Container"] = Value::Null;
                    if essential {
                        ended = Some("Essential container in task exited: its container is gone (it ended while no server watched it)".to_owned());
                    }
                }
                Err(e) => return Err(backend_error("inspect a task's container", e)),
            }
        }
        if let Some(reason) = ended {
            stop(shared, task, &reason, "EssentialContainerExited").await?;
        }
    }
    Ok(())
}

/// Brings every service to its desired count of RUNNING tasks of its task definition, and
/// its target groups in step with them.
pub(crate) async fn services(shared: &Shared) -> Result<(), AwsError> {
    let services = shared
        .store
        .read(|tx| tx.resources(SERVICES))
        .map_err(store_error)?;
    for (_, service) in services {
        if service["status"] != "ACTIVE" {
            continue;
        }
        let name = service["serviceName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let tasks: Vec<Value> = super::documents(shared, TASKS)?
            .into_iter()
            .filter(|t| {
                t["Service"] == name.as_str()
                    && t["clusterArn"] == service["clusterArn"]
                    && t["lastStatus"] != "STOPPED"
            })
            .collect();
        // Running tasks are registered (again, after a restart: registering is idempotent).
        for task in &tasks {
            register(shared, &service, task, true);
        }
        let desired = service["desiredCount"].as_u64().unwrap_or(0) as usize;
        let (current, old): (Vec<Value>, Vec<Value>) = tasks
            .into_iter()
            .partition(|t| t["taskDefinitionArn"] == service["taskDefinition"]);
        // One service whose cluster or task definition is gone does not hold up the others.
        let found = ecs::cluster_by_arn(shared, service["clusterArn"].as_str().unwrap_or_default())
            .and_then(|c| {
                let d = ecs::definition(
                    shared,
                    service["taskDefinition"].as_str().unwrap_or_default(),
                )?;
                Ok((c, d))
            });
        let (cluster, definition) = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(service = %name, error = %e, "cannot reconcile a service");
                continue;
            }
        };
        let started_by = format!("ecs-svc/{}", service["Id"].as_str().unwrap_or_default());
        for _ in current.len()..desired {
            match launch(
                shared,
                &cluster,
                &definition,
                &json!({}),
                Some(&started_by),
                Some(&name),
            )
            .await
            {
                Ok(task) => register(shared, &service, &task, true),
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "could not start a service's task");
                    break;
                }
            }
        }
        let reason = format!(
            "Scaling activity initiated by (deployment ecs-svc/{})",
            service["Id"].as_str().unwrap_or_default()
        );
        for task in current.into_iter().skip(desired) {
            stop(shared, task, &reason, "ServiceSchedulerInitiated").await?;
        }
        for task in old {
            stop(shared, task, &reason, "ServiceSchedulerInitiated").await?;
        }
    }
    Ok(())
}

/// Stops every task of the service `service` (DeleteService).
pub(crate) async fn drain(shared: &Shared, service: &Value) -> Result<(), AwsError> {
    let tasks = shared
        .store
        .read(|tx| tx.resources(TASKS))
        .map_err(store_error)?;
    for (_, task) in tasks {
        if task["Service"] == service["serviceName"]
            && task["clusterArn"] == service["clusterArn"]
            && task["lastStatus"] != "STOPPED"
        {
            stop(shared, task, "Service deleted", "ServiceSchedulerInitiated").await?;
        }
    }
    Ok(())
}
