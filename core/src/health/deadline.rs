//! The deadline of one probe: every step of a probe (connect, handshake, request, response) runs
//! under the same deadline, so the probe as a whole is bounded by its timeout.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// When the probe must be over, or never (a zero timeout means none, as in Mesos).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    /// The deadline `timeout` from now; zero (or a timeout too long to represent) means none.
    pub(super) fn after(timeout: Duration) -> Self {
        let at = if timeout.is_zero() {
            None
        } else {
            Instant::now().checked_add(timeout)
        };
        Deadline { at, timeout }
    }

    /// Runs one step of the probe; past the deadline it fails with a reason naming `step`.
    pub(super) async fn run<T>(
        &self,
        step: impl FnOnce() -> String,
        fut: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let Some(at) = self.at else { return fut.await };
        match tokio::time::timeout_at(at, fut).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{} timed out (probe timeout {})",
                step(),
                fmt_duration(self.timeout)
            )),
        }
    }
}

/// `20s`, `1500ms`: how probe timeouts read in reasons.
pub(super) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_step_past_the_deadline_fails_naming_the_step() {
        let deadline = Deadline::after(Duration::from_secs(2));
        let slow = deadline
            .run(|| "reading the answer".into(), async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(())
            })
            .await;
        assert_eq!(
            slow,
            Err("reading the answer timed out (probe timeout 2s)".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_means_no_deadline() {
        let deadline = Deadline::after(Duration::ZERO);
        let started = Instant::now();
        let slow = deadline
            .run(|| "step".into(), async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(7)
            })
            .await;
        assert_eq!(slow, Ok(7));
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    }
}
