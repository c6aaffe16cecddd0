//! `Invoke`: the request checked and resolved to a version here, then run by the host.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hoist_store::State as FnState;

use super::functions::query;
use super::names::{Qualifier, Target, parse_target};
use super::versions::pick_version;
use super::{InvocationType, InvokeRequest, LambdaService, errors};
use crate::protocol::{AwsError, RequestId, read_body};

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) async fn invoke(
    State(service): State<LambdaService>,
    Path(raw_name): Path<String>,
    RawQuery(raw): RawQuery,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AwsError> {
    run(service, raw_name, raw, request_id, headers, body).await
}

async fn run(
    service: LambdaService,
    raw_name: String,
    raw: Option<String>,
    request_id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AwsError> {
    // AWS names the operation InvokeFunction in this message (peers: "Request must be smaller
    // than 6291456 bytes for the InvokeFunction operation").
    let payload = read_body(body, service.config().limits.payload_size, "InvokeFunction").await?;
    let invocation_type = match header_text(&headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(errors::validation(
                other,
                "invocationType",
                "Member must satisfy enum value set: [RequestResponse, Event, DryRun]",
            ));
        }
    };
    let tail_log = match header_text(&headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(errors::validation(
                other,
                "logType",
                "Member must satisfy enum value set: [None, Tail]",
            ));
        }
    };
    let client_context = header_text(&headers, "x-amz-client-context")
        .map(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|json| serde_json::from_str::<serde_json::Value>(json).is_ok())
                .ok_or_else(|| {
                    errors::invalid_parameter(
                        "Client context must be a valid Base64-encoded JSON object.",
                    )
                })
        })
        .transpose()?;
    // No payload is the event `{}`; anything else must be JSON (AWS's 400
    // InvalidRequestContentException, for Event too).
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        bytes::Bytes::from_static(b"{}")
    } else {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return Err(errors::error(
                "InvalidRequestContentException",
                format!(
                    "Could not parse request body into json: Could not parse payload into json: {e}"
                ),
            ));
        }
        payload
    };
    let target = parse_target(&raw_name, query(&raw, "Qualifier").as_deref())?;
    let (version, state) = route(&service, &target)?;
    if state != FnState::Active {
        // As localstack `lambda_service.py` answers an invocation of a version not Active.
        return Err(errors::conflict(format!(
            "The operation cannot be performed at this time. The function is currently in the following state: {}",
            state.as_str()
        )));
    }
    let name = target.name;
    let invoked_arn = match &target.qualifier {
        None => service.arns().function(&name),
        Some(Qualifier::Latest) => service.arns().qualified(&name, "$LATEST"),
        Some(Qualifier::Version(n)) => service.arns().qualified(&name, &n.to_string()),
        Some(Qualifier::Alias(alias)) => service.arns().qualified(&name, alias),
    };
    let output = service
        .host()
        .invoke(InvokeRequest {
            request_id,
            function: name,
            version: version.clone(),
            invoked_arn,
            payload,
            invocation_type,
            tail_log,
            client_context,
        })
        .await?;
    let status = match invocation_type {
        InvocationType::RequestResponse => StatusCode::OK,
        InvocationType::Event => StatusCode::ACCEPTED,
        InvocationType::DryRun => StatusCode::NO_CONTENT,
    };
    let mut response = (status, output.payload).into_response();
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if invocation_type != InvocationType::Event
        && let Ok(value) = HeaderValue::from_str(&version)
    {
        out.insert(HeaderName::from_static("x-amz-executed-version"), value);
    }
    if let Some(error) = output.function_error
        && let Ok(value) = HeaderValue::from_str(&error)
    {
        out.insert(HeaderName::from_static("x-amz-function-error"), value);
    }
    if let Some(tail) = output.log_tail
        && tail_log
        && let Ok(value) =
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(&tail))
    {
        out.insert(HeaderName::from_static("x-amz-log-result"), value);
    }
    Ok(response)
}

/// The version an invocation of `target` runs, and its state: read from the store's state
/// columns in one transaction, without reading configurations (this is on every invocation's
/// path).
fn route(service: &LambdaService, target: &Target) -> Result<(String, FnState), AwsError> {
    let name = target.name.as_str();
    let found = service.db(|s| {
        s.read(|tx| {
            let Some(latest) = tx.function_state(name)? else {
                return Ok(Err(None));
            };
            let version = match &target.qualifier {
                None | Some(Qualifier::Latest) => return Ok(Ok(("$LATEST".to_owned(), latest))),
                Some(Qualifier::Version(n)) => n.to_string(),
                Some(Qualifier::Alias(alias)) => match tx.alias(name, alias)? {
                    Some(record) => pick_version(&record.configuration),
                    None => return Ok(Err(Some(alias.clone()))),
                },
            };
            if version == "$LATEST" {
                return Ok(Ok((version, latest)));
            }
            let state = match version.parse::<u64>() {
                Ok(n) => tx.version_state(name, n)?,
                Err(_) => None,
            };
            Ok(state
                .map(|state| (version.clone(), state))
                .ok_or(Some(version)))
        })
    })?;
    found.map_err(|missing| service.not_found(name, missing.as_deref()))
}
