//! The health monitor: runs a checker on a schedule and applies Mesos's policy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{HealthCheck, HealthChecker, ProbeOutcome, ProbeTarget};

/// A change the monitor reports. It reports changes only: the first success, a success after
/// failures, the first counted failure after a success, and the final failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The task turned healthy.
    Healthy,
    /// The task turned unhealthy; `consecutive` failures have been counted so far.
    Unhealthy {
        /// Why the last probe failed.
        reason: String,
        /// Counted failures in a row.
        consecutive: u32,
    },
    /// The failure threshold was reached outside the grace period: the task must be killed.
    /// The monitor stops after sending this.
    Failed {
        /// Why the last probe failed.
        reason: String,
        /// Counted failures in a row (the threshold).
        consecutive: u32,
    },
}

/// Applies a [`HealthCheck`]'s policy to one target.
///
/// ```
/// # use std::{net::Ipv4Addr, sync::Arc, time::Duration};
/// # use hoist_core::health::{HealthCheck, HealthEvent, HealthMonitor, Probe, TcpProbe, TcpChecker, ProbeTarget};
/// # use tokio_util::sync::CancellationToken;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let containerizer: Arc<dyn hoist_core::Containerizer> = Arc::new(hoist_core::testing::FakeContainerizer::new());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let port = listener.local_addr().unwrap().port();
/// let mut check = HealthCheck::new(Probe::Tcp(TcpProbe { port }));
/// check.delay = Duration::ZERO;
/// let target = ProbeTarget {
///     container_id: "c1".into(),
///     containerizer,
///     address: Ipv4Addr::LOCALHOST.into(),
///     netns: None,
/// };
/// let cancel = CancellationToken::new();
/// let mut events = HealthMonitor::new(check, Arc::new(TcpChecker::new(port)), target).spawn(cancel.clone());
/// assert_eq!(events.recv().await, Some(HealthEvent::Healthy));
/// cancel.cancel();
/// # }
/// ```
#[derive(Debug)]
pub struct HealthMonitor {
    check: HealthCheck,
    checker: Arc<dyn HealthChecker>,
    target: ProbeTarget,
}

impl HealthMonitor {
    /// A monitor applying `check`'s policy with `checker` to `target`.
    pub fn new(check: HealthCheck, checker: Arc<dyn HealthChecker>, target: ProbeTarget) -> Self {
        HealthMonitor {
            check,
            checker,
            target,
        }
    }

    /// Runs the monitor on its own tokio task until `cancel` fires or the task fails; events
    /// arrive on the returned receiver, which closes when the monitor ends.
    pub fn spawn(self, cancel: CancellationToken) -> mpsc::Receiver<HealthEvent> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            cancel.run_until_cancelled(self.run(tx)).await;
        });
        rx
    }

    /// Runs the monitor in the current task, sending events to `events`, until the task fails
    /// or the receiver is dropped. Cancel it by dropping the future.
    pub async fn run(self, events: mpsc::Sender<HealthEvent>) {
        let policy = &self.check;
        let started = Instant::now();
        let grace_ends = started + policy.grace_period;
        let mut in_grace = true;
        let mut consecutive = 0u32;
        let mut last_reported: Option<bool> = None;

        tokio::time::sleep(policy.delay).await;
        loop {
            let outcome = self.probe_once().await;
            let event = match outcome {
                ProbeOutcome::Healthy => {
                    in_grace = false;
                    consecutive = 0;
                    (last_reported != Some(true)).then_some(HealthEvent::Healthy)
                }
                ProbeOutcome::Unhealthy(reason) => {
                    if in_grace && Instant::now() < grace_ends {
                        tracing::debug!(container = %self.target.container_id, %reason, "health probe failed inside the grace period");
                        None
                    } else {
                        in_grace = false;
                        consecutive += 1;
                        if consecutive >= policy.consecutive_failures {
                            let _ = events
                                .send(HealthEvent::Failed {
                                    reason,
                                    consecutive,
                                })
                                .await;
                            return;
                        }
                        (last_reported != Some(false)).then_some(HealthEvent::Unhealthy {
                            reason,
                            consecutive,
                        })
                    }
                }
            };
            if let Some(event) = event {
                last_reported = Some(matches!(event, HealthEvent::Healthy));
                if events.send(event).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(policy.interval).await;
        }
    }

    async fn probe_once(&self) -> ProbeOutcome {
        let timeout = self.check.timeout;
        let probe = self.checker.check(&self.target, timeout);
        if timeout.is_zero() {
            return probe.await;
        }
        match tokio::time::timeout(timeout, probe).await {
            Ok(outcome) => outcome,
            Err(_) => {
                ProbeOutcome::Unhealthy(format!("probe timed out after {}", fmt_duration(timeout)))
            }
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
