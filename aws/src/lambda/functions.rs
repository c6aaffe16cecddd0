//! Functions: `CreateFunction`, `GetFunction`, `GetFunctionConfiguration`, `ListFunctions`,
//! `UpdateFunctionCode`, `UpdateFunctionConfiguration`, `DeleteFunction`, and the download of
//! a function's code that `GetFunction`'s `Code.Location` points at.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hoist_store::{CodeRef, FunctionRecord, State as FnState, UpdateStatus, VersionRecord};
use serde_json::{Value, json};

use super::input::{Members, apply_configuration, listing};
use super::names::{Qualifier, parse_target, valid_name};
use super::{LambdaService, document, errors, validate, versions};
use crate::protocol::{AwsError, json_response, query_pairs};

/// The value of query parameter `key`.
pub(super) fn query(raw: &Option<String>, key: &str) -> Option<String> {
    query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `MaxItems`, within the model's bounds (1–10000), default 50.
pub(super) fn max_items(raw: &Option<String>) -> Result<usize, AwsError> {
    match query(raw, "MaxItems") {
        None => Ok(50),
        Some(text) => {
            let n: i64 = text
                .parse()
                .map_err(|_| errors::validation(&text, "maxItems", "Member must be an integer"))?;
            validate::bounded(n, "maxItems", 1, 10_000)?;
            Ok(n as usize)
        }
    }
}

/// Refuses a change while `$LATEST` is being created or updated, with AWS's message
/// (localstack `lambda_service.py`, `create_function_version`).
pub(super) fn check_idle(service: &LambdaService, f: &FunctionRecord) -> Result<(), AwsError> {
    if f.state == FnState::Pending || f.last_update_status == UpdateStatus::InProgress {
        return Err(errors::conflict(format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {}",
            service.arns().function(&f.name)
        )));
    }
    Ok(())
}

fn check_revision(f: &FunctionRecord, given: Option<&str>) -> Result<(), AwsError> {
    match given {
        Some(revision) if revision != f.revision_id => {
            Err(errors::revision_mismatch("GetFunction/GetAlias"))
        }
        _ => Ok(()),
    }
}

/// A function version as a request resolved it: the function, the published version (none
/// for `$LATEST`), and the qualifier the caller named.
pub(super) struct Resolved {
    pub(super) function: FunctionRecord,
    pub(super) version: Option<VersionRecord>,
    pub(super) qualifier: Option<String>,
}

impl Resolved {
    pub(super) fn configuration(&self, service: &LambdaService) -> Value {
        let arn = self
            .qualifier
            .as_ref()
            .map(|q| service.arns().qualified(&self.function.name, q));
        match &self.version {
            Some(v) => document::render_version(v, arn),
            None => document::render_function(&self.function, arn),
        }
    }
}

/// Resolves a `FunctionName` and `Qualifier` (a version, `$LATEST` or an alias; an alias with
/// additional version weights picks one of its versions by weight).
pub(super) fn resolve(
    service: &LambdaService,
    raw_name: &str,
    qualifier: Option<&str>,
) -> Result<Resolved, AwsError> {
    let target = parse_target(raw_name, qualifier)?;
    let name = target.name;
    let function = service.function_record(&name)?;
    let (version, qualifier) = match target.qualifier {
        None => (None, None),
        Some(Qualifier::Latest) => (None, Some("$LATEST".to_owned())),
        Some(Qualifier::Version(n)) => {
            let v = service
                .db(|s| s.read(|tx| tx.version(&name, n)))?
                .ok_or_else(|| service.not_found(&name, Some(&n.to_string())))?;
            (Some(v), Some(n.to_string()))
        }
        Some(Qualifier::Alias(alias)) => {
            let record = service
                .db(|s| s.read(|tx| tx.alias(&name, &alias)))?
                .ok_or_else(|| service.not_found(&name, Some(&alias)))?;
            let chosen = versions::pick_version(&record.configuration);
            let version = match chosen.parse::<u64>() {
                Ok(n) => Some(
                    service
                        .db(|s| s.read(|tx| tx.version(&name, n)))?
                        .ok_or_else(|| service.not_found(&name, Some(&chosen)))?,
                ),
                Err(_) => None,
            };
            (version, Some(alias))
        }
    };
    Ok(Resolved {
        function,
        version,
        qualifier,
    })
}

