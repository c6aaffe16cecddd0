//! Shared helpers of the integration tests: an HTTP client, paths, metrics checks.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A response: status, content type, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, as lossy UTF-8.
    pub body: String,
    /// The body's bytes.
    pub bytes: Bytes,
}

impl Reply {
    /// The value of header `name` (lower case), if there is one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a request, for at most `timeout`.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Reply {
    request(method, url, headers, body.as_bytes().to_vec(), timeout).await
}

/// Sends a request with a body of any bytes, for at most `timeout`.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .unwrap_or_else(|_| panic!("{method} {url} did not answer within {timeout:?}"))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let bytes = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("the body of {method} {url} did not end within {timeout:?}"))
        .unwrap()
        .to_bytes();
    Reply {
        status,
        content_type,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// `GET url`, for at most 10 s.
pub async fn get(url: &str) -> Reply {
    send("GET", url, &[], "", Duration::from_secs(10)).await
}

/// The repository's `examples/functions/` folder.
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/functions")
}

/// The crate's `shims/` folder.
pub fn shims() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shims")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Parses Prometheus (OpenMetrics) text, failing on a malformed line, and returns the samples
/// as (name with labels, value).
pub fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            assert!(
                line.is_empty()
                    || line == "# EOF"
                    || line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line.starts_with("# UNIT "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
            for pair in series[name_end + 1..series.len() - 1].split(',') {
                let (key, quoted) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(
                    !key.is_empty() && quoted.starts_with('"') && quoted.ends_with('"'),
                    "bad label: {line}"
                );
            }
        }
        samples.push((series.to_owned(), value));
    }
    samples
}

/// The value of `series` (exact name and labels) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    parse_metrics(text)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
}
pub mod deploy;
pub mod prometheus;
pub mod proxied;

/// A `multipart/form-data` body with `boundary`: fields `(name, None, value)` and files
/// `(name, Some(filename), content)`.
pub fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// The headers `kubeless function call --data <json>` sends (kubeless/kubeless
/// `cmd/kubeless/function/call.go`): the content and event types, an 11-character event id,
/// an RFC 3339 UTC time and the CLI's namespace.
pub const KUBELESS_CALL_HEADERS: [(&str, &str); 5] = [
    ("content-type", "application/json"),
    ("event-type", "application/json"),
    ("event-id", "Xk3nQ9pLm2a"),
    ("event-time", "2026-11-22T18:00:00Z"),
    ("event-namespace", "cli.kubeless.io"),
];

/// The `Accept` header of Prometheus's scraper.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Sends a request without headers on a task of its own.
pub fn spawn_send(
    method: &'static str,
    url: String,
    body: String,
    timeout: Duration,
) -> tokio::task::JoinHandle<Reply> {
    tokio::spawn(async move { send(method, &url, &[], &body, timeout).await })
}

/// Writes `source` as `file` in a new folder.
pub fn function_dir(file: &str, source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), source).unwrap();
    dir
}

/// `kubeless function call <name> --data '{"it-s": "alive"}'`, as the post verify targets of
/// Kubeless's runtimes make it.
pub async fn kubeless_call(url: &str) -> Reply {
    send(
        "POST",
        url,
        &KUBELESS_CALL_HEADERS,
        r#"{"it-s": "alive"}"#,
        Duration::from_secs(10),
    )
    .await
}
