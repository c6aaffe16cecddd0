//! The health monitor: runs a checker on a schedule and applies Mesos's policy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::deadline::fmt_duration;
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

    /// Runs the monitor on its own tokio task until `cancel` fires, the task fails or the
    /// receiver is dropped; events arrive on the returned receiver, which closes when the
    /// monitor ends. Cancelling drops the probe in flight at once.
    pub fn spawn(self, cancel: CancellationToken) -> mpsc::Receiver<HealthEvent> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            cancel.run_until_cancelled(self.run(tx)).await;
        });
        rx
    }

    /// Runs the monitor in the current task, sending events to `events`, until the task fails
    /// or the receiver is dropped. Cancel it by dropping the future.
    ///
    /// The first probe starts `delay` after the call; each later one `interval` after the end of
    /// the previous one. A probe that runs past `timeout` is a failure.
    pub async fn run(self, events: mpsc::Sender<HealthEvent>) {
        let mut policy = Policy::new(&self.check, Instant::now());
        if !pause(self.check.delay, &events).await {
            return;
        }
        loop {
            let outcome = tokio::select! {
                outcome = self.probe_once() => outcome,
                () = events.closed() => return,
            };
            if let ProbeOutcome::Unhealthy(reason) = &outcome {
                tracing::debug!(container = %self.target.container_id, %reason, "health probe failed");
            }
            if let Some(event) = policy.observe(outcome, Instant::now()) {
                let last = matches!(event, HealthEvent::Failed { .. });
                if events.send(event).await.is_err() || last {
                    return;
                }
            }
            if !pause(self.check.interval, &events).await {
                return;
            }
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
            Err(_) => ProbeOutcome::Unhealthy(format!(
                "the probe timed out after {}",
                fmt_duration(timeout)
            )),
        }
    }
}

/// Sleeps `duration`; false when the receiver went away meanwhile (the monitor should end).
async fn pause(duration: Duration, events: &mpsc::Sender<HealthEvent>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = events.closed() => false,
    }
}

/// Mesos's health policy, fed one probe outcome at a time.
#[derive(Debug)]
struct Policy {
    /// When the grace period ends, until the first success ends it; `None` once over.
    grace_until: Option<Grace>,
    threshold: u32,
    consecutive: u32,
    reported: Reported,
}

#[derive(Debug, Clone, Copy)]
enum Grace {
    Until(Instant),
    /// A grace period too long to represent as an instant: it ends only at a success.
    UntilFirstSuccess,
}

/// The last health the monitor reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    Nothing,
    Healthy,
    Unhealthy,
}

impl Policy {
    /// The policy of `check` for a monitor started at `started` (the grace period includes the
    /// delay, so it counts from here).
    fn new(check: &HealthCheck, started: Instant) -> Self {
        let grace = match started.checked_add(check.grace_period) {
            Some(end) => Grace::Until(end),
            None => Grace::UntilFirstSuccess,
        };
        Policy {
            grace_until: Some(grace),
            threshold: check.consecutive_failures.max(1),
            consecutive: 0,
            reported: Reported::Nothing,
        }
    }

    /// Takes the outcome of a probe that ended at `now`; returns the event to report, if the
    /// health changed. After [`HealthEvent::Failed`] the monitor stops.
    fn observe(&mut self, outcome: ProbeOutcome, now: Instant) -> Option<HealthEvent> {
        match outcome {
            ProbeOutcome::Healthy => {
                self.grace_until = None;
                self.consecutive = 0;
                self.report(Reported::Healthy)
                    .then_some(HealthEvent::Healthy)
            }
            ProbeOutcome::Unhealthy(reason) => {
                let in_grace = match self.grace_until {
                    Some(Grace::Until(end)) => now <= end,
                    Some(Grace::UntilFirstSuccess) => true,
                    None => false,
                };
                if in_grace {
                    return None;
                }
                self.grace_until = None;
                self.consecutive += 1;
                let consecutive = self.consecutive;
                if consecutive >= self.threshold {
                    self.reported = Reported::Unhealthy;
                    return Some(HealthEvent::Failed {
                        reason,
                        consecutive,
                    });
                }
                self.report(Reported::Unhealthy)
                    .then_some(HealthEvent::Unhealthy {
                        reason,
                        consecutive,
                    })
            }
        }
    }

    /// Records `health` as reported; true when it differs from what was reported last.
    fn report(&mut self, health: Reported) -> bool {
        std::mem::replace(&mut self.reported, health) != health
    }
}