pub(super) async fn get(
    State(service): State<LambdaService>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AwsError> {
    let resolved = resolve(&service, &name, query(&raw, "Qualifier").as_deref())?;
    let f = &resolved.function;
    let code_ref = resolved
        .version
        .as_ref()
        .map_or(f.code.as_ref(), |v| v.code.as_ref());
    let code = match (code_ref, document::image_uri(&f.configuration)) {
        (Some(code), _) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let path = document::CODE_ROUTE.replace("{sha256}", &code.sha256);
            json!({"RepositoryType": "S3", "Location": format!("http://{host}{path}")})
        }
        (None, uri) => json!({
            "RepositoryType": "ECR",
            "ImageUri": uri.unwrap_or_default(),
            "ResolvedImageUri": uri.unwrap_or_default(),
        }),
    };
    let tags = service.db(|s| s.read(|tx| tx.tags(&f.name)))?;
    let mut body = json!({
        "Configuration": resolved.configuration(&service),
        "Code": code,
    });
    if !tags.is_empty() {
        body["Tags"] = json!(tags);
    }
    if let Some(n) = f.reserved_concurrency {
        body["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
    }
    Ok(json_response(StatusCode::OK, &body))
}

pub(super) async fn get_configuration(
    State(service): State<LambdaService>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AwsError> {
    resolve(&service, &name, query(&raw, "Qualifier").as_deref())
        .map(|r| json_response(StatusCode::OK, &r.configuration(&service)))
}

pub(super) async fn list(
    State(service): State<LambdaService>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AwsError> {
    let limit = max_items(&raw)?;
    let marker = query(&raw, "Marker");
    let all_versions = match query(&raw, "FunctionVersion").as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(errors::validation(
                other,
                "functionVersion",
                "Member must satisfy enum value set: [ALL]",
            ));
        }
    };
    let page = service.db(|s| {
        s.read(|tx| {
            let functions = tx.functions(marker.as_deref(), limit + 1)?;
            let mut out = Vec::new();
            for f in functions.iter().take(limit) {
                out.push(document::render_function(f, None));
                if all_versions {
                    for v in tx.versions(&f.name)? {
                        let arn = service.arns().qualified(&f.name, &v.version.to_string());
                        out.push(document::render_version(&v, Some(arn)));
                    }
                }
            }
            let next = (functions.len() > limit).then(|| functions[limit - 1].name.clone());
            Ok((out, next))
        })
    })?;
    Ok(listing("Functions", page.0, page.1))
}

/// Decodes `ZipFile` (base64, as the REST-JSON protocol sends blobs) and checks it.
fn zip_file(service: &LambdaService, base64_text: &str) -> Result<Vec<u8>, AwsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .map_err(|e| errors::serialization(format!("`ZipFile` is not base64: {e}")))?;
    validate::zip(&bytes, &service.config().limits)?;
    Ok(bytes)
}

fn image_hosted(service: &LambdaService) -> Result<(), AwsError> {
    if service.host().capabilities().images {
        Ok(())
    } else {
        Err(errors::invalid_parameter(
            "This hoist serves zip functions only: its function host does not run container images (PackageType Image).",
        ))
    }
}

pub(super) async fn create(
    State(service): State<LambdaService>,
    body: Body,
) -> Result<Response, AwsError> {
    create_function(service, body).await
}

