//! ELBv2 target groups (Query protocol, `Version=2015-12-01`): CreateTargetGroup,
//! DescribeTargetGroups, DeleteTargetGroup, RegisterTargets, DeregisterTargets,
//! DescribeTargetHealth. Members and defaults are botocore's `elbv2` model's and the
//! CreateTargetGroup reference's (health checks every 30 s, 5 s timeout, healthy after 5 passes,
//! unhealthy after 2 failures, path `/`, matcher `200`).
//!
//! Every registered target is probed with hoist's health checkers (HTTP, HTTPS or TCP, as the
//! group's `HealthCheckProtocol` says) once per `HealthCheckIntervalSeconds`: it is `initial`
//! (`Elb.InitialHealthChecking`) until `HealthyThresholdCount` probes in a row pass, then
//! `healthy`, and `unhealthy` after `UnhealthyThresholdCount` failures in a row.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use hoist_core::ContainerId;
use hoist_core::health::{
    HttpProbe, Probe, ProbeOutcome, ProbeTarget, Scheme, TcpProbe, checker_for,
};
use serde_json::{Value, json};

use super::{Shared, hex_id, paginate, store_error};
use crate::protocol::{AwsError, RequestId};
use crate::query::{ELBV2, Params, Xml, invalid_value};

/// The store's kind for target groups.
pub(crate) const KIND: &str = "elbv2-target-group";

/// A target's key in the health table: group ARN, target id, port.
pub(crate) type TargetKey = (String, String, u16);

/// What the probes found of one target.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    passes: u32,
    failures: u32,
    state: &'static str,
    reason: Option<&'static str>,
    description: String,
    probed: Option<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            passes: 0,
            failures: 0,
            state: "initial",
            reason: Some("Elb.InitialHealthChecking"),
            description: "Initial health checks in progress".into(),
            probed: None,
        }
    }
}

fn not_found() -> AwsError {
    AwsError::new(
        "TargetGroupNotFound",
        StatusCode::BAD_REQUEST,
        "One or more target groups not found",
    )
}

