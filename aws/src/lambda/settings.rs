//! Concurrency, account settings and tags: `PutFunctionConcurrency`,
//! `GetFunctionConcurrency`, `DeleteFunctionConcurrency`, `GetAccountSettings`,
//! `TagResource`, `UntagResource`, `ListTags`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::input::Members;
use super::names::parse_target;
use super::{LambdaService, errors, validate};
use crate::protocol::{AwsError, json_response, query_pairs};

/// The sum of every function's reservation, and the code the account stores.
fn usage(service: &LambdaService) -> Result<(u64, u64, u64), AwsError> {
    service.db(|s| {
        s.read(|tx| {
            let functions = tx.functions(None, usize::MAX)?;
            let reserved = functions
                .iter()
                .filter_map(|f| f.reserved_concurrency)
                .map(u64::from)
                .sum();
            let mut code = 0;
            for f in &functions {
                code += f.code.as_ref().map_or(0, |c| c.size);
                code += tx
                    .versions(&f.name)?
                    .iter()
                    .filter_map(|v| v.code.as_ref())
                    .map(|c| c.size)
                    .sum::<u64>();
            }
            Ok((reserved, code, functions.len() as u64))
        })
    })
}

pub(super) async fn put_concurrency(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    body: Body,
) -> Result<Response, AwsError> {
    let mut input = Members::read(&service, body, "PutFunctionConcurrency").await?;
    let name = parse_target(&raw_name, None)?.name;
    let wanted = input
        .integer("ReservedConcurrentExecutions")?
        .ok_or_else(|| {
            errors::validation(
                "null",
                "reservedConcurrentExecutions",
                "Member must not be null",
            )
        })?;
    input.finish("PutFunctionConcurrency")?;
    validate::bounded(
        wanted,
        "reservedConcurrentExecutions",
        0,
        i64::from(u32::MAX),
    )?;
    let _guard = service.lock(&name).await;
    let mut function = service.function_record(&name)?;
    let limits = &service.config().limits;
    let (reserved, _, _) = usage(&service)?;
    let others = reserved - u64::from(function.reserved_concurrency.unwrap_or(0));
    let unreserved = u64::from(limits.concurrent_executions)
        .saturating_sub(others)
        .saturating_sub(wanted as u64);
    // The check and message as localstack `provider.py`, `put_function_concurrency`.
    if (unreserved as i64) < i64::from(limits.minimum_unreserved)
        || others + wanted as u64 > u64::from(limits.concurrent_executions)
    {
        return Err(errors::invalid_parameter(format!(
            "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{}].",
            limits.minimum_unreserved
        )));
    }
    let wanted = wanted as u32;
    service
        .host()
        .set_reserved_concurrency(&name, Some(wanted))
        .await?;
    function.reserved_concurrency = Some(wanted);
    service.db(|s| s.write(|tx| tx.update_function(&function)))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "ReservedConcurrentExecutions": wanted }),
    ))
}

pub(super) async fn get_concurrency(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
) -> Result<Response, AwsError> {
    let name = parse_target(&raw_name, None)?.name;
    let function = service.function_record(&name)?;
    let body = match function.reserved_concurrency {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, &body))
}

pub(super) async fn delete_concurrency(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
) -> Result<Response, AwsError> {
    let name = parse_target(&raw_name, None)?.name;
    let _guard = service.lock(&name).await;
    let mut function = service.function_record(&name)?;
    service.host().set_reserved_concurrency(&name, None).await?;
    function.reserved_concurrency = None;
    service.db(|s| s.write(|tx| tx.update_function(&function)))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GetAccountSettings`, computed as LocalStack does (`provider.py`, `get_account_settings`).
pub(super) async fn account(State(service): State<LambdaService>) -> Result<Response, AwsError> {
    let limits = &service.config().limits;
    let (reserved, code, count) = usage(&service)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": limits.total_code_size,
                "CodeSizeUnzipped": limits.code_size_unzipped,
                "CodeSizeZipped": limits.code_size_zipped,
                "ConcurrentExecutions": limits.concurrent_executions,
                "UnreservedConcurrentExecutions":
                    u64::from(limits.concurrent_executions).saturating_sub(reserved),
            },
            "AccountUsage": {"TotalCodeSize": code, "FunctionCount": count},
        }),
    ))
}

fn tagged(service: &LambdaService, resource: &str) -> Result<String, AwsError> {
    let name = service.arns().tagged_function(resource)?;
    service.function_record(&name)?;
    Ok(name)
}

pub(super) async fn list_tags(
    State(service): State<LambdaService>,
    Path(resource): Path<String>,
) -> Result<Response, AwsError> {
    let name = tagged(&service, &resource)?;
    let tags = service.db(|s| s.read(|tx| tx.tags(&name)))?;
    Ok(json_response(StatusCode::OK, &json!({ "Tags": tags })))
}

pub(super) async fn tag(
    State(service): State<LambdaService>,
    Path(resource): Path<String>,
    body: Body,
) -> Result<Response, AwsError> {
    let mut input = Members::read(&service, body, "TagResource").await?;
    let tags = input
        .string_map("Tags")?
        .ok_or_else(|| errors::validation("null", "tags", "Member must not be null"))?;
    input.finish("TagResource")?;
    for (key, value) in &tags {
        validate::max_len(key, "tags.key", 128)?;
        validate::max_len(value, "tags.value", 256)?;
    }
    let name = tagged(&service, &resource)?;
    let _guard = service.lock(&name).await;
    service.db(|s| s.write(|tx| tx.set_tags(&name, &tags)))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn untag(
    State(service): State<LambdaService>,
    Path(resource): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AwsError> {
    let keys: Vec<String> = query_pairs(raw.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    if keys.is_empty() {
        return Err(errors::validation(
            "null",
            "tagKeys",
            "Member must not be null",
        ));
    }
    let name = tagged(&service, &resource)?;
    let _guard = service.lock(&name).await;
    service.db(|s| s.write(|tx| tx.remove_tags(&name, &keys)))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