async fn create_function(service: LambdaService, body: Body) -> Result<Response, AwsError> {
    let mut input = Members::read(&service, body, "CreateFunction").await?;
    let raw_name = input
        .string("FunctionName")?
        .ok_or_else(|| errors::validation("null", "functionName", "Member must not be null"))?;
    let target = parse_target(&raw_name, None)?;
    if target.qualifier.is_some() || !valid_name(&target.name) {
        return Err(errors::validation(
            &raw_name,
            "functionName",
            "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)",
        ));
    }
    let name = target.name;
    if !input.has("Role") {
        return Err(errors::validation(
            "null",
            "role",
            "Member must not be null",
        ));
    }
    let package = input.string("PackageType")?.unwrap_or_else(|| "Zip".into());
    let mut code_input = input
        .object("Code")?
        .ok_or_else(|| errors::validation("null", "code", "Member must not be null"))?;
    let zip = code_input.string("ZipFile")?;
    let image = code_input.string("ImageUri")?;
    code_input.finish("Code")?;
    let publish = input.boolean("Publish")?;
    let tags = input.string_map("Tags")?.unwrap_or_default();
    for key in tags.keys() {
        validate::max_len(key, "tags.key", 128)?;
    }
    let architectures = input
        .strings("Architectures")?
        .unwrap_or_else(|| vec!["x86_64".into()]);
    if architectures.len() != 1 || !matches!(architectures[0].as_str(), "x86_64" | "arm64") {
        return Err(errors::validation(
            format!("[{}]", architectures.join(", ")),
            "architectures",
            "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]",
        ));
    }
    let mut configuration = json!({
        "FunctionName": name,
        "FunctionArn": service.arns().function(&name),
        "Description": "",
        "Timeout": 3,
        "MemorySize": 128,
        "Version": "$LATEST",
        "TracingConfig": {"Mode": "PassThrough"},
        "PackageType": package,
        "Architectures": architectures,
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}")},
    });
    let code_bytes = match (package.as_str(), zip, image) {
        ("Zip", Some(zip), None) => Some(zip_file(&service, &zip)?),
        ("Zip", _, Some(_)) => {
            return Err(errors::invalid_parameter(
                "Please don't provide ImageUri when updating a function with packageType Zip.",
            ));
        }
        ("Zip", None, None) => {
            return Err(errors::invalid_parameter(
                "Please provide a source for function code: ZipFile (hoist does not read code from S3).",
            ));
        }
        ("Image", None, Some(uri)) => {
            image_hosted(&service)?;
            configuration[document::IMAGE_URI] = json!(uri);
            None
        }
        ("Image", _, _) => {
            return Err(errors::invalid_parameter(
                "Please provide ImageUri when updating a function with packageType Image.",
            ));
        }
        (other, _, _) => {
            return Err(errors::validation(
                other,
                "packageType",
                "Member must satisfy enum value set: [Image, Zip]",
            ));
        }
    };
    let mut function = FunctionRecord::new(name.clone(), configuration);
    apply_configuration(&service, &mut function, &mut input)?;
    input.finish("CreateFunction")?;
    if package == "Zip" {
        let has = |key: &str| {
            function
                .configuration
                .get(key)
                .is_some_and(|v| !v.is_null())
        };
        if !has("Runtime") || !has("Handler") {
            return Err(errors::invalid_parameter(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            ));
        }
    }
    document::begin_latest(&mut function, true);
    let revision = function.revision_id.clone();
    {
        let _guard = service.lock(&name).await;
        service.db(|s| {
            s.write(|tx| {
                if tx.function(&name)?.is_some() {
                    return Ok(Err(errors::conflict(format!(
                        "Function already exist: {name}"
                    ))));
                }
                function.code = code_bytes.as_deref().map(|b| tx.put_code(b)).transpose()?;
                tx.insert_function(&function)?;
                tx.set_tags(&name, &tags)?;
                Ok(Ok(()))
            })
        })??;
    }
    if publish {
        // Publishing needs $LATEST deployed: do it now, then publish version 1 from it.
        service.deploy_latest(&name, &revision).await;
        let version = versions::publish_version(&service, &name, None, None, None).await?;
        return Ok(json_response(StatusCode::CREATED, &version));
    }
    service.spawn_deploy(name, revision);
    Ok(json_response(
        StatusCode::CREATED,
        &document::render_function(&function, None),
    ))
}

pub(super) async fn update_code(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    body: Body,
) -> Result<Response, AwsError> {
    update(service, raw_name, body, true).await
}

pub(super) async fn update_configuration(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    body: Body,
) -> Result<Response, AwsError> {
    update(service, raw_name, body, false).await
}