pub(crate) async fn handle(
    shared: &Shared,
    params: &Params,
    id: &RequestId,
) -> Result<Response, AwsError> {
    match params.required("Action")? {
        "CreateTargetGroup" => create(shared, params, id).await,
        "DescribeTargetGroups" => describe(shared, params, id),
        "DeleteTargetGroup" => {
            let arn = params.required("TargetGroupArn")?;
            let _guard = shared.lock.lock().await;
            shared
                .store
                .write(|tx| tx.delete_resource(KIND, arn))
                .map_err(store_error)?;
            shared
                .health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|k, _| k.0 != arn);
            Ok(ELBV2.respond("DeleteTargetGroup", id, |_| {}))
        }
        "RegisterTargets" | "DeregisterTargets" => {
            let register = params.get("Action") == Some("RegisterTargets");
            let arn = params.required("TargetGroupArn")?;
            let targets = targets_of(params)?;
            if targets.is_empty() {
                return Err(params.required("Targets.member.1.Id").unwrap_err());
            }
            let _guard = shared.lock.lock().await;
            change_targets(shared, arn, &targets, register)?;
            let action = if register {
                "RegisterTargets"
            } else {
                "DeregisterTargets"
            };
            Ok(ELBV2.respond(action, id, |_| {}))
        }
        "DescribeTargetHealth" => target_health(shared, params, id),
        other => Err(AwsError::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

/// The targets named in `Targets.member.N` (`Id`, optional `Port`).
fn targets_of(params: &Params) -> Result<Vec<(String, Option<u16>)>, AwsError> {
    params
        .structs("Targets.member")
        .into_iter()
        .map(|t| {
            let port = t
                .int("Port")?
                .map(|p| {
                    u16::try_from(p)
                        .map_err(|_| invalid_value(format!("Port {p} is not between 1 and 65535")))
                })
                .transpose()?;
            Ok((t.required("Id")?.to_owned(), port))
        })
        .collect()
}

fn group(shared: &Shared, arn: &str) -> Result<Value, AwsError> {
    shared
        .store
        .read(|tx| tx.resource(KIND, arn))
        .map_err(store_error)?
        .ok_or_else(not_found)
}

/// Registers or deregisters `targets` (a missing port is the group's) in the group `arn`.
pub(crate) fn change_targets(
    shared: &Shared,
    arn: &str,
    targets: &[(String, Option<u16>)],
    register: bool,
) -> Result<(), AwsError> {
    let mut tg = group(shared, arn)?;
    let default_port = tg["Port"].as_u64().unwrap_or(80) as u16;
    let before: Vec<Value> = tg["Targets"].as_array().cloned().unwrap_or_default();
    let mut list = before.clone();
    let mut health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
    for (id, port) in targets {
        let port = port.unwrap_or(default_port);
        let entry = json!({"Id": id, "Port": port});
        list.retain(|t| *t != entry);
        let key = (arn.to_owned(), id.clone(), port);
        if register {
            list.push(entry);
            health.entry(key).or_default();
        } else {
            health.remove(&key);
        }
    }
    drop(health);
    if list == before {
        return Ok(());
    }
    tg["Targets"] = Value::Array(list);
    shared
        .store
        .write(|tx| tx.put_resource(KIND, arn, &tg))
        .map_err(store_error)
}

async fn create(shared: &Shared, params: &Params, id: &RequestId) -> Result<Response, AwsError> {
    let name = params.required("Name")?.to_owned();
    if name.len() > 32
        || name.starts_with('-')
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid_value(format!(
            "Target group name '{name}' can only contain characters that are alphanumeric characters or hyphens(-), must be at most 32 characters, and must not begin or end with a hyphen"
        )));
    }
    let target_type = params.get("TargetType").unwrap_or("instance").to_owned();
    let protocol = params.get("Protocol").map(str::to_owned);
    let port = params.int("Port")?;
    if target_type != "lambda" && (protocol.is_none() || port.is_none()) {
        return Err(AwsError::new(
            "ValidationError",
            StatusCode::BAD_REQUEST,
            "A protocol and a port are required for a target group whose target type is not 'lambda'",
        ));
    }
    let number = |key: &str, default: i64| params.int(key).map(|v| v.unwrap_or(default));
    let _guard = shared.lock.lock().await;
    let existing = shared
        .store
        .read(|tx| tx.resources(KIND))
        .map_err(store_error)?;
    if let Some((_, tg)) = existing
        .iter()
        .find(|(_, tg)| tg["TargetGroupName"] == name.as_str())
    {
        if tg["Port"].as_i64() == port && tg["Protocol"].as_str() == protocol.as_deref() {
            let tg = tg.clone();
            return Ok(ELBV2.respond("CreateTargetGroup", id, |x| {
                x.list("TargetGroups", "member", [&tg], group_xml);
            }));
        }
        return Err(AwsError::new(
            "DuplicateTargetGroupName",
            StatusCode::BAD_REQUEST,
            "A target group with the same name exists, but with different settings",
        ));
    }
    let arn = format!(
        "arn:aws:elasticloadbalancing:{}:{}:targetgroup/{name}/{}",
        shared.config.region,
        shared.config.account_id,
        hex_id(16)
    );
    let health_protocol = params
        .get("HealthCheckProtocol")
        .map(str::to_owned)
        .or_else(|| protocol.clone())
        .unwrap_or_else(|| "HTTP".into());
    let tg = json!({
        "TargetGroupArn": arn,
        "TargetGroupName": name,
        "Protocol": protocol,
        "Port": port,
        "VpcId": params.get("VpcId"),
        "HealthCheckProtocol": health_protocol,
        "HealthCheckPort": params.get("HealthCheckPort").unwrap_or("traffic-port"),
        "HealthCheckEnabled": params.bool("HealthCheckEnabled")?.unwrap_or(true),
        "HealthCheckIntervalSeconds": number("HealthCheckIntervalSeconds", 30)?,
        "HealthCheckTimeoutSeconds": number("HealthCheckTimeoutSeconds", 5)?,
        "HealthyThresholdCount": number("HealthyThresholdCount", 5)?,
        "UnhealthyThresholdCount": number("UnhealthyThresholdCount", 2)?,
        "HealthCheckPath": params.get("HealthCheckPath").unwrap_or("/"),
        "Matcher": {"HttpCode": params.get("Matcher.HttpCode").unwrap_or("200")},
        "TargetType": target_type,
        "Targets": [],
    });
    shared
        .store
        .write(|tx| tx.put_resource(KIND, &arn, &tg))
        .map_err(store_error)?;
    Ok(ELBV2.respond("CreateTargetGroup", id, |x| {
        x.list("TargetGroups", "member", [&tg], group_xml);
    }))
}

