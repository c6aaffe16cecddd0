//! The warm pool: hoist's main [`Scheduler`]. Environments per function version, admission
//! (reserved concurrency, then the global limit), scale-out on concurrency, warm reuse,
//! keepalive reaping and a start-up deadline.

mod environment;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use hoist_core::scheduler::{
    EnvironmentId, Lease, PlacementRequest, Rejection, ReleaseOutcome, Scheduler,
};
use hoist_core::{Error, ErrorKind};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::time::Instant;

use environment::Environment;
pub use environment::EnvironmentState;

use crate::config::PoolConfig;
use crate::launcher::EnvironmentLauncher;

/// The throttle reason when a function's reserved concurrency is used up.
pub const RESERVED_LIMIT_EXCEEDED: &str = "ReservedFunctionConcurrentInvocationLimitExceeded";
/// The throttle reason when the unreserved part of the global limit is used up.
pub const CONCURRENT_LIMIT_EXCEEDED: &str = "ConcurrentInvocationLimitExceeded";

/// The limits of one function, set with [`WarmPool::set_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionLimits {
    /// Reserved concurrency: at most this many at once, outside the unreserved pool.
    pub reserved: Option<usize>,
    /// How many invocations one environment serves at once.
    pub per_environment: usize,
}

impl Default for FunctionLimits {
    fn default() -> Self {
        FunctionLimits {
            reserved: None,
            per_environment: 1,
        }
    }
}

/// A snapshot of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentInfo {
    /// Its id (the task id on the executor).
    pub id: EnvironmentId,
    /// The function version it serves.
    pub key: String,
    /// Its state.
    pub state: EnvironmentState,
    /// Invocations it serves now.
    pub in_flight: usize,
}

/// The function a key belongs to: the text before the last `:` (keys are `name:version`).
pub fn function_of(key: &str) -> &str {
    key.rsplit_once(':').map_or(key, |(name, _)| name)
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    environments: BTreeMap<EnvironmentId, Environment>,
    limits: HashMap<String, FunctionLimits>,
    /// Admitted invocations per function.
    running: HashMap<String, usize>,
    queued: usize,
}

impl State {
    fn limits(&self, function: &str) -> FunctionLimits {
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
    fn admit(&mut self, function: &str, limit: usize) -> Result<(), &'static str> {
        let running = self.running.get(function).copied().unwrap_or(0);
        match self.limits(function).reserved {
            Some(reserved) if running >= reserved => return Err(RESERVED_LIMIT_EXCEEDED),
            Some(_) => {}
            None => {
                if self.unreserved_running() >= limit.saturating_sub(self.total_reserved()) {
                    return Err(CONCURRENT_LIMIT_EXCEEDED);
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
    fn unadmit(&mut self, function: &str) {
        if let Some(n) = self.running.get_mut(function) {
            *n = n.saturating_sub(1);
            if *n == 0 && !self.limits.contains_key(function) {
                self.running.remove(function);
            }
        }
    }
}

struct Inner {
    config: PoolConfig,
    launcher: Arc<dyn EnvironmentLauncher>,
    state: Mutex<State>,
    /// Signalled whenever an admitted invocation ends, for queued requests.
    freed: Notify,
    starts: Arc<Semaphore>,
    next_id: AtomicU64,
}

/// The warm pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use hoist_core::scheduler::{EnvironmentId, PlacementRequest, ReleaseOutcome, Scheduler};
/// use hoist_functions::config::PoolConfig;
/// use hoist_functions::launcher::EnvironmentLauncher;
/// use hoist_functions::pool::WarmPool;
///
/// #[derive(Debug)]
/// struct Instant;
/// #[async_trait]
/// impl EnvironmentLauncher for Instant {
///     async fn start(&self, _: &EnvironmentId, _: &str) -> hoist_core::Result<()> { Ok(()) }
///     async fn stop(&self, _: &EnvironmentId) {}
/// }
///
/// let pool = WarmPool::new(PoolConfig::default(), Arc::new(Instant));
/// let first = pool.acquire(&PlacementRequest::new("hello:1")).await.unwrap();
/// assert!(first.cold_start);
/// pool.release(first, ReleaseOutcome::Reusable).await;
/// let second = pool.acquire(&PlacementRequest::new("hello:1")).await.unwrap();
/// assert!(!second.cold_start, "the idle environment is reused");
/// # }
/// ```
#[derive(Clone)]
pub struct WarmPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("WarmPool")
            .field("config", &self.inner.config)
            .field("environments", &state.environments.len())
            .finish_non_exhaustive()
    }
}

/// One admitted invocation; dropping it without turning it into a lease gives the slot back.
struct Admission<'a> {
    inner: &'a Inner,
    function: &'a str,
    armed: bool,
}

impl Admission<'_> {
    fn keep(mut self) {
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

/// What a keepalive reaper does when it wakes.
enum Reap {
    Sleep(Instant),
    Stop,
    Done,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives an admitted slot back and wakes queued requests, if any wait.
    fn unadmit(&self, function: &str) {
        let queued = {
            let mut state = self.state();
            state.unadmit(function);
            state.queued > 0
        };
        // A request that queues after this check retries admission under the lock first.
        if queued {
            self.freed.notify_waiters();
        }
    }

    fn throttled(&self, reason: &str) -> Rejection {
        Rejection::Throttled {
            reason: reason.to_owned(),
            retry_after: self.config.retry_after,
        }
    }

    /// Admits an invocation of `function`, queueing it if so configured.
    async fn admit<'a>(
        &'a self,
        function: &'a str,
        wait: Option<Duration>,
    ) -> Result<Admission<'a>, Rejection> {
        let admission = || Admission {
            inner: self,
            function,
            armed: true,
        };
        let reason = {
            let mut state = self.state();
            if state.closed {
                return Err(closed());
            }
            match state.admit(function, self.config.concurrency_limit) {
                Ok(()) => return Ok(admission()),
                Err(reason) => reason,
            }
        };
        let Some(queue) = self.config.queue else {
            return Err(self.throttled(reason));
        };
        {
            let mut state = self.state();
            if state.queued >= queue.capacity {
                return Err(self.throttled(reason));
            }
            state.queued += 1;
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
                if state.admit(function, self.config.concurrency_limit).is_ok() {
                    break Ok(admission());
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                break Err(Rejection::QueueTimeout {
                    waited: started.elapsed(),
                });
            }
        };
        self.state().queued -= 1;
        result
    }

