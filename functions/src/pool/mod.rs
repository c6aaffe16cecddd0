//! The warm pool: hoist's main [`Scheduler`]. Environments per function version, admission
//! (reserved concurrency, then the global limit: [`admission`]), scale-out on concurrency,
//! warm reuse, keepalive reaping ([`reaping`]) and a start-up deadline. Its background work
//! (starts, stops, reapers) runs on a task tracker that [`WarmPool::shutdown`] cancels and
//! awaits.

mod admission;
mod environment;
mod key;
mod reaping;

use std::collections::BTreeMap;
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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use admission::Admissions;
use environment::Environment;
pub use environment::EnvironmentState;
pub use key::FunctionKey;

use crate::config::PoolConfig;
use crate::launcher::EnvironmentLauncher;

/// How long [`WarmPool::shutdown`] waits for its background work after stopping every
/// environment.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

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
    pub key: FunctionKey,
    /// Its state.
    pub state: EnvironmentState,
    /// Invocations it serves now.
    pub in_flight: usize,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    environments: BTreeMap<EnvironmentId, Environment>,
    admissions: Admissions,
}

struct Inner {
    config: PoolConfig,
    launcher: Arc<dyn EnvironmentLauncher>,
    state: Mutex<State>,
    /// Signalled whenever an admitted invocation ends, for queued requests.
    freed: Notify,
    starts: Arc<Semaphore>,
    next_id: AtomicU64,
    /// Starts, stops and reapers.
    tasks: TaskTracker,
    /// Cancelled by the shutdown: starts give up, reapers end.
    cancel: CancellationToken,
}

