//! The types of an invocation: what the caller asks ([`Invocation`]) and what it gets back
//! ([`InvokeResponse`] or an [`InvokeError`]).

use std::time::Duration;

use bytes::Bytes;

/// The largest synchronous payload (6 MB, as on AWS).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// The largest asynchronous (`Event`) payload (1 MB).
pub const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;

/// How an invocation runs (`X-Amz-Invocation-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvocationType {
    /// Run and wait for the result.
    #[default]
    RequestResponse,
    /// Queue and return at once.
    Event,
    /// Only check that the function exists and the request is valid.
    DryRun,
}

impl InvocationType {
    /// Parses `RequestResponse`, `Event` or `DryRun`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "RequestResponse" => Some(InvocationType::RequestResponse),
            "Event" => Some(InvocationType::Event),
            "DryRun" => Some(InvocationType::DryRun),
            _ => None,
        }
    }
}

/// One invocation request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// The event.
    pub payload: Bytes,
    /// How it runs.
    pub kind: InvocationType,
    /// A version (`3`) or `$LATEST`; `None` is the current version.
    pub qualifier: Option<String>,
    /// The request id to use (a Kubeless `event-id`); `None` makes one.
    pub request_id: Option<String>,
    /// The caller's client context as JSON text (decoded from `X-Amz-Client-Context` by
    /// [`decode_client_context`]), passed to the runtime as `Lambda-Runtime-Client-Context`.
    pub client_context: Option<String>,
    /// The Kubeless `event-type` for contract runtimes (default `application/json`).
    pub event_type: Option<String>,
    /// The Kubeless `event-time` for contract runtimes (default: now, RFC 3339).
    pub event_time: Option<String>,
    /// The Kubeless `event-namespace` for contract runtimes (default `hoist`).
    pub event_namespace: Option<String>,
    /// Return the last 4 KB of the invocation's log in [`InvokeResponse::log`]
    /// (`X-Amz-Log-Type: Tail`); `RequestResponse` only, ignored otherwise.
    pub tail_log: bool,
    /// The ARN the caller invoked (with its alias or version), given to the runtime as
    /// `Lambda-Runtime-Invoked-Function-Arn`; `None` is the function's own ARN.
    pub invoked_arn: Option<String>,
}

impl Invocation {
    /// A synchronous invocation with `payload`.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Invocation {
            payload: payload.into(),
            ..Invocation::default()
        }
    }
}

/// What became of an invocation the executor accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// It ran; `payload` is the result or, with `function_error`, the error document.
    Done,
    /// It was queued (`Event`).
    Accepted,
    /// It was only checked (`DryRun`).
    Checked,
}

/// The answer to an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResponse {
    /// The request id.
    pub request_id: String,
    /// The version that ran.
    pub version: u64,
    /// What became of it.
    pub completion: Completion,
    /// The result, or the error document when `function_error` is set.
    pub payload: Bytes,
    /// `Unhandled` when the function failed (it raised, timed out, crashed, or its
    /// environment could not start); the payload then says which (`errorType`).
    pub function_error: Option<String>,
    /// Whether a new environment was started for it.
    pub cold_start: bool,
    /// With [`Invocation::tail_log`]: the last 4 KB of its log (the output its environment
    /// wrote while it ran, between AWS's `START` and `END`/`REPORT` lines).
    pub log: Option<Bytes>,
}