    /// Takes a place on an environment of `key` with room, if there is one.
    fn place_warm(&self, key: &str) -> Option<EnvironmentId> {
        let mut state = self.state();
        let (id, env) = state
            .environments
            .iter_mut()
            .find(|(_, e)| e.key == key && e.has_room())?;
        env.in_flight += 1;
        env.set_state(EnvironmentState::Busy);
        Some(id.clone())
    }

    fn new_environment(&self, key: &str, pinned: bool) -> Result<EnvironmentId, Rejection> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = EnvironmentId(format!("{}-{n}", key.replace(':', "-v")));
        let mut state = self.state();
        if state.closed {
            return Err(closed());
        }
        let capacity = state.limits(function_of(key)).per_environment.max(1);
        state.environments.insert(
            id.clone(),
            Environment {
                key: key.to_owned(),
                state: EnvironmentState::Starting,
                in_flight: usize::from(!pinned),
                capacity,
                idle_since: Instant::now(),
                reaper: false,
                pinned,
            },
        );
        Ok(id)
    }

    /// Starts `id` within the start-up deadline. On failure the environment is stopped and
    /// forgotten.
    async fn start(self: &Arc<Self>, id: &EnvironmentId, key: &str) -> Result<(), Error> {
        let _permit = self
            .starts
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::new(ErrorKind::Cancelled, "the pool is shut down"))?;
        let deadline = self.config.startup_timeout;
        let result = match tokio::time::timeout(deadline, self.launcher.start(id, key)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("Timeout while starting up lambda environment: {id} was not ready within {deadline:?}"),
            )
            .with_operation("start environment")
            .with_context("environment", id)
            .with_context("function", key)),
        };
        if let Err(e) = &result {
            tracing::warn!(environment = %id, error = %e, "environment failed to start");
            self.discard(id, EnvironmentState::Failed);
        }
        result
    }

    /// Marks an environment, forgets it and stops it in the background.
    fn discard(self: &Arc<Self>, id: &EnvironmentId, state: EnvironmentState) {
        if let Some(mut env) = self.state().environments.remove(id) {
            env.set_state(state);
        }
        let this = self.clone();
        let id = id.clone();
        tokio::spawn(async move { this.launcher.stop(&id).await });
    }

    /// An environment has no invocation left: start its keepalive, or stop it at once. Each
    /// environment has at most one reaper task, which re-reads when the environment last became
    /// idle each time it wakes, so releasing an invocation spawns nothing.
    fn idle(self: &Arc<Self>, id: &EnvironmentId) {
        let keepalive = self.config.keepalive;
        {
            let mut state = self.state();
            let Some(env) = state.environments.get_mut(id) else {
                return;
            };
            env.set_state(EnvironmentState::Ready);
            if env.pinned {
                return;
            }
            if !keepalive.is_zero() {
                env.idle_since = Instant::now();
                if std::mem::replace(&mut env.reaper, true) {
                    return;
                }
            }
        }
        if keepalive.is_zero() {
            self.discard(id, EnvironmentState::Stopping);
            return;
        }
        let this = self.clone();
        let id = id.clone();
        tokio::spawn(async move { this.reap(id, Instant::now() + keepalive).await });
    }

    /// The keepalive reaper of one environment: stops it once it has been idle for the whole
    /// keepalive; ends when the environment is gone or stopping.
    async fn reap(self: Arc<Self>, id: EnvironmentId, first: Instant) {
        let keepalive = self.config.keepalive;
        let mut wake = first;
        loop {
            tokio::time::sleep_until(wake).await;
            let next = {
                let mut state = self.state();
                match state.environments.get_mut(&id) {
                    None => Reap::Done,
                    Some(env) => match env.state {
                        EnvironmentState::Ready => {
                            let due = env.idle_since + keepalive;
                            if due <= Instant::now() {
                                env.reaper = false;
                                Reap::Stop
                            } else {
                                Reap::Sleep(due)
                            }
                        }
                        // Busy now: it becomes idle again no earlier than a keepalive from here.
                        EnvironmentState::Busy => Reap::Sleep(Instant::now() + keepalive),
                        _ => {
                            env.reaper = false;
                            Reap::Done
                        }
                    },
                }
            };
            match next {
                Reap::Sleep(at) => wake = at,
                Reap::Stop => {
                    tracing::debug!(environment = %id, "keepalive expired");
                    self.discard(&id, EnvironmentState::Stopping);
                    return;
                }
                Reap::Done => return,
            }
        }
    }
}

