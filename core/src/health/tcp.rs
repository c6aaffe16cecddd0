//! The TCP probe: healthy when the container's port accepts a connection.

use std::time::Duration;

use async_trait::async_trait;

use super::deadline::Deadline;
use super::dial::dial;
use super::{HealthChecker, ProbeOutcome, ProbeTarget};

/// Healthy when a TCP connection to the container's port is accepted; the connection is closed
/// at once.
#[derive(Debug, Clone)]
pub struct TcpChecker {
    port: u16,
}

impl TcpChecker {
    /// Probes `port` on the target's address (or on its namespace's loopback).
    pub fn new(port: u16) -> Self {
        TcpChecker { port }
    }
}

#[async_trait]
impl HealthChecker for TcpChecker {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        match dial(target, self.port, &Deadline::after(timeout)).await {
            Ok(_) => ProbeOutcome::Healthy,
            Err(reason) => ProbeOutcome::Unhealthy(reason),
        }
    }
}