/// Why an invocation was not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// No such function (or version).
    #[error("Function not found: {function}")]
    NotFound {
        /// The name (and qualifier) asked for.
        function: String,
    },
    /// A concurrency limit was reached.
    #[error("Rate Exceeded. ({reason})")]
    Throttled {
        /// Which limit; the Lambda front door names it in Lambda's words
        /// ([`lambda_throttle_reason`](crate::http::lambda_throttle_reason)).
        reason: hoist_core::scheduler::ThrottleReason,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The payload is larger than allowed (AWS's `RequestEntityTooLargeException`).
    #[error("Request must be smaller than {limit} bytes for the InvokeFunction operation")]
    PayloadTooLarge {
        /// Its size.
        size: usize,
        /// The limit for this invocation type.
        limit: usize,
    },
    /// The request's content is not what the API takes: a payload that is not JSON, a client
    /// context that is not base64 JSON (AWS's `InvalidRequestContentException`).
    #[error("{0}")]
    InvalidContent(String),
    /// The executor is shutting down or failed internally.
    #[error("the function executor could not run the invocation: {0}")]
    Service(#[source] hoist_core::Error),
}

/// The event of a Lambda invocation from the request body: no body is the event `{}` (as AWS
/// gives it), anything else must be JSON.
///
/// ```
/// use hoist_functions::invoke::{lambda_payload, InvokeError};
///
/// assert_eq!(lambda_payload("".into()).unwrap(), "{}");
/// assert_eq!(lambda_payload("[1]".into()).unwrap(), "[1]");
/// let Err(InvokeError::InvalidContent(message)) = lambda_payload("{oops".into()) else { panic!() };
/// assert!(message.starts_with("Could not parse request body into json: "));
/// ```
pub fn lambda_payload(body: Bytes) -> Result<Bytes, InvokeError> {
    if body.is_empty() {
        return Ok(Bytes::from_static(b"{}"));
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        Ok(_) => Ok(body),
        Err(e) => Err(InvokeError::InvalidContent(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        ))),
    }
}

/// The largest client context AWS takes, base64-encoded.
pub const MAX_CLIENT_CONTEXT: usize = 3583;

/// Decodes `X-Amz-Client-Context` (base64 of a JSON object) into the JSON text the runtime
/// gets.
///
/// ```
/// use hoist_functions::invoke::decode_client_context;
///
/// // base64 of {"custom":{"k":"v"}}
/// assert_eq!(decode_client_context("eyJjdXN0b20iOnsiayI6InYifX0=").unwrap(), r#"{"custom":{"k":"v"}}"#);
/// assert!(decode_client_context("not base64!").is_err());
/// ```
pub fn decode_client_context(header: &str) -> Result<String, InvokeError> {
    use base64::Engine as _;
    let invalid = || {
        InvokeError::InvalidContent(
            "Client context must be a valid Base64-encoded JSON object.".into(),
        )
    };
    if header.len() > MAX_CLIENT_CONTEXT {
        return Err(InvokeError::InvalidContent(format!(
            "Client context must be at most {MAX_CLIENT_CONTEXT} bytes once encoded, not {}.",
            header.len()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| invalid())?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(_)) => String::from_utf8(bytes).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// A process-wide source of distinct 64-bit values that differ between processes: a counter
/// mixed through a bijection with a per-process random key. On every invocation's path, so it
/// allocates nothing.
fn unique_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (k1, k2) = *KEY.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        let mut h = state.build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let a = h.finish();
        h.write_u32(std::process::id());
        (a, h.finish())
    });
    // splitmix64's finaliser: a bijection on u64, so distinct counters give distinct ids.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (u128::from(mix(n ^ k1)) << 64) | u128::from(mix(n.wrapping_add(k2)))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `digits` hex digits of `bits`, appended to `out`.
fn push_hex(out: &mut String, bits: u128, digits: usize) {
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((bits >> (4 * i)) & 0xf) as usize]));
    }
}

/// A fresh request id in the UUID layout (version 4 bits set), distinct within the process.
pub(crate) fn new_request_id() -> String {
    let raw = unique_u128();
    let bits = (raw & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let mut text = String::with_capacity(36);
    for (i, digits) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            text.push('-');
        }
        let shift = [96, 80, 64, 48, 0][i];
        push_hex(&mut text, bits >> shift, digits);
    }
    text
}

/// A fresh X-Ray trace header as Lambda gives it to a runtime (`Lambda-Runtime-Trace-Id`, and
/// from there `_X_AMZN_TRACE_ID`): `Root=1-<8 hex: epoch seconds>-<24 hex>;Parent=<16
/// hex>;Sampled=0`.
pub(crate) fn new_trace_id() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (root, parent) = (unique_u128(), unique_u128());
    let mut text = String::with_capacity(72);
    text.push_str("Root=1-");
    push_hex(&mut text, u128::from(seconds), 8);
    text.push('-');
    push_hex(&mut text, root, 24);
    text.push_str(";Parent=");
    push_hex(&mut text, parent, 16);
    text.push_str(";Sampled=0");
    text
}

/// `n` fresh random-looking hex digits (at most 32), distinct within the process.
pub(crate) fn new_hex(n: usize) -> String {
    let mut text = String::with_capacity(n);
    push_hex(&mut text, unique_u128(), n.min(32));
    text
}

/// `time` as RFC 3339 in UTC, to the second (`2026-11-22T18:50:00Z`).
pub(crate) fn rfc3339(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day, hour, minute, second) = hoist_core::units::utc_parts(secs);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(super::rfc3339(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn trace_ids_have_lambdas_layout() {
        let trace = super::new_trace_id();
        let (root, rest) = trace.split_once(";Parent=").unwrap();
        let (parent, sampled) = rest.split_once(';').unwrap();
        let root: Vec<&str> = root.strip_prefix("Root=").unwrap().split('-').collect();
        assert_eq!(root[0], "1", "{trace}");
        assert_eq!(
            (root[1].len(), root[2].len(), parent.len()),
            (8, 24, 16),
            "{trace}"
        );
        let hex = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        };
        assert!(hex(root[1]) && hex(root[2]) && hex(parent), "{trace}");
        assert_eq!(sampled, "Sampled=0");
        assert_ne!(super::new_trace_id(), trace);
        assert_eq!(super::new_hex(32).len(), 32);
    }

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(&a[14..15], "4", "version 4: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant: {a}");
        let many: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::new_request_id()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