fn group_xml(x: &mut Xml, tg: &Value) {
    let s = |k: &str| tg[k].as_str().map(str::to_owned);
    let n = |k: &str| tg[k].as_i64();
    x.opt("TargetGroupArn", s("TargetGroupArn"))
        .opt("TargetGroupName", s("TargetGroupName"))
        .opt("Protocol", s("Protocol"))
        .opt("Port", n("Port"))
        .opt("VpcId", s("VpcId"))
        .opt("HealthCheckProtocol", s("HealthCheckProtocol"))
        .opt("HealthCheckPort", s("HealthCheckPort"))
        .opt("HealthCheckEnabled", tg["HealthCheckEnabled"].as_bool())
        .opt(
            "HealthCheckIntervalSeconds",
            n("HealthCheckIntervalSeconds"),
        )
        .opt("HealthCheckTimeoutSeconds", n("HealthCheckTimeoutSeconds"))
        .opt("HealthyThresholdCount", n("HealthyThresholdCount"))
        .opt("UnhealthyThresholdCount", n("UnhealthyThresholdCount"))
        .opt("HealthCheckPath", s("HealthCheckPath"))
        .node("Matcher", |x| {
            x.opt("HttpCode", tg["Matcher"]["HttpCode"].as_str());
        })
        .node("LoadBalancerArns", |_| {})
        .opt("TargetType", s("TargetType"));
}

fn describe(shared: &Shared, params: &Params, id: &RequestId) -> Result<Response, AwsError> {
    let arns = params.list("TargetGroupArns.member");
    let names = params.list("Names.member");
    let all: Vec<Value> = super::documents(shared, KIND)?.into_iter().collect();
    let mut selected = Vec::new();
    for arn in &arns {
        selected.push(
            all.iter()
                .find(|tg| tg["TargetGroupArn"] == arn.as_str())
                .cloned()
                .ok_or_else(not_found)?,
        );
    }
    for name in &names {
        selected.push(
            all.iter()
                .find(|tg| tg["TargetGroupName"] == name.as_str())
                .cloned()
                .ok_or_else(not_found)?,
        );
    }
    if arns.is_empty() && names.is_empty() {
        selected = all;
    }
    let size = params.int("PageSize")?.unwrap_or(400).clamp(1, 400) as usize;
    let (page, next) = paginate(selected, params.get("Marker"), size, |m| {
        invalid_value(format!("The marker '{m}' is invalid"))
    })?;
    Ok(ELBV2.respond("DescribeTargetGroups", id, |x| {
        x.list("TargetGroups", "member", &page, group_xml)
            .opt("NextMarker", next.as_deref());
    }))
}

fn target_health(shared: &Shared, params: &Params, id: &RequestId) -> Result<Response, AwsError> {
    let arn = params.required("TargetGroupArn")?;
    let tg = group(shared, arn)?;
    let default_port = tg["Port"].as_u64().unwrap_or(80) as u16;
    let registered: Vec<(String, u16)> = tg["Targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["Id"].as_str().unwrap_or_default().to_owned(),
                t["Port"].as_u64().unwrap_or(0) as u16,
            )
        })
        .collect();
    let asked: Vec<(String, u16)> = targets_of(params)?
        .into_iter()
        .map(|(id, port)| (id, port.unwrap_or(default_port)))
        .collect();
    let list = if asked.is_empty() {
        registered.clone()
    } else {
        asked
    };
    let health = shared
        .health
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let port_setting = tg["HealthCheckPort"]
        .as_str()
        .unwrap_or("traffic-port")
        .to_owned();
    Ok(ELBV2.respond("DescribeTargetHealth", id, |x| {
        x.list(
            "TargetHealthDescriptions",
            "member",
            &list,
            |x, (target, port)| {
                let h = if registered.contains(&(target.clone(), *port)) {
                    health
                        .get(&(arn.to_owned(), target.clone(), *port))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    Health {
                        state: "unused",
                        reason: Some("Target.NotRegistered"),
                        description: "Target is not registered to the target group".into(),
                        ..Health::default()
                    }
                };
                x.node("Target", |x| {
                    x.text("Id", target).text("Port", port);
                })
                .text(
                    "HealthCheckPort",
                    if port_setting == "traffic-port" {
                        port.to_string()
                    } else {
                        port_setting.clone()
                    },
                )
                .node("TargetHealth", |x| {
                    x.text("State", h.state).opt("Reason", h.reason);
                    if h.state != "healthy" {
                        x.text("Description", &h.description);
                    }
                });
            },
        );
    }))
}

