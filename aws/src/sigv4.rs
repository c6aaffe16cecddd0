//! AWS Signature Version 4 on every request, against credentials the server is given (off
//! unless asked for, as LocalStack's endpoint checks no signature).
//!
//! What a signer computes, and so what [`require_signature`] recomputes (the AWS General
//! Reference, "Create a signed AWS API request"; botocore `auth.py`, `SigV4Auth`):
//! - the canonical request: the method, the path as sent, percent-encoded once more (botocore
//!   quotes the already-encoded path with `/~` safe), the query's pairs sorted and encoded,
//!   each signed header as `name:value` (lower-case name, value trimmed and inner spaces
//!   collapsed), the signed header names joined by `;`, and the payload's SHA-256 in hex (or
//!   `X-Amz-Content-Sha256` when the client sent one);
//! - the string to sign: `AWS4-HMAC-SHA256`, `X-Amz-Date`, the scope
//!   (`date/region/service/aws4_request`) and the canonical request's SHA-256, one per line;
//! - the key: HMAC-SHA256 chained over `AWS4` + secret, the date, the region, the service and
//!   `aws4_request`.
//!
//! A request the check refuses gets its service's error shape (the scope, or for an unsigned
//! request the request itself, says which protocol): JSON services answer
//! `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
//! `UnrecognizedClientException` (an unknown access key) or `InvalidSignatureException`; Query
//! services (EC2, ELBv2) the same without `Exception` and with `InvalidClientTokenId` and
//! `SignatureDoesNotMatch`, as their common errors are named.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::protocol::{AwsError, RequestId, query_pairs, utc_parts};
use crate::query::{EC2, ELBV2, Params, json11_error};

type HmacSha256 = Hmac<Sha256>;

/// How far a request's `X-Amz-Date` may be from the server's clock (AWS allows 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The credentials requests must be signed with: access key ids and their secrets. A secret
/// never appears in `Debug`.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Credentials")
            .field("access_key_ids", &ids)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Adds an access key id and its secret.
    pub fn with(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.keys.insert(access_key_id.into(), secret.into());
        self
    }

    /// Reads `ID:SECRET[,ID:SECRET...]` (the form of `HOIST_AWS_CREDENTIALS`). An entry without
    /// `:`, or with an empty id or secret, is refused naming its position, never its secret.
    pub fn parse(spec: &str) -> hoist_core::Result<Self> {
        let mut credentials = Credentials::default();
        for (i, entry) in spec.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            match entry.split_once(':') {
                Some((id, secret)) if !id.trim().is_empty() && !secret.is_empty() => {
                    credentials = credentials.with(id.trim(), secret);
                }
                _ => {
                    return Err(hoist_core::Error::invalid_field(
                        "HOIST_AWS_CREDENTIALS",
                        format!(
                            "entry {} is not ACCESS_KEY_ID:SECRET (entries are separated by commas)",
                            i + 1
                        ),
                    ));
                }
            }
        }
        if credentials.keys.is_empty() {
            return Err(hoist_core::Error::invalid_field(
                "HOIST_AWS_CREDENTIALS",
                "names no credentials: signatures cannot be checked against nothing",
            ));
        }
        Ok(credentials)
    }

    /// The access key with the smallest id and its secret (what a program can hand its
    /// functions so their calls back are signed with a key the check knows).
    pub fn first(&self) -> Option<(&str, &str)> {
        self.keys
            .iter()
            .min_by_key(|(id, _)| id.as_str())
            .map(|(id, secret)| (id.as_str(), secret.as_str()))
    }

    /// Whether `access_key_id` is one of them.
    pub fn contains(&self, access_key_id: &str) -> bool {
        self.keys.contains_key(access_key_id)
    }

    /// How many access keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The check [`require_signature`] makes: the credentials and the largest body it reads.
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    credentials: Arc<Credentials>,
    max_body: usize,
}

impl SignatureCheck {
    /// Checks against `credentials`, reading bodies of up to `max_body` bytes (the largest any
    /// route takes; a longer one is refused as too large).
    pub fn new(credentials: Credentials, max_body: usize) -> Self {
        SignatureCheck {
            credentials: Arc::new(credentials),
            max_body,
        }
    }
}

/// Which error envelope a refusal is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    RestJson,
    Json11,
    Ec2,
    Query,
}

