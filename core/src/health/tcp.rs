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

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use tokio::net::TcpListener;

    use super::*;
    use crate::health::test_target;

    #[tokio::test]
    async fn an_accepted_connection_is_healthy_on_ipv4_and_ipv6() {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let listener = TcpListener::bind((ip, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let outcome = TcpChecker::new(port)
                .check(&test_target(ip, None), Duration::from_secs(5))
                .await;
            assert_eq!(outcome, ProbeOutcome::Healthy, "{ip}");
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), ip);
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_unhealthy() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ProbeOutcome::Unhealthy(reason) = TcpChecker::new(port)
            .check(&test_target(ip, None), Duration::from_secs(5))
            .await
        else {
            panic!("a closed port was healthy");
        };
        assert!(
            reason.starts_with(&format!("connecting to 127.0.0.1:{port} failed: ")),
            "{reason}"
        );
    }
}
