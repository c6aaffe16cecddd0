//! DescribeInstances: instance ids, filters (`instance-state-name`, `instance-id`,
//! `instance-type`, `image-id`, `reservation-id`, `key-name`, `tag:KEY`, `tag-key`,
//! `tag-value`, with `*` and `?` wildcards, as the EC2 API reference's DescribeInstances lists
//! them), reservations in the order of their first instance, and pages (`MaxResults` 5 to
//! 1000, not with instance ids).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::ec2::{KIND, check_ids, code_of, not_found, refresh};
use super::{Shared, glob, iso8601, paginate};
use crate::protocol::{AwsError, RequestId};
use crate::query::{EC2, Params, Xml, invalid_value};

/// The architecture instances and images report (EC2's names for the host's).
const ARCH: &str = if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "x86_64"
};

fn filter_matches(name: &str, values: &[String], i: &Value) -> Result<bool, AwsError> {
    let any = |text: &str| values.iter().any(|v| glob(v, text));
    let tags = i["Tags"].as_array().cloned().unwrap_or_default();
    let field = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
    Ok(match name {
        "instance-state-name" => any(&field("State")),
        "instance-state-code" => any(&code_of(&field("State")).to_string()),
        "instance-id" => any(&field("InstanceId")),
        "instance-type" => any(&field("InstanceType")),
        "image-id" => any(&field("ImageId")),
        "reservation-id" => any(&field("ReservationId")),
        "key-name" => any(&field("KeyName")),
        "tag-key" => tags
            .iter()
            .any(|t| any(t["Key"].as_str().unwrap_or_default())),
        "tag-value" => tags
            .iter()
            .any(|t| any(t["Value"].as_str().unwrap_or_default())),
        _ => match name.strip_prefix("tag:") {
            Some(key) => tags.iter().any(|t| {
                t["Key"].as_str() == Some(key) && any(t["Value"].as_str().unwrap_or_default())
            }),
            None => {
                return Err(invalid_value(format!("The filter '{name}' is invalid")));
            }
        },
    })
}

/// Every instance, refreshed first; `InvalidInstanceID.NotFound` naming those of `ids` that do
/// not exist.
async fn current(shared: &Shared, ids: &[String]) -> Result<Vec<Value>, AwsError> {
    {
        let _guard = shared.lock.lock().await;
        refresh(shared).await?;
    }
    let all = super::documents(shared, KIND)?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !all.iter().any(|i| i["InstanceId"] == id.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(not_found(&missing));
    }
    Ok(all)
}

pub(crate) async fn describe_instances(
    shared: &Shared,
    params: &Params,
    request: &RequestId,
) -> Result<Response, AwsError> {
    let ids = params.list("InstanceId");
    check_ids(&ids)?;
    let max = params.int("MaxResults")?;
    if let Some(max) = max {
        if !ids.is_empty() {
            return Err(AwsError::new(
                "InvalidParameterCombination",
                StatusCode::BAD_REQUEST,
                "The parameter instancesSet cannot be used with the parameter maxResults",
            ));
        }
        if !(5..=1000).contains(&max) {
            return Err(invalid_value(format!(
                "Value ( {max} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
            )));
        }
    }
    let all = current(shared, &ids).await?;
    let filters: Vec<(String, Vec<String>)> = params
        .structs("Filter")
        .into_iter()
        .map(|f| Ok((f.required("Name")?.to_owned(), f.list("Value"))))
        .collect::<Result<_, AwsError>>()?;
    let mut selected = Vec::new();
    for i in all {
        if !ids.is_empty()
            && !ids
                .iter()
                .any(|id| i["InstanceId"].as_str() == Some(id.as_str()))
        {
            continue;
        }
        let mut keep = true;
        for (name, values) in &filters {
            keep &= filter_matches(name, values, &i)?;
        }
        if keep {
            selected.push(i);
        }
    }
    let size = max.map_or(usize::MAX, |m| m as usize);
    let (page, next) = paginate(selected, params.get("NextToken"), size, |t| {
        invalid_value(format!("The token '{t}' is invalid"))
    })?;
    // Reservations in the order of their first instance.
    let mut reservations: Vec<(String, Vec<Value>)> = Vec::new();
    for i in page {
        let r = i["ReservationId"].as_str().unwrap_or_default().to_owned();
        match reservations.iter_mut().find(|(id, _)| *id == r) {
            Some((_, list)) => list.push(i),
            None => reservations.push((r, vec![i])),
        }
    }
    let owner = shared.config.account_id.clone();
    Ok(EC2.respond("DescribeInstances", request, |x| {
        x.list(
            "reservationSet",
            "item",
            &reservations,
            |x, (r, instances)| {
                x.text("reservationId", r)
                    .text("ownerId", &owner)
                    .node("groupSet", |_| {})
                    .list("instancesSet", "item", instances, |x, i| {
                        instance_xml(shared, x, i, i["State"].as_str().unwrap_or("stopped"));
                    });
            },
        )
        .opt("nextToken", next.as_deref());
    }))
}