impl Shape {
    /// From the signature's service, else from the request itself.
    fn of(service: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Shape {
        match service {
            Some("ec2") => return Shape::Ec2,
            Some("elasticloadbalancing") => return Shape::Query,
            Some("ecs") => return Shape::Json11,
            Some("lambda") => return Shape::RestJson,
            _ => {}
        }
        if headers.contains_key("x-amz-target") {
            return Shape::Json11;
        }
        let params = Params::parse(body);
        match params.get("Version") {
            Some("2015-12-01") => Shape::Query,
            Some(_) if params.get("Action").is_some() => Shape::Ec2,
            _ => Shape::RestJson,
        }
    }

    /// The refusal `kind` in this shape.
    fn refuse(self, kind: Refusal, message: String, id: &RequestId) -> Response {
        let query = matches!(self, Shape::Ec2 | Shape::Query);
        let (code, status) = match (kind, query) {
            (Refusal::Missing, false) => ("MissingAuthenticationTokenException", 403),
            (Refusal::Missing, true) => ("MissingAuthenticationToken", 403),
            (Refusal::Incomplete, false) => ("IncompleteSignatureException", 400),
            (Refusal::Incomplete, true) => ("IncompleteSignature", 400),
            (Refusal::UnknownKey, false) => ("UnrecognizedClientException", 403),
            (Refusal::UnknownKey, true) => ("InvalidClientTokenId", 403),
            (Refusal::Mismatch, false) => ("InvalidSignatureException", 403),
            (Refusal::Mismatch, true) => ("SignatureDoesNotMatch", 403),
            (Refusal::TooLarge, false) => ("RequestEntityTooLargeException", 413),
            (Refusal::TooLarge, true) => ("RequestEntityTooLarge", 413),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        let error = AwsError::new(code, status, message);
        match self {
            Shape::RestJson => error.into_response(),
            Shape::Json11 => json11_error(&error),
            Shape::Ec2 => EC2.error(&error, id),
            Shape::Query => ELBV2.error(&error, id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Incomplete,
    UnknownKey,
    Mismatch,
    TooLarge,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    /// `date/region/service/aws4_request`.
    scope: &'a str,
    date: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, String> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| "Authorization header requires the AWS4-HMAC-SHA256 algorithm".to_owned())?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let missing = |what: &str| format!("Authorization header requires '{what}' parameter.");
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let (access_key_id, scope) = credential
        .split_once('/')
        .ok_or_else(|| "Credential should be scoped to a valid region.".to_owned())?;
    let fields: Vec<&str> = scope.split('/').collect();
    let [date, _region, service, "aws4_request"] = fields.as_slice() else {
        return Err(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{scope}'."
        ));
    };
    Ok(Authorization {
        access_key_id,
        scope,
        date,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Percent-encodes `text` as SigV4 does: unreserved characters (and those in `safe`) as they
/// are, every other byte as `%XX` in upper case.
fn uri_encode(text: &str, safe: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let c = byte as char;
        if c.is_ascii_alphanumeric() || "-_.~".contains(c) || safe.contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The canonical query string: pairs decoded, re-encoded, sorted by name then value.
fn canonical_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .iter()
        .map(|(k, v)| (uri_encode(k, ""), uri_encode(v, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical path: `.` and `..` segments and doubled slashes resolved (botocore normalises
/// the path), then the path as sent encoded once more.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalised = format!("/{}", segments.join("/"));
    if path.ends_with('/') && normalised.len() > 1 {
        normalised.push('/');
    }
    uri_encode(&normalised, "/")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signature of `string_to_sign` with `secret` in `scope` (`date/region/service/...`).
fn signature(secret: &str, scope: &str, string_to_sign: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part);
    }
    hmac(&key, string_to_sign)
}

/// `now` as `X-Amz-Date` writes it (`20261203T194500Z`).
fn amz_date(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (y, mo, d, h, mi, s) = utc_parts(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// The request's canonical form over `signed` headers and the payload hash.
fn canonical_request(
    request: &axum::http::request::Parts,
    signed: &[&str],
    payload_hash: &str,
) -> Result<String, String> {
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("The signed header '{name}' is not in the request."));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.uri.path()),
        canonical_query(request.uri.query()),
        headers,
        signed.join(";"),
        payload_hash
    ))
}

/// Middleware (for `axum::middleware::from_fn_with_state`) that answers any request not
/// signed with Signature Version 4 by one of `check`'s credentials with its service's
/// refusal, and passes the others on with their body.
pub async fn require_signature(
    State(check): State<SignatureCheck>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let id = parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_default();
    let body = match axum::body::to_bytes(body, check.max_body).await {
        Ok(body) => body,
        Err(_) => {
            let shape = Shape::of(None, &parts.headers, &[]);
            return shape.refuse(
                Refusal::TooLarge,
                format!("Request must be smaller than {} bytes", check.max_body),
                &id,
            );
        }
    };
    let authorization = parts
        .headers
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(authorization) = authorization else {
        let shape = Shape::of(None, &parts.headers, &body);
        return shape.refuse(Refusal::Missing, "Missing Authentication Token".into(), &id);
    };
    let parsed = parse_authorization(&authorization);
    let service = parsed.as_ref().ok().map(|a| a.service);
    let shape = Shape::of(service, &parts.headers, &body);
    let auth = match parsed {
        Ok(auth) => auth,
        Err(message) => return shape.refuse(Refusal::Incomplete, message, &id),
    };
    let Some(secret) = check.credentials.keys.get(auth.access_key_id) else {
        return shape.refuse(
            Refusal::UnknownKey,
            "The security token included in the request is invalid.".into(),
            &id,
        );
    };
    let Some(date) = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
    else {
        return shape.refuse(
            Refusal::Incomplete,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
            &id,
        );
    };
    let now = SystemTime::now();
    let (earliest, latest) = (amz_date(now - MAX_SKEW), amz_date(now + MAX_SKEW));
    if date.len() != 16 || *date < *earliest.as_str() || *date > *latest.as_str() {
        return shape.refuse(
            Refusal::Mismatch,
            format!(
                "Signature expired: {date} is now earlier than {earliest} ({} - 15 min.)",
                amz_date(now)
            ),
            &id,
        );
    }
    if !date.starts_with(auth.date) {
        return shape.refuse(
            Refusal::Mismatch,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
                auth.date,
                &date[..8]
            ),
            &id,
        );
    }
    let payload_hash = match parts.headers.get("x-amz-content-sha256") {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => hex(&Sha256::digest(&body)),
    };
    let canonical = match canonical_request(&parts, &auth.signed_headers, &payload_hash) {
        Ok(canonical) => canonical,
        Err(message) => return shape.refuse(Refusal::Incomplete, message, &id),
    };
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        auth.scope,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let expected = signature(secret, auth.scope, &string_to_sign);
    let given: Option<Vec<u8>> = (auth.signature.len() == 64)
        .then(|| {
            (0..32)
                .map(|i| u8::from_str_radix(&auth.signature[2 * i..2 * i + 2], 16).ok())
                .collect()
        })
        .flatten();
    let matches = given.is_some_and(|given| {
        // Compared in constant time.
        given
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    });
    if !matches {
        return shape.refuse(
            Refusal::Mismatch,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
            &id,
        );
    }
    next.run(Request::from_parts(parts, Body::from(body)))
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_documentation_example_signs_as_published() {
        // The GET example of the AWS General Reference ("Examples of the complete Signature
        // Version 4 signing process"): IAM ListUsers with the example credentials.
        let request = axum::http::Request::builder()
            .method("GET")
            .uri("/?Action=ListUsers&Version=2010-05-08")
            .header("host", "iam.amazonaws.com")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header("x-amz-date", "20150830T123600Z")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let canonical = canonical_request(
            &parts,
            &["content-type", "host", "x-amz-date"],
            &hex(&Sha256::digest(b"")),
        )
        .unwrap();
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(
            hex(&signature(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20150830/us-east-1/iam/aws4_request",
                &string_to_sign
            )),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn authorization_headers_parse_or_say_what_is_missing() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(auth.access_key_id, "AKID");
        assert_eq!(auth.service, "lambda");
        assert_eq!(auth.date, "20261203");
        assert_eq!(auth.signed_headers, vec!["host", "x-amz-date"]);
        let err =
            parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/x/y/z/aws4_request").unwrap_err();
        assert!(err.contains("SignedHeaders"), "{err}");
        assert!(parse_authorization("Basic dXNlcjpwYXNz").is_err());
    }

    #[test]
    fn paths_and_queries_take_their_canonical_form() {
        assert_eq!(
            canonical_path("/2015-03-31/functions/arn%3Aaws%3Alambda/invocations"),
            "/2015-03-31/functions/arn%253Aaws%253Alambda/invocations"
        );
        assert_eq!(canonical_path("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(
            canonical_query(Some("b=2&a=x%20y&a=1&c")),
            "a=1&a=x%20y&b=2&c="
        );
    }

    #[test]
    fn credentials_parse_and_never_show_a_secret() {
        let credentials = Credentials::parse("AKID1:s3cret, AKID2:other").unwrap();
        assert_eq!(credentials.len(), 2);
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("AKID1") && !shown.contains("s3cret"),
            "{shown}"
        );
        let err = Credentials::parse("AKID1:s3cret,broken").unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(Credentials::parse(" , ").is_err());
    }
}
