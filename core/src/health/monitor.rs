//! The health monitor: runs a checker on a schedule and applies Mesos's policy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{HealthCheck, HealthChecker, ProbeOutcome, ProbeTarget};

/// A change the monitor reports. It reports changes only: the first success, a success after
/// failures, the first counted failure after a success (or before any), and the final failure.
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
/// # use tokio_util::{sync::CancellationToken, task::TaskTracker};
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
/// let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
/// let monitor = HealthMonitor::new(check, Arc::new(TcpChecker::new(port)), target);
/// let mut events = monitor.spawn(&tracker, cancel.clone());
/// assert_eq!(events.recv().await, Some(HealthEvent::Healthy));
/// cancel.cancel();
/// tracker.close();
/// tracker.wait().await;
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

    /// Runs the monitor on a tokio task of `tracker` until `cancel` fires, the task fails or
    /// the receiver is dropped; events arrive on the returned receiver, which closes when the
    /// monitor ends. Cancelling drops the probe in flight at once.
    pub fn spawn(
        self,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<HealthEvent> {
        let (tx, rx) = mpsc::channel(4);
        tracker.spawn(async move {
            cancel.run_until_cancelled(self.run(tx)).await;
        });
        rx
    }

    /// Runs the monitor in the current task, sending events to `events`, until the task fails
    /// or the receiver is dropped (noticed between probes). Cancel it by dropping the future.
    ///
    /// The first probe starts `delay` after the call; each later one `interval` after the end of
    /// the previous one. A probe that runs past `timeout` is a failure.
    pub async fn run(self, events: mpsc::Sender<HealthEvent>) {
        let mut policy = Policy::new(&self.check, Instant::now());
        if !pause(self.check.delay, &events).await {
            return;
        }
        loop {
            let outcome = self.probe_once().await;
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

    /// One probe; the checker keeps the check's timeout (see [`HealthChecker::check`]).
    async fn probe_once(&self) -> ProbeOutcome {
        self.checker.check(&self.target, self.check.timeout).await
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
    /// When the grace period ends (its last instant included, as in Mesos), until the first
    /// success ends it; `None` once over, or from the start for a zero grace period.
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
            _ if check.grace_period.is_zero() => None,
            Some(end) => Some(Grace::Until(end)),
            None => Some(Grace::UntilFirstSuccess),
        };
        Policy {
            grace_until: grace,
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

/// Every timing rule, on tokio's paused clock, with a checker that plays a script.
#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::health::{Probe, ProbeTimeoutLayer, TcpProbe, test_target};
    use crate::layer::Layer;

    /// One scripted probe.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Pass,
        Fail,
        /// Passes after this long.
        SlowPass(Duration),
        /// Never ends.
        Hang,
    }
    use Step::*;

    /// Plays its steps in order (then hangs), recording when each probe started and whether a
    /// hanging probe was dropped.
    #[derive(Debug, Default)]
    struct Scripted {
        steps: Mutex<VecDeque<Step>>,
        started: Mutex<Vec<Instant>>,
        dropped: Arc<AtomicBool>,
    }

    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl HealthChecker for Scripted {
        async fn check(&self, _: &ProbeTarget, _: Duration) -> ProbeOutcome {
            self.started.lock().unwrap().push(Instant::now());
            let step = self.steps.lock().unwrap().pop_front().unwrap_or(Hang);
            match step {
                Pass => ProbeOutcome::Healthy,
                Fail => ProbeOutcome::Unhealthy("scripted failure".into()),
                SlowPass(d) => {
                    tokio::time::sleep(d).await;
                    ProbeOutcome::Healthy
                }
                Hang => {
                    let _flag = DropFlag(self.dropped.clone());
                    std::future::pending().await
                }
            }
        }
    }

    impl Scripted {
        /// When each probe started, in seconds since `t0`.
        fn starts(&self, t0: Instant) -> Vec<f64> {
            self.started
                .lock()
                .unwrap()
                .iter()
                .map(|t| (*t - t0).as_secs_f64())
                .collect()
        }
    }

    /// A running monitor, its event receiver, its script and when it started.
    struct Run {
        events: mpsc::Receiver<HealthEvent>,
        script: Arc<Scripted>,
        cancel: CancellationToken,
        t0: Instant,
    }

    impl Run {
        /// The next event and when it arrived (seconds since the start), or `None` when the
        /// monitor ended.
        async fn next(&mut self) -> Option<(f64, HealthEvent)> {
            let event = self.events.recv().await?;
            Some(((Instant::now() - self.t0).as_secs_f64(), event))
        }

        /// Asserts that nothing is reported within `within` (of paused time).
        async fn quiet_for(&mut self, within: Duration) {
            let next = tokio::time::timeout(within, self.events.recv()).await;
            assert!(next.is_err(), "expected no event, got {next:?}");
        }
    }

    fn check() -> HealthCheck {
        HealthCheck::new(Probe::Tcp(TcpProbe { port: 1 }))
    }

    fn start(check: HealthCheck, steps: &[Step]) -> Run {
        let script = Arc::new(Scripted {
            steps: Mutex::new(steps.iter().copied().collect()),
            ..Default::default()
        });
        let cancel = CancellationToken::new();
        let t0 = Instant::now();
        let target = test_target(Ipv4Addr::LOCALHOST.into(), None);
        // The scripted checker keeps no timeout of its own: the layer the executor puts around
        // such checkers bounds it.
        let checker = ProbeTimeoutLayer.layer(script.clone() as Arc<dyn HealthChecker>);
        let events =
            HealthMonitor::new(check, checker, target).spawn(&TaskTracker::new(), cancel.clone());
        Run {
            events,
            script,
            cancel,
            t0,
        }
    }

    fn unhealthy(consecutive: u32) -> HealthEvent {
        HealthEvent::Unhealthy {
            reason: "scripted failure".into(),
            consecutive,
        }
    }

    fn failed(consecutive: u32) -> HealthEvent {
        HealthEvent::Failed {
            reason: "scripted failure".into(),
            consecutive,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_probe_runs_exactly_at_the_delay() {
        let mut run = start(check(), &[Pass]);
        assert_eq!(run.next().await, Some((15.0, HealthEvent::Healthy)));
        assert_eq!(run.script.starts(run.t0), [15.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_counts_from_the_end_of_a_slow_probe() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.timeout = Duration::ZERO; // the script hangs once played out
        let mut run = start(
            c,
            &[
                SlowPass(Duration::from_secs(4)),
                SlowPass(Duration::from_secs(7)),
                Pass,
            ],
        );
        assert_eq!(run.next().await, Some((4.0, HealthEvent::Healthy)));
        run.quiet_for(Duration::from_secs(60)).await;
        // Starts at 0; ends at 4, next at 14; ends at 21, next at 31; then 41 (which hangs).
        assert_eq!(run.script.starts(run.t0), [0.0, 14.0, 31.0, 41.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_cuts_a_hanging_probe_and_counts_as_a_failure() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.grace_period = Duration::ZERO;
        c.timeout = Duration::from_secs(5);
        let mut run = start(c, &[Hang, Hang, Hang]);
        let timed_out = |consecutive| HealthEvent::Unhealthy {
            reason: "the probe timed out after 5s".into(),
            consecutive,
        };
        assert_eq!(run.next().await, Some((5.0, timed_out(1))));
        assert!(
            run.script.dropped.load(Ordering::SeqCst),
            "the hanging probe was not dropped"
        );
        let (at, last) = run.next().await.unwrap();
        assert_eq!(at, 35.0); // 0–5, 15–20, 30–35
        assert_eq!(
            last,
            HealthEvent::Failed {
                reason: "the probe timed out after 5s".into(),
                consecutive: 3
            }
        );
        assert_eq!(run.script.starts(run.t0), [0.0, 15.0, 30.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_means_none() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.timeout = Duration::ZERO;
        let mut run = start(c, &[SlowPass(Duration::from_secs(3600))]);
        assert_eq!(run.next().await, Some((3600.0, HealthEvent::Healthy)));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_inside_the_grace_period_are_neither_counted_nor_reported() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.interval = Duration::from_secs(1);
        c.grace_period = Duration::from_secs(10);
        c.consecutive_failures = 1;
        // Probes at 0..=10 fail inside the grace period (its end included); the one at 11 counts.
        let mut run = start(c, &[Fail; 12]);
        assert_eq!(run.next().await, Some((11.0, failed(1))));
        assert_eq!(run.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_period_includes_the_delay() {
        let mut c = check();
        c.delay = Duration::from_secs(15); // past the 10 s grace period
        c.consecutive_failures = 2;
        let mut run = start(c, &[Fail, Fail]);
        assert_eq!(run.next().await, Some((15.0, unhealthy(1))));
        assert_eq!(run.next().await, Some((25.0, failed(2))));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_success_ends_the_grace_period() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.interval = Duration::from_secs(1);
        c.grace_period = Duration::from_secs(60);
        c.consecutive_failures = 2;
        let mut run = start(c, &[Fail, Pass, Fail, Fail]);
        // The failure at 0 is in grace; the success at 1 ends it, so 2 and 3 count though both
        // are well inside the original 60 s.
        assert_eq!(run.next().await, Some((1.0, HealthEvent::Healthy)));
        assert_eq!(run.next().await, Some((2.0, unhealthy(1))));
        assert_eq!(run.next().await, Some((3.0, failed(2))));
    }

    #[tokio::test(start_paused = true)]
    async fn the_threshold_fails_the_task_and_the_monitor_stops() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.grace_period = Duration::ZERO;
        let mut run = start(c, &[Pass, Fail, Fail, Fail, Pass, Pass]);
        assert_eq!(run.next().await, Some((0.0, HealthEvent::Healthy)));
        assert_eq!(run.next().await, Some((10.0, unhealthy(1))));
        assert_eq!(run.next().await, Some((30.0, failed(3))));
        assert_eq!(run.next().await, None, "the monitor goes on after Failed");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(run.script.starts(run.t0), [0.0, 10.0, 20.0, 30.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.timeout = Duration::ZERO; // the script hangs once played out
        c.grace_period = Duration::ZERO;
        let mut run = start(c, &[Fail, Fail, Pass, Fail, Fail, Pass]);
        assert_eq!(run.next().await, Some((0.0, unhealthy(1))));
        assert_eq!(run.next().await, Some((20.0, HealthEvent::Healthy)));
        assert_eq!(run.next().await, Some((30.0, unhealthy(1))));
        assert_eq!(run.next().await, Some((50.0, HealthEvent::Healthy)));
        run.quiet_for(Duration::from_secs(3600)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn only_changes_are_reported() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.timeout = Duration::ZERO; // the script hangs once played out
        c.grace_period = Duration::ZERO;
        c.consecutive_failures = 5;
        let mut run = start(c, &[Pass, Pass, Pass, Fail, Fail, Fail, Pass, Pass]);
        assert_eq!(run.next().await, Some((0.0, HealthEvent::Healthy)));
        assert_eq!(run.next().await, Some((30.0, unhealthy(1))));
        assert_eq!(run.next().await, Some((60.0, HealthEvent::Healthy)));
        run.quiet_for(Duration::from_secs(3600)).await;
        assert_eq!(run.script.starts(run.t0).len(), 9, "every step was probed");
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_a_probe_stops_it_at_once() {
        let mut c = check();
        c.delay = Duration::ZERO;
        c.timeout = Duration::ZERO;
        let mut run = start(c, &[Hang]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(run.script.starts(run.t0), [0.0]);
        run.cancel.cancel();
        assert_eq!(run.next().await, None);
        assert_eq!(
            Instant::now() - run.t0,
            Duration::from_secs(5),
            "the monitor did not stop at once"
        );
        assert!(
            run.script.dropped.load(Ordering::SeqCst),
            "the probe in flight was not dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_the_delay_stops_it_before_any_probe() {
        let mut run = start(check(), &[Pass]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        run.cancel.cancel();
        assert_eq!(run.next().await, None);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(run.script.starts(run.t0).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_receiver_ends_the_monitor() {
        let mut c = check();
        c.delay = Duration::ZERO;
        let script = Arc::new(Scripted {
            steps: Mutex::new([Pass, Pass].into()),
            ..Default::default()
        });
        let (tx, rx) = mpsc::channel(4);
        let target = test_target(Ipv4Addr::LOCALHOST.into(), None);
        let monitor = tokio::spawn(HealthMonitor::new(c, script.clone(), target).run(tx));
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), monitor)
            .await
            .expect("the monitor kept running without a receiver")
            .unwrap();
        assert_eq!(script.started.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_grace_period_too_long_for_an_instant_lasts_until_the_first_success() {
        let mut c = check();
        c.grace_period = Duration::MAX;
        let t0 = Instant::now();
        let mut policy = Policy::new(&c, t0);
        let later = t0 + Duration::from_secs(1_000_000);
        assert_eq!(
            policy.observe(ProbeOutcome::Unhealthy("x".into()), later),
            None
        );
        assert_eq!(
            policy.observe(ProbeOutcome::Healthy, later),
            Some(HealthEvent::Healthy)
        );
        assert!(matches!(
            policy.observe(ProbeOutcome::Unhealthy("x".into()), later),
            Some(HealthEvent::Unhealthy { consecutive: 1, .. })
        ));
    }
}
