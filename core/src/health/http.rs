//! The HTTP(S) probe: a `GET` of the probe's path, healthy on an accepted status.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::deadline::Deadline;
use super::dial::{dial, place};
use super::{HealthChecker, HttpProbe, ProbeOutcome, ProbeTarget, Scheme, shorten};

/// The longest status line read before the answer is judged not to be HTTP.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// Healthy when an HTTP `GET` of the probe's path answers with an accepted status (by default
/// 200–399). Only the status line is read; the connection is then closed.
///
/// `https` probes skip certificate verification, as Mesos does: the probe asks whether the
/// server answers, not who it is. They need hoist-core's `https` feature (on in the `hoist`
/// crate's default features); without it an `https` probe is unhealthy with a reason saying so.
#[derive(Debug, Clone)]
pub struct HttpChecker {
    probe: HttpProbe,
}

impl HttpChecker {
    /// Probes with `probe`'s scheme, port, path and accepted statuses.
    pub fn new(probe: HttpProbe) -> Self {
        HttpChecker { probe }
    }

    /// The status the server answered, or why there is none.
    async fn status(&self, target: &ProbeTarget, deadline: &Deadline) -> Result<u16, String> {
        if self.probe.scheme == Scheme::Https && !cfg!(feature = "https") {
            return Err("unsupported: https probes need hoist-core's `https` feature".into());
        }
        let dialed = dial(target, self.probe.port, deadline).await?;
        let (_, place) = place(target, self.probe.port);
        let request = request(&self.probe, dialed.addr);
        match self.probe.scheme {
            Scheme::Http => {
                let mut stream = dialed.stream;
                exchange(&mut stream, &request, &place, deadline).await
            }
            #[cfg(feature = "https")]
            Scheme::Https => {
                let mut stream =
                    super::tls::handshake(dialed.stream, dialed.addr.ip(), &place, deadline)
                        .await?;
                exchange(&mut stream, &request, &place, deadline).await
            }
            #[cfg(not(feature = "https"))]
            Scheme::Https => unreachable!("refused above"),
        }
    }
}

#[async_trait]
impl HealthChecker for HttpChecker {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        match self.status(target, &Deadline::after(timeout)).await {
            Ok(status) if self.probe.accepts(status) => ProbeOutcome::Healthy,
            Ok(status) => ProbeOutcome::Unhealthy(format!(
                "GET {} answered HTTP {status}, expected {}",
                self.probe.path,
                accepted(&self.probe)
            )),
            Err(reason) => ProbeOutcome::Unhealthy(reason),
        }
    }
}

/// The request: `GET <path> HTTP/1.1` with a Host header naming the address connected to.
fn request(probe: &HttpProbe, addr: SocketAddr) -> Vec<u8> {
    let default_port = match probe.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let host = match (addr, addr.port() == default_port) {
        (SocketAddr::V4(v4), true) => v4.ip().to_string(),
        (SocketAddr::V6(v6), true) => format!("[{}]", v6.ip()),
        (addr, false) => addr.to_string(), // `[::1]:8080` for IPv6
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hoist-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        probe.path
    )
    .into_bytes()
}

/// Sends `request` and reads the status of the answer.
async fn exchange<S>(
    stream: &mut S,
    request: &[u8],
    place: &str,
    deadline: &Deadline,
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let send = async {
        stream.write_all(request).await?;
        stream.flush().await
    };
    deadline
        .run(|| format!("sending the request to {place}"), async {
            send.await
                .map_err(|e| format!("sending the request to {place} failed: {e}"))
        })
        .await?;
    let line = deadline
        .run(
            || format!("waiting for the answer of {place}"),
            read_status_line(stream, place),
        )
        .await?;
    parse_status_line(&line).map_err(|e| format!("{place} answered {e}"))
}

/// Reads up to the end of the first line (or EOF, or [`MAX_STATUS_LINE`] bytes).
async fn read_status_line<S: AsyncRead + Unpin>(
    stream: &mut S,
    place: &str,
) -> Result<Vec<u8>, String> {
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the answer of {place} failed: {e}"))?;
        if n == 0 {
            if line.is_empty() {
                return Err(format!("{place} closed the connection without answering"));
            }
            return Ok(line);
        }
        let chunk = &buf[..n];
        if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..end]);
            return Ok(line);
        }
        line.extend_from_slice(chunk);
        if line.len() >= MAX_STATUS_LINE {
            return Ok(line);
        }
    }
}

/// The status code of an HTTP/1 status line (`HTTP/1.1 200 OK`).
fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if version.starts_with("HTTP/1.")
        && code.len() == 3
        && let Ok(status @ 100..=999) = code.parse::<u16>()
    {
        return Ok(status);
    }
    Err(format!(
        "something that is not HTTP: {:?}",
        shorten(text, 64)
    ))
}

/// How the accepted statuses read in a reason.
fn accepted(probe: &HttpProbe) -> String {
    if probe.statuses.is_empty() {
        "200-399".into()
    } else {
        let list: Vec<String> = probe.statuses.iter().map(u16::to_string).collect();
        list.join(" or ")
    }
}
