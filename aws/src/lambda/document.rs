//! The documents the API returns (`FunctionConfiguration`, `AliasConfiguration`) and how a
//! stored record becomes one: the stored configuration, with the fields the store keeps in
//! columns of their own (state, update status, revision, code) laid over it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine;
use hoist_store::{CodeRef, FunctionRecord, State, UpdateStatus, VersionRecord};
use serde_json::{Value, json};

use super::{DeployCode, Deployment, LambdaService};
use crate::protocol::AwsError;

/// Where `GetFunction`'s `Code.Location` points: the stored archive, served by the router.
pub(super) const CODE_ROUTE: &str = "/_hoist/lambda/code/{sha256}";

/// A member of the stored configuration that is not part of AWS's document: the image of an
/// image function (`GetFunction` reports it under `Code`).
pub(super) const IMAGE_URI: &str = "_ImageUri";

/// A fresh revision id (a UUID, as AWS's are).
pub(super) fn revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `time` as AWS writes `LastModified`: `2024-02-29T12:34:56.789+0000`.
pub(super) fn timestamp(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (year, month, day, hour, minute, second) = crate::protocol::utc_parts(since.as_secs());
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}+0000",
        since.subsec_millis()
    )
}

/// `CodeSha256` as AWS reports it: the base64 of the digest.
pub(super) fn code_sha256(code: &CodeRef) -> String {
    base64::engine::general_purpose::STANDARD.encode(code.digest())
}

fn image_sha256(uri: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(uri.as_bytes()))
}

/// The configuration with the columns laid over it and hoist's own members removed.
fn overlay(
    configuration: &Value,
    code: Option<&CodeRef>,
    state: State,
    update: Option<UpdateStatus>,
    revision_id: &str,
) -> Value {
    let mut doc = configuration.clone();
    let Some(map) = doc.as_object_mut() else {
        return doc;
    };
    let image = map.remove(IMAGE_URI);
    match (code, image) {
        (Some(code), _) => {
            map.insert("CodeSha256".into(), json!(code_sha256(code)));
            map.insert("CodeSize".into(), json!(code.size));
        }
        (None, Some(Value::String(uri))) => {
            map.insert("CodeSha256".into(), json!(image_sha256(&uri)));
            map.insert("CodeSize".into(), json!(0));
        }
        (None, _) => {}
    }
    map.insert("State".into(), json!(state.as_str()));
    if let Some(update) = update {
        map.insert("LastUpdateStatus".into(), json!(update.as_str()));
    }
    map.insert("RevisionId".into(), json!(revision_id));
    doc
}

/// `$LATEST`'s `FunctionConfiguration`; `arn` replaces `FunctionArn` when given (a qualified
/// request).
pub(super) fn render_function(f: &FunctionRecord, arn: Option<String>) -> Value {
    let mut doc = overlay(
        &f.configuration,
        f.code.as_ref(),
        f.state,
        Some(f.last_update_status),
        &f.revision_id,
    );
    if let Some(arn) = arn {
        doc["FunctionArn"] = json!(arn);
    }
    doc
}

/// A published version's `FunctionConfiguration`.
pub(super) fn render_version(v: &VersionRecord, arn: Option<String>) -> Value {
    let mut doc = overlay(
        &v.configuration,
        v.code.as_ref(),
        v.state,
        Some(UpdateStatus::Successful),
        &v.revision_id,
    );
    if let Some(arn) = arn {
        doc["FunctionArn"] = json!(arn);
    }
    doc
}

/// The image URI of an image function's stored configuration.
pub(super) fn image_uri(configuration: &Value) -> Option<&str> {
    configuration.get(IMAGE_URI).and_then(Value::as_str)
}

/// Marks `$LATEST` as being created (`Pending`, AWS's `Creating` reason) or updated
/// (`InProgress`), with a new revision. Reasons as LocalStack records AWS's (`provider.py`).
pub(super) fn begin_latest(f: &mut FunctionRecord, creating: bool) {
    let map = f.configuration.as_object_mut();
    if creating {
        f.state = State::Pending;
        f.last_update_status = UpdateStatus::Successful;
        if let Some(map) = map {
            map.insert(
                "StateReason".into(),
                json!("The function is being created."),
            );
            map.insert("StateReasonCode".into(), json!("Creating"));
        }
    } else {
        f.last_update_status = UpdateStatus::InProgress;
        if let Some(map) = map {
            map.insert(
                "LastUpdateStatusReason".into(),
                json!("The function is being created."),
            );
            map.insert("LastUpdateStatusReasonCode".into(), json!("Creating"));
        }
    }
    f.configuration["LastModified"] = json!(timestamp(SystemTime::now()));
    f.revision_id = revision();
}