fn closed() -> Rejection {
    Rejection::Failed(Error::new(ErrorKind::InvalidState, "the pool is shut down"))
}

impl WarmPool {
    /// A pool that starts environments with `launcher`.
    pub fn new(config: PoolConfig, launcher: Arc<dyn EnvironmentLauncher>) -> Self {
        let starts = Arc::new(Semaphore::new(config.max_concurrent_starts.max(1)));
        WarmPool {
            inner: Arc::new(Inner {
                config,
                launcher,
                state: Mutex::new(State::default()),
                freed: Notify::new(),
                starts,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Sets a function's limits. Reserving more than the global limit in total is an
    /// [`ErrorKind::InvalidInput`] error.
    pub fn set_limits(&self, function: &str, limits: FunctionLimits) -> hoist_core::Result<()> {
        let mut state = self.inner.state();
        let others: usize = state
            .limits
            .iter()
            .filter(|(f, _)| f.as_str() != function)
            .filter_map(|(_, l)| l.reserved)
            .sum();
        let total = others + limits.reserved.unwrap_or(0);
        if total > self.inner.config.concurrency_limit {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "reserving {} for {function} would reserve {total}, more than the concurrency limit {}",
                    limits.reserved.unwrap_or(0),
                    self.inner.config.concurrency_limit
                ),
            )
            .with_context("field", "reserved_concurrency")
            .with_context("function", function));
        }
        state.limits.insert(function.to_owned(), limits);
        Ok(())
    }

    /// Forgets a function's limits and stops its idle environments (busy ones stop when
    /// their invocation ends, since no new version key reaches them).
    pub fn remove_function(&self, function: &str) {
        let idle: Vec<EnvironmentId> = {
            let mut state = self.inner.state();
            state.limits.remove(function);
            if state.running.get(function) == Some(&0) {
                // In flight invocations remove it as they end (`State::unadmit`).
                state.running.remove(function);
            }
            state
                .environments
                .iter()
                .filter(|(_, e)| function_of(&e.key) == function && e.in_flight == 0)
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in idle {
            self.inner.discard(&id, EnvironmentState::Stopping);
        }
    }

    /// Stops the idle environments of `key` (an older version after an update).
    pub fn retire(&self, key: &str) {
        let idle: Vec<EnvironmentId> = {
            let state = self.inner.state();
            state
                .environments
                .iter()
                .filter(|(_, e)| {
                    e.key == key && e.in_flight == 0 && e.state == EnvironmentState::Ready
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in idle {
            self.inner.discard(&id, EnvironmentState::Stopping);
        }
    }

    /// Starts `count` environments for `key` ahead of demand; they are never reaped by the
    /// keepalive. Returns once all are ready, or with the first failure.
    pub async fn prewarm(&self, key: &str, count: usize) -> hoist_core::Result<()> {
        let starts = (0..count).map(|_| async {
            let id = self.inner.new_environment(key, true).map_err(|r| match r {
                Rejection::Failed(e) => e,
                other => Error::new(ErrorKind::InvalidState, other.to_string()),
            })?;
            self.inner.start(&id, key).await?;
            self.inner.idle(&id);
            Ok::<(), Error>(())
        });
        futures::future::try_join_all(starts).await.map(|_| ())
    }

    /// A snapshot of every environment.
    pub fn environments(&self) -> Vec<EnvironmentInfo> {
        self.inner
            .state()
            .environments
            .iter()
            .map(|(id, e)| EnvironmentInfo {
                id: id.clone(),
                key: e.key.clone(),
                state: e.state,
                in_flight: e.in_flight,
            })
            .collect()
    }

    /// How many invocations are admitted now.
    pub fn running(&self) -> usize {
        self.inner.state().running.values().sum()
    }

    /// Tells the pool an environment ended on its own (crashed, killed). An idle one is
    /// forgotten; a busy one is marked failed and forgotten once its invocations are released.
    pub fn environment_exited(&self, id: &EnvironmentId, reason: &str) {
        let mut state = self.inner.state();
        let Some(env) = state.environments.get_mut(id) else {
            return;
        };
        tracing::info!(environment = %id, %reason, state = %env.state, "environment ended");
        match env.state {
            // The launcher fails the start; the pool discards it there.
            EnvironmentState::Starting => {}
            _ if env.in_flight == 0 => {
                state.environments.remove(id);
            }
            _ => env.set_state(EnvironmentState::Failed),
        }
    }

    /// Refuses new requests and stops every environment.
    pub async fn shutdown(&self) {
        let ids: Vec<EnvironmentId> = {
            let mut state = self.inner.state();
            state.closed = true;
            std::mem::take(&mut state.environments)
                .into_keys()
                .collect()
        };
        self.inner.freed.notify_waiters();
        let stops = ids.iter().map(|id| self.inner.launcher.stop(id));
        futures::future::join_all(stops).await;
    }
}

#[async_trait]
impl Scheduler for WarmPool {
    async fn acquire(&self, request: &PlacementRequest) -> Result<Lease, Rejection> {
        let key = request.key.as_str();
        let admission = self.inner.admit(function_of(key), request.wait).await?;
        if let Some(environment) = self.inner.place_warm(key) {
            admission.keep();
            return Ok(Lease {
                environment,
                key: key.to_owned(),
                cold_start: false,
            });
        }
        let id = self.inner.new_environment(key, false)?;
        // The start runs on its own task so that a caller who gives up does not leave the
        // environment half-started: it then becomes idle like any other.
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let (start_id, start_key) = (id.clone(), key.to_owned());
        tokio::spawn(async move {
            let result = inner.start(&start_id, &start_key).await;
            if result.is_ok()
                && let Some(env) = inner.state().environments.get_mut(&start_id)
            {
                env.set_state(EnvironmentState::Busy);
            }
            if let Err(Ok(())) = tx.send(result) {
                let orphan = inner.state().environments.get_mut(&start_id).map(|env| {
                    env.in_flight -= 1;
                    env.in_flight == 0
                });
                if orphan == Some(true) {
                    inner.idle(&start_id);
                }
            }
        });
        match rx.await {
            Ok(Ok(())) => {
                admission.keep();
                Ok(Lease {
                    environment: id,
                    key: key.to_owned(),
                    cold_start: true,
                })
            }
            Ok(Err(e)) => Err(Rejection::Failed(e)),
            Err(_) => Err(Rejection::Failed(Error::new(
                ErrorKind::Cancelled,
                "the environment start was abandoned",
            ))),
        }
    }

    async fn release(&self, lease: Lease, outcome: ReleaseOutcome) {
        let inner = &self.inner;
        let (now_idle, queued) = {
            let mut state = inner.state();
            state.unadmit(function_of(&lease.key));
            let now_idle = match state.environments.get_mut(&lease.environment) {
                None => None,
                Some(env) => {
                    env.in_flight = env.in_flight.saturating_sub(1);
                    Some((env.in_flight == 0, env.state == EnvironmentState::Failed))
                }
            };
            (now_idle, state.queued > 0)
        };
        if queued {
            inner.freed.notify_waiters();
        }
        match (outcome, now_idle) {
            (_, None) => {}
            (ReleaseOutcome::Broken(reason), Some(_)) => {
                tracing::warn!(environment = %lease.environment, %reason, "environment broke; replacing it");
                inner.discard(&lease.environment, EnvironmentState::Failed);
            }
            (ReleaseOutcome::Reusable, Some((true, true))) => {
                inner.discard(&lease.environment, EnvironmentState::Failed);
            }
            (ReleaseOutcome::Reusable, Some((true, false))) => inner.idle(&lease.environment),
            (ReleaseOutcome::Reusable, Some((false, _))) => {}
        }
    }
}

#[cfg(test)]
mod tests;