pub(crate) fn instance_xml(shared: &Shared, x: &mut Xml, i: &Value, state: &str) {
    let s = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
    let running = state == "running" || state == "pending";
    let address = running.then(|| {
        i["PrivateIpAddress"]
            .as_str()
            .unwrap_or("127.0.0.1")
            .to_owned()
    });
    x.text("instanceId", s("InstanceId"))
        .text("imageId", s("ImageId"))
        .node("instanceState", |x| {
            x.text("code", code_of(state)).text("name", state);
        })
        .text(
            "privateDnsName",
            address
                .as_ref()
                .map(|a| format!("ip-{}.ec2.internal", a.replace('.', "-")))
                .unwrap_or_default(),
        )
        .text("dnsName", "")
        .text("reason", s("StateTransitionReason"))
        .opt("keyName", i["KeyName"].as_str())
        .text("amiLaunchIndex", i["AmiLaunchIndex"].as_i64().unwrap_or(0))
        .text("instanceType", s("InstanceType"))
        .text(
            "launchTime",
            iso8601(i["LaunchTime"].as_f64().unwrap_or(0.0)),
        )
        .node("placement", |x| {
            x.text("availabilityZone", format!("{}a", shared.config.region))
                .text("tenancy", "default");
        })
        .node("monitoring", |x| {
            x.text("state", "disabled");
        })
        .opt("privateIpAddress", address.as_deref())
        .node("groupSet", |_| {})
        .text("architecture", ARCH)
        .text("rootDeviceType", "ebs")
        .text("rootDeviceName", "/dev/sda1")
        .text("virtualizationType", "hvm")
        .text("hypervisor", "xen");
    if let Some(reason) = i["StateReason"].as_object() {
        x.node("stateReason", |x| {
            x.text("code", reason["Code"].as_str().unwrap_or_default())
                .text("message", reason["Message"].as_str().unwrap_or_default());
        });
    }
    let tags = i["Tags"].as_array().cloned().unwrap_or_default();
    if !tags.is_empty() {
        x.list("tagSet", "item", tags, |x, t| {
            x.text("key", t["Key"].as_str().unwrap_or_default())
                .text("value", t["Value"].as_str().unwrap_or_default());
        });
    }
}

/// DescribeInstanceStatus: running instances (all with `IncludeAllInstances`), each `ok` with
/// its reachability checks passed while it runs, `not-applicable` otherwise, as the EC2 API
/// reference's status checks describe.
pub(crate) async fn describe_instance_status(
    shared: &Shared,
    params: &Params,
    request: &RequestId,
) -> Result<Response, AwsError> {
    let ids = params.list("InstanceId");
    check_ids(&ids)?;
    let all_instances = params.bool("IncludeAllInstances")?.unwrap_or(false);
    let all = current(shared, &ids).await?;
    let selected: Vec<Value> = all
        .into_iter()
        .filter(|i| ids.is_empty() || ids.iter().any(|id| i["InstanceId"] == id.as_str()))
        .filter(|i| all_instances || i["State"] == "running")
        .collect();
    let size = params
        .int("MaxResults")?
        .map_or(usize::MAX, |m| m.max(5) as usize);
    let (page, next) = paginate(selected, params.get("NextToken"), size, |t| {
        invalid_value(format!("The token '{t}' is invalid"))
    })?;
    let zone = format!("{}a", shared.config.region);
    Ok(EC2.respond("DescribeInstanceStatus", request, |x| {
        x.list("instanceStatusSet", "item", &page, |x, i| {
            let state = i["State"].as_str().unwrap_or("stopped");
            let summary = |x: &mut Xml| {
                if state == "running" {
                    x.text("status", "ok")
                        .list("details", "item", ["reachability"], |x, name| {
                            x.text("name", name).text("status", "passed");
                        });
                } else {
                    x.text("status", "not-applicable");
                }
            };
            x.text("instanceId", i["InstanceId"].as_str().unwrap_or_default())
                .text("availabilityZone", &zone)
                .node("instanceState", |x| {
                    x.text("code", code_of(state)).text("name", state);
                })
                .node("instanceStatus", summary)
                .node("systemStatus", summary);
        })
        .opt("nextToken", next.as_deref());
    }))
}

/// DescribeImages: the AMIs of the image mapping, each `available` and public, its backend
/// image as its name and location.
pub(crate) fn describe_images(
    shared: &Shared,
    params: &Params,
    request: &RequestId,
) -> Result<Response, AwsError> {
    let ids = params.list("ImageId");
    let mapping = &shared.config.image_mapping;
    let missing: Vec<&String> = ids.iter().filter(|id| !mapping.contains_key(*id)).collect();
    if let Some(id) = missing.first() {
        return Err(AwsError::new(
            "InvalidAMIID.NotFound",
            StatusCode::BAD_REQUEST,
            format!("The image id '[{id}]' does not exist"),
        ));
    }
    let images: Vec<(&String, &String)> = mapping
        .iter()
        .filter(|(id, _)| ids.is_empty() || ids.contains(id))
        .collect();
    let owner = shared.config.account_id.clone();
    Ok(EC2.respond("DescribeImages", request, |x| {
        x.list("imagesSet", "item", images, |x, (id, image)| {
            x.text("imageId", id)
                .text("imageLocation", image)
                .text("imageState", "available")
                .text("imageOwnerId", &owner)
                .text("isPublic", "true")
                .text("architecture", ARCH)
                .text("imageType", "machine")
                .text("name", image)
                .text("rootDeviceType", "ebs")
                .text("rootDeviceName", "/dev/sda1")
                .text("virtualizationType", "hvm")
                .text("hypervisor", "xen");
        });
    }))
}