/// `UpdateFunctionCode` (`code`) or `UpdateFunctionConfiguration`: `$LATEST` changes and goes
/// `InProgress` until the host has deployed it.
async fn update(
    service: LambdaService,
    raw_name: String,
    body: Body,
    code: bool,
) -> Result<Response, AwsError> {
    let operation = if code {
        "UpdateFunctionCode"
    } else {
        "UpdateFunctionConfiguration"
    };
    let mut input = Members::read(&service, body, operation).await?;
    let name = parse_target(&raw_name, None)?.name;
    let guard = service.lock(&name).await;
    let mut function = service.function_record(&name)?;
    check_revision(&function, input.string("RevisionId")?.as_deref())?;
    let mut new_code: Option<Vec<u8>> = None;
    let mut publish = false;
    let mut dry_run = false;
    if code {
        let zip = input.string("ZipFile")?;
        let image = input.string("ImageUri")?;
        publish = input.boolean("Publish")?;
        dry_run = input.boolean("DryRun")?;
        if let Some(arch) = input.strings("Architectures")? {
            if arch.len() != 1 || !matches!(arch[0].as_str(), "x86_64" | "arm64") {
                return Err(errors::validation(
                    format!("[{}]", arch.join(", ")),
                    "architectures",
                    "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]",
                ));
            }
            function.configuration["Architectures"] = json!(arch);
        }
        let is_image = function.configuration["PackageType"] == "Image";
        match (zip, image, is_image) {
            (Some(zip), None, false) => new_code = Some(zip_file(&service, &zip)?),
            (None, Some(uri), true) => function.configuration[document::IMAGE_URI] = json!(uri),
            (_, _, true) => {
                return Err(errors::invalid_parameter(
                    "Please provide ImageUri when updating a function with packageType Image.",
                ));
            }
            (_, Some(_), false) => {
                return Err(errors::invalid_parameter(
                    "Please don't provide ImageUri when updating a function with packageType Zip.",
                ));
            }
            (None, None, false) => {
                return Err(errors::invalid_parameter(
                    "Please provide a source for function code: ZipFile (hoist does not read code from S3).",
                ));
            }
        }
    } else {
        apply_configuration(&service, &mut function, &mut input)?;
    }
    input.finish(operation)?;
    check_idle(&service, &function)?;
    if dry_run {
        return Ok(json_response(
            StatusCode::OK,
            &document::render_function(&function, None),
        ));
    }
    document::begin_latest(&mut function, false);
    let revision = function.revision_id.clone();
    service.db(|s| {
        s.write(|tx| {
            if let Some(bytes) = &new_code {
                function.code = Some(tx.put_code(bytes)?);
            }
            tx.update_function(&function)
        })
    })?;
    drop(guard);
    if publish {
        service.deploy_latest(&name, &revision).await;
        let version = versions::publish_version(&service, &name, None, None, None).await?;
        return Ok(json_response(StatusCode::OK, &version));
    }
    service.spawn_deploy(name, revision);
    Ok(json_response(
        StatusCode::OK,
        &document::render_function(&function, None),
    ))
}

pub(super) async fn delete(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AwsError> {
    delete_function(service, raw_name, raw).await
}

async fn delete_function(
    service: LambdaService,
    raw_name: String,
    raw: Option<String>,
) -> Result<Response, AwsError> {
    let target = parse_target(&raw_name, query(&raw, "Qualifier").as_deref())?;
    let name = target.name;
    let _guard = service.lock(&name).await;
    // Messages as LocalStack records AWS's (`provider.py`, `delete_function`).
    match target.qualifier {
        Some(Qualifier::Alias(_)) => {
            return Err(errors::invalid_parameter(
                "Deletion of aliases is not currently supported.",
            ));
        }
        Some(Qualifier::Latest) => {
            return Err(errors::invalid_parameter(
                "$LATEST version cannot be deleted without deleting the function.",
            ));
        }
        Some(Qualifier::Version(n)) => {
            service.function_record(&name)?;
            let aliases = service.db(|s| s.read(|tx| tx.aliases(&name)))?;
            let number = n.to_string();
            let using: Vec<&str> = aliases
                .iter()
                .filter(|a| a.configuration["FunctionVersion"] == number.as_str())
                .map(|a| a.name.as_str())
                .collect();
            if !using.is_empty() {
                return Err(errors::conflict(format!(
                    "Unable to delete version because the following aliases reference it: [{}]",
                    using.join(", ")
                )));
            }
            service.db(|s| {
                s.write(|tx| match tx.version(&name, n)? {
                    Some(_) => tx.delete_version(&name, n).map(|_| Ok(())),
                    None => Ok(Err(service.not_found(&name, Some(&number)))),
                })
            })??;
            service.host().remove(&name, Some(&n.to_string())).await?;
        }
        None => {
            service.db(|s| {
                s.write(|tx| match tx.function(&name)? {
                    Some(_) => tx.delete_function(&name).map(|_| Ok(())),
                    None => Ok(Err(service.not_found(&name, None))),
                })
            })??;
            service.host().remove(&name, None).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Serves a stored archive (`GetFunction`'s `Code.Location`).
pub(super) async fn download_code(
    State(service): State<LambdaService>,
    Path(sha256): Path<String>,
) -> Response {
    let code = CodeRef { sha256, size: 0 };
    match service.store().read_code(&code) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/zip")], bytes).into_response(),
        Err(_) => {
            errors::not_found(format!("No code with SHA-256 {}", code.sha256)).into_response()
        }
    }
}