fn clear(map: &mut serde_json::Map<String, Value>, keys: &[&str]) {
    for key in keys {
        map.remove(*key);
    }
}

/// Records how deploying `$LATEST` ended: `Active`/`Successful`, or `Failed` with the host's
/// reason. The revision changes only when this changed something (a redeployment after a
/// restart keeps it).
pub(super) fn settle_latest(f: &mut FunctionRecord, failure: Option<&AwsError>) {
    let before = f.clone();
    let pending = f.state == State::Pending;
    let Some(map) = f.configuration.as_object_mut() else {
        return;
    };
    clear(
        map,
        &[
            "StateReason",
            "StateReasonCode",
            "LastUpdateStatusReason",
            "LastUpdateStatusReasonCode",
        ],
    );
    match failure {
        None => {
            f.state = State::Active;
            f.last_update_status = UpdateStatus::Successful;
        }
        Some(err) if pending || f.state == State::Failed => {
            f.state = State::Failed;
            map.insert("StateReason".into(), json!(err.message()));
            map.insert("StateReasonCode".into(), json!("InternalError"));
        }
        Some(err) => {
            f.last_update_status = UpdateStatus::Failed;
            map.insert("LastUpdateStatusReason".into(), json!(err.message()));
            map.insert("LastUpdateStatusReasonCode".into(), json!("InternalError"));
        }
    }
    if *f != before {
        f.revision_id = revision();
    }
}

/// Records how deploying a published version ended (a new revision only when that changed
/// something).
pub(super) fn settle_version(v: &mut VersionRecord, failure: Option<&AwsError>) {
    let before = v.clone();
    if let Some(map) = v.configuration.as_object_mut() {
        clear(map, &["StateReason", "StateReasonCode"]);
        if let Some(err) = failure {
            map.insert("StateReason".into(), json!(err.message()));
            map.insert("StateReasonCode".into(), json!("InternalError"));
        }
    }
    v.state = if failure.is_some() {
        State::Failed
    } else {
        State::Active
    };
    if *v != before {
        v.revision_id = revision();
    }
}

/// What the host gets for one version of a function.
pub(super) fn deployment(
    service: &LambdaService,
    name: &str,
    version: &str,
    configuration: &Value,
    code: Option<&CodeRef>,
    reserved_concurrency: Option<u32>,
) -> Deployment {
    let text = |key: &str| {
        configuration
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let number = |key: &str, default: u32| {
        configuration
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    };
    let strings = |value: Option<&Value>| {
        value.and_then(Value::as_array).map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
    };
    let environment: BTreeMap<String, String> = configuration
        .pointer("/Environment/Variables")
        .and_then(Value::as_object)
        .map(|vars| {
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let code = match (code, image_uri(configuration)) {
        (Some(code), _) => DeployCode::Zip {
            path: service.store().code_path(code),
            sha256: code.sha256.clone(),
            size: code.size,
        },
        (None, uri) => {
            let image = configuration.pointer("/ImageConfigResponse/ImageConfig");
            DeployCode::Image {
                uri: uri.unwrap_or_default().to_owned(),
                entry_point: strings(image.and_then(|i| i.get("EntryPoint"))),
                command: strings(image.and_then(|i| i.get("Command"))),
                working_directory: image
                    .and_then(|i| i.get("WorkingDirectory"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        }
    };
    Deployment {
        function: name.to_owned(),
        version: version.to_owned(),
        arn: service.arns().qualified(name, version),
        code,
        runtime: text("Runtime"),
        handler: text("Handler"),
        timeout: number("Timeout", 3),
        memory_size: number("MemorySize", 128),
        environment,
        reserved_concurrency,
        architecture: configuration
            .pointer("/Architectures/0")
            .and_then(Value::as_str)
            .unwrap_or("x86_64")
            .to_owned(),
    }
}

/// An `AliasConfiguration`.
pub(super) fn alias_document(
    arn: String,
    name: &str,
    version: &str,
    description: &str,
    routing: Option<&Value>,
    revision_id: &str,
) -> Value {
    let mut doc = json!({
        "AliasArn": arn,
        "Name": name,
        "FunctionVersion": version,
        "Description": description,
        "RevisionId": revision_id,
    });
    if let Some(routing) = routing {
        doc["RoutingConfig"] = routing.clone();
    }
    doc
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_as_aws_writes_them() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(super::timestamp(t), "2024-02-29T12:34:56.789+0000");
    }
}