/// What became of an environment when a lease on it was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Released {
    /// The pool had forgotten it already.
    Gone,
    /// It still serves other invocations.
    StillBusy,
    /// It has nothing left to do.
    Idle,
    /// It has nothing left to do and had failed meanwhile.
    IdleFailed,
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
/// use hoist_functions::pool::{FunctionKey, WarmPool};
///
/// #[derive(Debug)]
/// struct Instant;
/// #[async_trait]
/// impl EnvironmentLauncher for Instant {
///     async fn start(&self, _: &EnvironmentId, _: &FunctionKey) -> hoist_core::Result<()> { Ok(()) }
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

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place on an environment of `key` with room, if there is one.
    fn place_warm(&self, key: &FunctionKey) -> Option<EnvironmentId> {
        let mut state = self.state();
        let (id, env) = state
            .environments
            .iter_mut()
            .find(|(_, e)| e.key == *key && e.has_room())?;
        env.in_flight += 1;
        env.set_state(EnvironmentState::Busy);
        Some(id.clone())
    }

    fn new_environment(&self, key: &FunctionKey, pinned: bool) -> Result<EnvironmentId, Rejection> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = EnvironmentId(format!("{}-v{}-{n}", key.function(), key.version()));
        let mut state = self.state();
        if state.closed {
            return Err(closed());
        }
        let capacity = state
            .admissions
            .limits(key.function())
            .per_environment
            .max(1);
        state.environments.insert(
            id.clone(),
            Environment {
                key: key.clone(),
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
    async fn start(self: &Arc<Self>, id: &EnvironmentId, key: &FunctionKey) -> Result<(), Error> {
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
            .with_context("function", key.to_string())),
        };
        if let Err(e) = &result {
            tracing::warn!(environment = %id, error = %e, "environment failed to start");
            self.discard(id, EnvironmentState::Failed);
        }
        result
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
                tasks: TaskTracker::new(),
                cancel: CancellationToken::new(),
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
            .admissions
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
        state.admissions.limits.insert(function.to_owned(), limits);
        Ok(())
    }

    /// Forgets a function's limits and stops its idle environments (busy ones stop when
    /// their invocation ends, since no new version key reaches them).
    pub fn remove_function(&self, function: &str) {
        self.stop_idle(
            |key, _| key.function() == function,
            |state| {
                state.admissions.remove(function);
            },
        );
    }

    /// Stops the idle environments of `key` (an older version after an update).
    pub fn retire(&self, key: &FunctionKey) {
        self.stop_idle(
            |k, state| k == key && state == EnvironmentState::Ready,
            |_| {},
        );
    }

    /// Stops the environments with no invocation that `which` picks, after `first` changes
    /// the state under the same lock.
    fn stop_idle(
        &self,
        which: impl Fn(&FunctionKey, EnvironmentState) -> bool,
        first: impl FnOnce(&mut State),
    ) {
        let idle: Vec<EnvironmentId> = {
            let mut state = self.inner.state();
            first(&mut state);
            state
                .environments
                .iter()
                .filter(|(_, e)| e.in_flight == 0 && which(&e.key, e.state))
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in idle {
            self.inner.discard(&id, EnvironmentState::Stopping);
        }
    }

    /// Starts `count` environments for `key` ahead of demand; they are never reaped by the
    /// keepalive. Returns once all are ready, or with the first failure.
    pub async fn prewarm(&self, key: &FunctionKey, count: usize) -> hoist_core::Result<()> {
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
        self.inner.state().admissions.running.values().sum()
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

    /// Takes over `id`, an environment of `key` that already runs and is ready (one an earlier
    /// process left, re-attached): it becomes idle, and its keepalive starts. Ids the pool
    /// gives new environments from then on count past its number.
    pub fn adopt(&self, id: &EnvironmentId, key: &FunctionKey) -> hoist_core::Result<()> {
        if let Some(n) = id.0.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()) {
            self.inner.next_id.fetch_max(n + 1, Ordering::Relaxed);
        }
        {
            let mut state = self.inner.state();
            if state.closed {
                return Err(Error::new(ErrorKind::InvalidState, "the pool is shut down"));
            }
            if state.environments.contains_key(id) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "the environment is in the pool already",
                )
                .with_context("environment", id));
            }
            let capacity = state
                .admissions
                .limits(key.function())
                .per_environment
                .max(1);
            state.environments.insert(
                id.clone(),
                Environment {
                    key: key.clone(),
                    state: EnvironmentState::Starting,
                    in_flight: 0,
                    capacity,
                    idle_since: Instant::now(),
                    reaper: false,
                    pinned: false,
                },
            );
        }
        self.inner.idle(id);
        Ok(())
    }

    /// Refuses new requests and forgets every environment without stopping any (they stay
    /// for a later process to re-attach to), cancels starts and reapers, and waits (within a
    /// deadline) for the pool's background work to end. Returns the environments let go.
    pub async fn detach(&self) -> Vec<EnvironmentId> {
        let ids: Vec<EnvironmentId> = {
            let mut state = self.inner.state();
            state.closed = true;
            std::mem::take(&mut state.environments)
                .into_keys()
                .collect()
        };
        self.inner.freed.notify_waiters();
        self.inner.cancel.cancel();
        self.wait_background().await;
        ids
    }

    /// Refuses new requests, stops every environment, cancels starts and reapers, and waits
    /// (within a deadline) for the pool's background work to end.
    pub async fn shutdown(&self) {
        let ids: Vec<EnvironmentId> = {
            let mut state = self.inner.state();
            state.closed = true;
            std::mem::take(&mut state.environments)
                .into_keys()
                .collect()
        };
        self.inner.freed.notify_waiters();
        self.inner.cancel.cancel();
        let stops = ids.iter().map(|id| self.inner.launcher.stop(id));
        futures::future::join_all(stops).await;
        self.wait_background().await;
    }

    async fn wait_background(&self) {
        self.inner.tasks.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.inner.tasks.len(),
                "the warm pool's background work did not end within {SHUTDOWN_DEADLINE:?}"
            );
        }
    }

    /// Admits an invocation of `key` and places it on a warm environment, or starts one;
    /// waits at most `wait` in the queue (when the pool has one). [`Scheduler::acquire`] with
    /// the key as `name:version`.
    pub async fn lease(
        &self,
        key: &FunctionKey,
        wait: Option<Duration>,
    ) -> Result<Lease, Rejection> {
        let admission = self.inner.admit(key.function(), wait).await?;
        if let Some(environment) = self.inner.place_warm(key) {
            admission.keep();
            return Ok(Lease {
                environment,
                key: key.to_string(),
                cold_start: false,
            });
        }
        let id = self.inner.new_environment(key, false)?;
        // The start runs on its own task so that a caller who gives up does not leave the
        // environment half-started: it then becomes idle like any other.
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let (start_id, start_key) = (id.clone(), key.clone());
        let cancel = self.inner.cancel.clone();
        self.inner.tasks.spawn(async move {
            let result = tokio::select! {
                result = inner.start(&start_id, &start_key) => result,
                // The shutdown stops every environment, this one too.
                () = cancel.cancelled() => Err(Error::new(ErrorKind::Cancelled, "the pool is shut down")),
            };
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
                    key: key.to_string(),
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
}

#[async_trait]
impl Scheduler for WarmPool {
    async fn acquire(&self, request: &PlacementRequest) -> Result<Lease, Rejection> {
        let key: FunctionKey = request.key.parse().map_err(Rejection::Failed)?;
        self.lease(&key, request.wait).await
    }

    async fn release(&self, lease: Lease, outcome: ReleaseOutcome) {
        let inner = &self.inner;
        let (released, queued) = {
            let mut state = inner.state();
            let released = match state.environments.get_mut(&lease.environment) {
                None => Released::Gone,
                Some(env) => {
                    env.in_flight = env.in_flight.saturating_sub(1);
                    match (env.in_flight, env.state) {
                        (0, EnvironmentState::Failed) => Released::IdleFailed,
                        (0, _) => Released::Idle,
                        _ => Released::StillBusy,
                    }
                }
            };
            match lease.key.parse::<FunctionKey>() {
                Ok(key) => state.admissions.unadmit(key.function()),
                Err(e) => {
                    tracing::warn!(error = %e, "a lease this pool did not grant was released")
                }
            }
            (released, state.admissions.queued > 0)
        };
        if queued {
            inner.freed.notify_waiters();
        }
        match (outcome, released) {
            (_, Released::Gone) => {}
            (ReleaseOutcome::Broken(reason), _) => {
                tracing::warn!(environment = %lease.environment, %reason, "environment broke; replacing it");
                inner.discard(&lease.environment, EnvironmentState::Failed);
            }
            (ReleaseOutcome::Reusable, Released::IdleFailed) => {
                inner.discard(&lease.environment, EnvironmentState::Failed);
            }
            (ReleaseOutcome::Reusable, Released::Idle) => inner.idle(&lease.environment),
            (ReleaseOutcome::Reusable, Released::StillBusy) => {}
        }
    }
}

#[cfg(test)]
mod tests;
