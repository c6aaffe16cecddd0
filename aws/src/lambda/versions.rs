//! Versions and aliases: `PublishVersion`, `ListVersionsByFunction`, `CreateAlias`,
//! `GetAlias`, `UpdateAlias`, `DeleteAlias`, `ListAliases`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hoist_store::{AliasRecord, State as FnState, VersionRecord};
use serde_json::{Map, Value, json};

use super::functions::{check_idle, max_items, query};
use super::input::{Members, listing};
use super::names::parse_target;
use super::{LambdaService, document, errors, validate};
use crate::protocol::{AwsError, json_response};

/// Picks the version an alias routes one invocation to: one of its `AdditionalVersionWeights`
/// with that probability, else its `FunctionVersion`.
pub(super) fn pick_version(alias: &Value) -> String {
    let primary = alias["FunctionVersion"]
        .as_str()
        .unwrap_or("$LATEST")
        .to_owned();
    let Some(weights) = alias
        .pointer("/RoutingConfig/AdditionalVersionWeights")
        .and_then(Value::as_object)
    else {
        return primary;
    };
    let roll: f64 = rand::random();
    let mut total = 0.0;
    for (version, weight) in weights {
        total += weight.as_f64().unwrap_or(0.0);
        if roll < total {
            return version.clone();
        }
    }
    primary
}

/// Publishes `$LATEST` as a new version (or returns the last one when nothing changed), and
/// deploys it; answers with its configuration.
pub(super) async fn publish_version(
    service: &LambdaService,
    name: &str,
    description: Option<String>,
    revision_id: Option<String>,
    code_sha256: Option<String>,
) -> Result<Value, AwsError> {
    let guard = service.lock(name).await;
    let mut function = service.function_record(name)?;
    check_idle(service, &function)?;
    if revision_id.is_some_and(|r| r != function.revision_id) {
        return Err(errors::revision_mismatch("GetFunction/GetAlias"));
    }
    let current_sha = function.code.as_ref().map(document::code_sha256);
    if let Some(given) = code_sha256
        && current_sha.as_deref().is_some_and(|c| c != given)
    {
        return Err(errors::invalid_parameter(format!(
            "CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
            current_sha.unwrap_or_default()
        )));
    }
    if function.last_version > 0 {
        let last = service.db(|s| s.read(|tx| tx.version(name, function.last_version)))?;
        // Nothing changed since the last version (every change to $LATEST sets its
        // LastModified, which a version keeps): AWS returns that version (localstack
        // `provider.py`, `_create_version_model`, compares the internal revision the same way).
        if let Some(last) = last
            && last.code == function.code
            && last.configuration.get("LastModified") == function.configuration.get("LastModified")
        {
            return Ok(document::render_version(&last, None));
        }
    }
    let number = function.last_version + 1;
    let mut configuration = function.configuration.clone();
    if let Some(map) = configuration.as_object_mut() {
        for key in [
            "StateReason",
            "StateReasonCode",
            "LastUpdateStatusReason",
            "LastUpdateStatusReasonCode",
        ] {
            map.remove(key);
        }
        map.insert("Version".into(), json!(number.to_string()));
        map.insert(
            "FunctionArn".into(),
            json!(service.arns().qualified(name, &number.to_string())),
        );
        if let Some(description) = description {
            validate::max_len(&description, "description", 256)?;
            map.insert("Description".into(), json!(description));
        }
        map.insert(
            "StateReason".into(),
            json!("The function is being created."),
        );
        map.insert("StateReasonCode".into(), json!("Creating"));
    }
    let version = VersionRecord {
        function: name.to_owned(),
        version: number,
        configuration,
        code: function.code.clone(),
        state: FnState::Pending,
        revision_id: document::revision(),
    };
    function.last_version = number;
    function.revision_id = document::revision();
    service.db(|s| {
        s.write(|tx| {
            tx.insert_version(&version)?;
            tx.update_function(&function)
        })
    })?;
    let settled = service.deploy_version(version).await?;
    drop(guard);
    Ok(document::render_version(&settled, None))
}

