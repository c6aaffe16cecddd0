//! Admission: reserved concurrency first, then the unreserved part of the global limit, with
//! an optional bounded queue for requests beyond them.

use std::collections::HashMap;
use std::time::Duration;

use hoist_core::scheduler::{Rejection, ThrottleReason};
use tokio::time::Instant;

use super::{FunctionLimits, Inner, closed};

/// What admission counts: the limits of each function and its admitted invocations.
#[derive(Debug, Default)]
pub(super) struct Admissions {
    pub(super) limits: HashMap<String, FunctionLimits>,
    /// Admitted invocations per function.
    pub(super) running: HashMap<String, usize>,
    /// Requests waiting in the queue.
    pub(super) queued: usize,
}

impl Admissions {
    pub(super) fn limits(&self, function: &str) -> FunctionLimits {
        self.limits.get(function).copied().unwrap_or_default()
    }

    fn total_reserved(&self) -> usize {
        self.limits.values().filter_map(|l| l.reserved).sum()
    }

    fn unreserved_running(&self) -> usize {
        self.running
            .iter()
            .filter(|(f, _)| self.limits.get(*f).is_none_or(|l| l.reserved.is_none()))
            .map(|(_, n)| n)
            .sum()
    }

    /// Admits one invocation of `function`, or names the limit it hit.
    pub(super) fn admit(&mut self, function: &str, limit: usize) -> Result<(), ThrottleReason> {
        let running = self.running.get(function).copied().unwrap_or(0);
        match self.limits(function).reserved {
            Some(reserved) if running >= reserved => {
                return Err(ThrottleReason::ReservedConcurrency);
            }
            Some(_) => {}
            None => {
                if self.unreserved_running() >= limit.saturating_sub(self.total_reserved()) {
                    return Err(ThrottleReason::ConcurrencyLimit);
                }
            }
        }
        // The entry stays at zero between invocations, so steady traffic allocates nothing.
        match self.running.get_mut(function) {
            Some(n) => *n += 1,
            None => {
                self.running.insert(function.to_owned(), 1);
            }
        }
        Ok(())
    }

    /// Gives a slot back. A registered function's entry stays at zero (no allocation for its
    /// next invocation); one whose limits are gone (removed meanwhile) goes at zero.
    pub(super) fn unadmit(&mut self, function: &str) {
        if let Some(n) = self.running.get_mut(function) {
            *n = n.saturating_sub(1);
            if *n == 0 && !self.limits.contains_key(function) {
                self.running.remove(function);
            }
        }
    }

    /// Forgets a function's limits, and its count once nothing of it runs.
    pub(super) fn remove(&mut self, function: &str) {
        self.limits.remove(function);
        if self.running.get(function) == Some(&0) {
            // In-flight invocations remove it as they end (`unadmit`).
            self.running.remove(function);
        }
    }
}

/// One admitted invocation; dropping it without turning it into a lease gives the slot back.
pub(super) struct Admission<'a> {
    inner: &'a Inner,
    function: &'a str,
    armed: bool,
}

impl Admission<'_> {
    /// The slot now belongs to a lease, which gives it back on release.
    pub(super) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.unadmit(self.function);
        }
    }
}

impl Inner {
    /// Gives an admitted slot back and wakes queued requests, if any wait.
    pub(super) fn unadmit(&self, function: &str) {
        let queued = {
            let mut state = self.state();
            state.admissions.unadmit(function);
            state.admissions.queued > 0
        };
        // A request that queues after this check retries admission under the lock first.
        if queued {
            self.freed.notify_waiters();
        }
    }

    fn throttled(&self, reason: ThrottleReason) -> Rejection {
        Rejection::Throttled {
            reason,
            retry_after: self.config.retry_after,
        }
    }

    /// Admits an invocation of `function`, queueing it if so configured.
    pub(super) async fn admit<'a>(
        &'a self,
        function: &'a str,
        wait: Option<Duration>,
    ) -> Result<Admission<'a>, Rejection> {
        let admission = || Admission {
            inner: self,
            function,
            armed: true,
        };
        let limit = self.config.concurrency_limit;
        let reason = {
            let mut state = self.state();
            if state.closed {
                return Err(closed());
            }
            match state.admissions.admit(function, limit) {
                Ok(()) => return Ok(admission()),
                Err(reason) => reason,
            }
        };
        let Some(queue) = self.config.queue else {
            return Err(self.throttled(reason));
        };
        {
            let mut state = self.state();
            if state.admissions.queued >= queue.capacity {
                return Err(self.throttled(reason));
            }
            state.admissions.queued += 1;
        }
        let started = Instant::now();
        let patience = wait.map_or(queue.deadline, |w| w.min(queue.deadline));
        let deadline = started + patience;
        let result = loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.state();
                if state.closed {
                    break Err(closed());
                }
                if state.admissions.admit(function, limit).is_ok() {
                    break Ok(admission());
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                break Err(Rejection::QueueTimeout {
                    waited: started.elapsed(),
                });
            }
        };
        self.state().admissions.queued -= 1;
        result
    }
}
