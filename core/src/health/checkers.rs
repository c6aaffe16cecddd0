//! The probes that ship in core: HTTP, TCP and command.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CommandProbe, HealthChecker, HttpProbe, Probe, ProbeOutcome, ProbeTarget, Scheme};

/// The checker for a probe spec.
pub fn checker_for(probe: &Probe) -> Arc<dyn HealthChecker> {
    match probe {
        Probe::Http(http) => Arc::new(HttpChecker::new(http.clone())),
        Probe::Tcp(tcp) => Arc::new(TcpChecker::new(tcp.port)),
        Probe::Command(cmd) => Arc::new(CommandChecker::new(cmd.clone())),
    }
}

/// Healthy when a TCP connection to the container's port is accepted.
#[derive(Debug, Clone)]
pub struct TcpChecker {
    port: u16,
}

impl TcpChecker {
    /// Probes `port` on the target's address.
    pub fn new(port: u16) -> Self {
        TcpChecker { port }
    }
}

#[async_trait]
impl HealthChecker for TcpChecker {
    async fn check(&self, target: &ProbeTarget, _timeout: Duration) -> ProbeOutcome {
        let addr = SocketAddr::new(target.address, self.port);
        match TcpStream::connect(addr).await {
            Ok(_) => ProbeOutcome::Healthy,
            Err(e) => ProbeOutcome::Unhealthy(format!("TCP connect to {addr} failed: {e}")),
        }
    }
}

/// Healthy when an HTTP GET answers with an accepted status.
#[derive(Debug, Clone)]
pub struct HttpChecker {
    probe: HttpProbe,
}

impl HttpChecker {
    /// Probes with `probe`'s port, path and accepted statuses.
    pub fn new(probe: HttpProbe) -> Self {
        HttpChecker { probe }
    }

    async fn get(&self, addr: SocketAddr) -> Result<u16, String> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr} failed: {e}"))?;
        let host = match addr {
            SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
            SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hoist-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.probe.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request to {addr} failed: {e}"))?;
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the response from {addr} failed: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or_default();
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next().map(str::parse::<u16>)) {
            (Some(version), Some(Ok(status))) if version.starts_with("HTTP/") => Ok(status),
            _ => Err(format!(
                "{addr} answered with something that is not HTTP: {line:?}"
            )),
        }
    }
}

#[async_trait]
impl HealthChecker for HttpChecker {
    async fn check(&self, target: &ProbeTarget, _timeout: Duration) -> ProbeOutcome {
        if self.probe.scheme == Scheme::Https {
            return ProbeOutcome::Unhealthy("https probes are not supported yet".into());
        }
        let addr = SocketAddr::new(target.address, self.probe.port);
        match self.get(addr).await {
            Ok(status) if self.probe.accepts(status) => ProbeOutcome::Healthy,
            Ok(status) => {
                ProbeOutcome::Unhealthy(format!("GET {} answered HTTP {status}", self.probe.path))
            }
            Err(e) => ProbeOutcome::Unhealthy(e),
        }
    }
}

/// Healthy when a command run inside the container exits 0.
#[derive(Debug, Clone)]
pub struct CommandChecker {
    probe: CommandProbe,
}

impl CommandChecker {
    /// Runs `probe`'s command through the target's containerizer.
    pub fn new(probe: CommandProbe) -> Self {
        CommandChecker { probe }
    }
}

#[async_trait]
impl HealthChecker for CommandChecker {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        let argv = self.probe.argv();
        let timeout = if timeout.is_zero() {
            Duration::from_secs(24 * 3600)
        } else {
            timeout
        };
        match target
            .containerizer
            .exec(&target.container_id, &argv, timeout)
            .await
        {
            Ok(out) if out.success() => ProbeOutcome::Healthy,
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let stderr = stderr.trim();
                let code = out
                    .exit_code
                    .map_or("a signal".to_owned(), |c| format!("code {c}"));
                if stderr.is_empty() {
                    ProbeOutcome::Unhealthy(format!("command exited with {code}"))
                } else {
                    ProbeOutcome::Unhealthy(format!("command exited with {code}: {stderr}"))
                }
            }
            Err(e) => ProbeOutcome::Unhealthy(format!("command could not run: {e}")),
        }
    }
}