pub(super) async fn publish(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    body: Body,
) -> Result<Response, AwsError> {
    let mut input = Members::read(&service, body, "PublishVersion").await?;
    let name = parse_target(&raw_name, None)?.name;
    let code_sha256 = input.string("CodeSha256")?;
    let description = input.string("Description")?;
    let revision_id = input.string("RevisionId")?;
    input.finish("PublishVersion")?;
    let version = publish_version(&service, &name, description, revision_id, code_sha256).await?;
    Ok(json_response(StatusCode::CREATED, &version))
}

/// A page of `items` after the index `Marker` names, and the next marker.
fn page<T>(items: Vec<T>, raw: &Option<String>) -> Result<(Vec<T>, Option<String>), AwsError> {
    let limit = max_items(raw)?;
    let start = match query(raw, "Marker") {
        None => 0,
        Some(marker) => marker
            .parse::<usize>()
            .map_err(|_| errors::invalid_parameter(format!("Invalid marker: {marker}")))?,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = (start + limit < total).then(|| (start + limit).to_string());
    Ok((page, next))
}

pub(super) async fn list(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AwsError> {
    let name = parse_target(&raw_name, None)?.name;
    let function = service.function_record(&name)?;
    let versions = service.db(|s| s.read(|tx| tx.versions(&name)))?;
    let mut all = vec![document::render_function(
        &function,
        Some(service.arns().qualified(&name, "$LATEST")),
    )];
    all.extend(versions.iter().map(|v| document::render_version(v, None)));
    let (versions, next) = page(all, &raw)?;
    Ok(listing("Versions", versions, next))
}

/// Checks an alias name against the model's `Alias` shape, with AWS's message.
fn alias_name(name: &str) -> Result<(), AwsError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(errors::validation(
            name,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        ))
    }
}

/// Checks that `version` (`$LATEST` or a number) exists, and a routing configuration's
/// versions and weights (messages as localstack `provider.py`, `_create_routing_config_model`).
fn check_target(
    service: &LambdaService,
    function: &str,
    version: &str,
    routing: Option<&Value>,
) -> Result<(), AwsError> {
    let exists = |v: &str| -> Result<(), AwsError> {
        if v == "$LATEST" {
            return Ok(());
        }
        let n: u64 = v.parse().map_err(|_| {
            errors::validation(
                v,
                "functionVersion",
                r"Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)",
            )
        })?;
        service
            .db(|s| s.read(|tx| tx.version(function, n)))?
            .map(|_| ())
            .ok_or_else(|| service.not_found(function, Some(v)))
    };
    exists(version)?;
    let Some(weights) = routing
        .and_then(|r| r.get("AdditionalVersionWeights"))
        .and_then(Value::as_object)
    else {
        return Ok(());
    };
    if !weights.is_empty() && version == "$LATEST" {
        return Err(errors::invalid_parameter(
            "$LATEST is not supported for an alias pointing to more than 1 version",
        ));
    }
    for (v, weight) in weights {
        if v == version {
            return Err(errors::invalid_parameter(format!(
                "Invalid function version {v}. Function version {v} is already included in routing configuration."
            )));
        }
        let w = weight.as_f64().unwrap_or(-1.0);
        if !(0.0..=1.0).contains(&w) {
            return Err(errors::validation(
                weight,
                "routingConfig.additionalVersionWeights",
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]",
            ));
        }
        exists(v)?;
    }
    Ok(())
}

fn render_alias(service: &LambdaService, alias: &AliasRecord) -> Value {
    let mut doc = alias.configuration.clone();
    doc["AliasArn"] = json!(service.arns().qualified(&alias.function, &alias.name));
    doc["RevisionId"] = json!(alias.revision_id);
    doc
}

pub(super) async fn create_alias(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    body: Body,
) -> Result<Response, AwsError> {
    let mut input = Members::read(&service, body, "CreateAlias").await?;
    let function = parse_target(&raw_name, None)?.name;
    let name = input
        .string("Name")?
        .ok_or_else(|| errors::validation("null", "name", "Member must not be null"))?;
    let version = input
        .string("FunctionVersion")?
        .ok_or_else(|| errors::validation("null", "functionVersion", "Member must not be null"))?;
    let description = input.string("Description")?.unwrap_or_default();
    let routing = input.raw("RoutingConfig");
    input.finish("CreateAlias")?;
    alias_name(&name)?;
    validate::max_len(&description, "description", 256)?;
    let _guard = service.lock(&function).await;
    service.function_record(&function)?;
    check_target(&service, &function, &version, routing.as_ref())?;
    let arn = service.arns().qualified(&function, &name);
    let record = AliasRecord {
        function: function.clone(),
        name: name.clone(),
        configuration: document::alias_document(
            arn.clone(),
            &name,
            &version,
            &description,
            routing.as_ref(),
            "",
        ),
        revision_id: document::revision(),
    };
    service.db(|s| {
        s.write(|tx| {
            if tx.alias(&function, &name)?.is_some() {
                return Ok(Err(errors::conflict(format!(
                    "Alias already exists: {arn}"
                ))));
            }
            tx.put_alias(&record)?;
            Ok(Ok(()))
        })
    })??;
    Ok(json_response(
        StatusCode::CREATED,
        &render_alias(&service, &record),
    ))
}