/// The statuses a matcher (`200`, `200,202`, `200-299`) accepts.
fn statuses(matcher: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in matcher.split(',') {
        match part.trim().split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.trim().parse::<u16>().ok()),
        }
    }
    out
}

/// The address a target's id stands for: an IP, or an instance's private address.
fn address_of(shared: &Shared, id: &str) -> Option<IpAddr> {
    if let Ok(ip) = id.parse() {
        return Some(ip);
    }
    let instance = shared
        .store
        .read(|tx| tx.resource("ec2-instance", id))
        .ok()??;
    (instance["State"] == "running")
        .then(|| {
            instance["PrivateIpAddress"]
                .as_str()
                .unwrap_or("127.0.0.1")
                .parse()
                .ok()
        })
        .flatten()
}

/// Probes every registered target whose interval has passed, once.
pub(crate) async fn probe_all(shared: &Shared) -> Result<(), AwsError> {
    let groups = shared
        .store
        .read(|tx| tx.resources(KIND))
        .map_err(store_error)?;
    for (arn, tg) in groups {
        if tg["HealthCheckEnabled"] == false {
            continue;
        }
        let interval = Duration::from_secs(tg["HealthCheckIntervalSeconds"].as_u64().unwrap_or(30));
        let timeout = Duration::from_secs(tg["HealthCheckTimeoutSeconds"].as_u64().unwrap_or(5));
        let healthy_after = tg["HealthyThresholdCount"].as_u64().unwrap_or(5) as u32;
        let unhealthy_after = tg["UnhealthyThresholdCount"].as_u64().unwrap_or(2) as u32;
        for target in tg["Targets"].as_array().into_iter().flatten() {
            let id = target["Id"].as_str().unwrap_or_default().to_owned();
            let port = target["Port"].as_u64().unwrap_or(0) as u16;
            let key = (arn.clone(), id.clone(), port);
            let due = {
                let health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
                health
                    .get(&key)
                    .and_then(|h| h.probed)
                    .is_none_or(|at| at.elapsed() >= interval)
            };
            if !due {
                continue;
            }
            let probe_port = tg["HealthCheckPort"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .unwrap_or(port);
            let probe = match tg["HealthCheckProtocol"].as_str().unwrap_or("HTTP") {
                "TCP" | "TLS" | "UDP" | "TCP_UDP" => Probe::Tcp(TcpProbe { port: probe_port }),
                protocol => Probe::Http(HttpProbe {
                    scheme: if protocol == "HTTPS" {
                        Scheme::Https
                    } else {
                        Scheme::Http
                    },
                    port: probe_port,
                    path: tg["HealthCheckPath"].as_str().unwrap_or("/").to_owned(),
                    statuses: statuses(tg["Matcher"]["HttpCode"].as_str().unwrap_or("200")),
                }),
            };
            let outcome = match address_of(shared, &id) {
                Some(address) => {
                    let target = ProbeTarget {
                        container_id: ContainerId::new(id.as_str()),
                        containerizer: shared.backend.clone(),
                        address,
                        netns: None,
                    };
                    checker_for(&probe).check(&target, timeout).await
                }
                None => {
                    ProbeOutcome::Unhealthy("the target has no address (is it running?)".into())
                }
            };
            let mut health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
            // A target deregistered while it was probed stays out.
            let Some(h) = health.get_mut(&key) else {
                continue;
            };
            h.probed = Some(Instant::now());
            match outcome {
                ProbeOutcome::Healthy => {
                    h.passes += 1;
                    h.failures = 0;
                    if h.passes >= healthy_after {
                        h.state = "healthy";
                        h.reason = None;
                    }
                }
                ProbeOutcome::Unhealthy(why) => {
                    h.failures += 1;
                    h.passes = 0;
                    if h.failures >= unhealthy_after {
                        h.state = "unhealthy";
                        h.reason = Some("Target.FailedHealthChecks");
                        h.description = format!("Health checks failed: {why}");
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_expand_lists_and_ranges() {
        assert_eq!(statuses("200"), [200]);
        assert_eq!(statuses("200,202"), [200, 202]);
        assert_eq!(statuses("200-203"), [200, 201, 202, 203]);
    }
}