fn find_alias(
    service: &LambdaService,
    function: &str,
    name: &str,
    missing: &str,
) -> Result<AliasRecord, AwsError> {
    service.function_record(function)?;
    service
        .db(|s| s.read(|tx| tx.alias(function, name)))?
        .ok_or_else(|| {
            errors::not_found(format!(
                "{missing}: {}",
                service.arns().qualified(function, name)
            ))
        })
}

pub(super) async fn get_alias(
    State(service): State<LambdaService>,
    Path((raw_name, name)): Path<(String, String)>,
) -> Result<Response, AwsError> {
    let function = parse_target(&raw_name, None)?.name;
    let alias = find_alias(&service, &function, &name, "Cannot find alias arn")?;
    Ok(json_response(
        StatusCode::OK,
        &render_alias(&service, &alias),
    ))
}

pub(super) async fn update_alias(
    State(service): State<LambdaService>,
    Path((raw_name, name)): Path<(String, String)>,
    body: Body,
) -> Result<Response, AwsError> {
    let mut input = Members::read(&service, body, "UpdateAlias").await?;
    let function = parse_target(&raw_name, None)?.name;
    let version = input.string("FunctionVersion")?;
    let description = input.string("Description")?;
    let routing = input.raw("RoutingConfig");
    let revision = input.string("RevisionId")?;
    input.finish("UpdateAlias")?;
    let _guard = service.lock(&function).await;
    let mut alias = find_alias(&service, &function, &name, "Alias not found")?;
    if revision.is_some_and(|r| r != alias.revision_id) {
        return Err(errors::revision_mismatch("GetFunction/GetAlias"));
    }
    let doc: &mut Map<String, Value> = alias
        .configuration
        .as_object_mut()
        .ok_or_else(|| errors::service("the stored alias is not an object"))?;
    if let Some(version) = version {
        doc.insert("FunctionVersion".into(), json!(version));
    }
    if let Some(description) = description {
        validate::max_len(&description, "description", 256)?;
        doc.insert("Description".into(), json!(description));
    }
    if let Some(routing) = routing {
        doc.insert("RoutingConfig".into(), routing);
    }
    let target = doc["FunctionVersion"]
        .as_str()
        .unwrap_or("$LATEST")
        .to_owned();
    check_target(&service, &function, &target, doc.get("RoutingConfig"))?;
    alias.revision_id = document::revision();
    service.db(|s| s.write(|tx| tx.put_alias(&alias)))?;
    Ok(json_response(
        StatusCode::OK,
        &render_alias(&service, &alias),
    ))
}

pub(super) async fn delete_alias(
    State(service): State<LambdaService>,
    Path((raw_name, name)): Path<(String, String)>,
) -> Result<Response, AwsError> {
    let function = parse_target(&raw_name, None)?.name;
    let _guard = service.lock(&function).await;
    find_alias(&service, &function, &name, "Alias not found")?;
    service.db(|s| s.write(|tx| tx.delete_alias(&function, &name)))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_aliases(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AwsError> {
    let function = parse_target(&raw_name, None)?.name;
    service.function_record(&function)?;
    let only = query(&raw, "FunctionVersion");
    let aliases: Vec<Value> = service
        .db(|s| s.read(|tx| tx.aliases(&function)))?
        .iter()
        .filter(|a| {
            only.as_deref()
                .is_none_or(|v| a.configuration["FunctionVersion"] == v)
        })
        .map(|a| render_alias(&service, a))
        .collect();
    let (aliases, next) = page(aliases, &raw)?;
    Ok(listing("Aliases", aliases, next))
}
