//! The [`Scheduler`] trait: admission and placement of requests onto environments.
//!
//! The warm pool in hoist-functions is the main implementation; core ships [`FixedPool`], a
//! fixed set of environments with a concurrency limit each.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Error;

/// The id of an environment (a warm container, a backend, a node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvironmentId(pub String);

impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something to place: an invocation of a function version, or a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRequest {
    /// What must serve it: a function version (`hello:3`) or a task group.
    pub key: String,
    /// How long the caller will wait for a place (in a queue, or for a cold start).
    pub wait: Option<Duration>,
}

impl PlacementRequest {
    /// A request for `key` that does not wait.
    pub fn new(key: impl Into<String>) -> Self {
        PlacementRequest {
            key: key.into(),
            wait: None,
        }
    }
}

/// A place granted by a scheduler; give it back with [`Scheduler::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The environment that serves the request.
    pub environment: EnvironmentId,
    /// The request's key.
    pub key: String,
    /// Whether the environment was started for this request.
    pub cold_start: bool,
}

/// How the work under a lease went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The environment can serve again.
    Reusable,
    /// The environment broke (crashed, timed out) and must be replaced.
    Broken(String),
}

/// Which limit throttled a request, in the scheduler's own terms; a front door names it in its
/// protocol's words (the Lambda front door says `ReservedFunctionConcurrentInvocationLimitExceeded`
/// for [`ThrottleReason::ReservedConcurrency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThrottleReason {
    /// The concurrency reserved for the request's key (a function) is in use.
    ReservedConcurrency,
    /// The shared concurrency limit (the part no key reserves) is in use.
    ConcurrencyLimit,
    /// A queue of waiting requests is full.
    QueueFull,
    /// Every environment is at its own concurrency limit.
    EnvironmentsBusy,
}

impl ThrottleReason {
    /// A short description (`reserved concurrency in use`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::ReservedConcurrency => "reserved concurrency in use",
            ThrottleReason::ConcurrencyLimit => "concurrency limit reached",
            ThrottleReason::QueueFull => "queue full",
            ThrottleReason::EnvironmentsBusy => "every environment is at its concurrency limit",
        }
    }
}

impl fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was not placed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A concurrency limit was reached; the caller may retry after `retry_after`.
    #[error("throttled: {reason} (retry after {retry_after:?})")]
    Throttled {
        /// Which limit.
        reason: ThrottleReason,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The request waited in a queue past its deadline.
    #[error("no environment became free within {waited:?}")]
    QueueTimeout {
        /// How long it waited.
        waited: Duration,
    },
    /// Starting an environment failed.
    #[error("could not place the request: {0}")]
    Failed(#[source] Error),
}

/// Admits and places requests.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use hoist_core::scheduler::{FixedPool, PlacementRequest, ReleaseOutcome, Rejection, Scheduler};
///
/// let pool = FixedPool::new([("env-a", 1)]);
/// let lease = pool.acquire(&PlacementRequest::new("hello")).await.unwrap();
/// assert!(matches!(
///     pool.acquire(&PlacementRequest::new("hello")).await,
///     Err(Rejection::Throttled { .. })
/// ));
/// pool.release(lease, ReleaseOutcome::Reusable).await;
/// assert!(pool.acquire(&PlacementRequest::new("hello")).await.is_ok());
/// # }
/// ```
#[async_trait]
pub trait Scheduler: Send + Sync + fmt::Debug + 'static {
    /// Admits `request` and places it on an environment, starting or waiting for one as the
    /// implementation allows; or refuses with a typed [`Rejection`].
    async fn acquire(&self, request: &PlacementRequest) -> Result<Lease, Rejection>;

    /// Gives a lease back.
    async fn release(&self, lease: Lease, outcome: ReleaseOutcome);
}

/// A fixed set of environments, each serving up to a number of requests at once. Requests go
/// to the least-loaded environment; a broken environment is taken out of service.
#[derive(Debug)]
pub struct FixedPool {
    slots: Mutex<BTreeMap<EnvironmentId, Slot>>,
}

#[derive(Debug)]
struct Slot {
    capacity: usize,
    busy: usize,
    broken: bool,
}

impl FixedPool {
    /// A pool of `(environment, capacity)` pairs.
    pub fn new<S: Into<String>>(environments: impl IntoIterator<Item = (S, usize)>) -> Self {
        let slots = environments
            .into_iter()
            .map(|(id, capacity)| {
                (
                    EnvironmentId(id.into()),
                    Slot {
                        capacity,
                        busy: 0,
                        broken: false,
                    },
                )
            })
            .collect();
        FixedPool {
            slots: Mutex::new(slots),
        }
    }
}

#[async_trait]
impl Scheduler for FixedPool {
    async fn acquire(&self, request: &PlacementRequest) -> Result<Lease, Rejection> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let best = slots
            .iter_mut()
            .filter(|(_, s)| !s.broken && s.busy < s.capacity)
            .min_by_key(|(_, s)| s.busy);
        match best {
            Some((id, slot)) => {
                slot.busy += 1;
                Ok(Lease {
                    environment: id.clone(),
                    key: request.key.clone(),
                    cold_start: false,
                })
            }
            None => Err(Rejection::Throttled {
                reason: ThrottleReason::EnvironmentsBusy,
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    async fn release(&self, lease: Lease, outcome: ReleaseOutcome) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(&lease.environment) {
            slot.busy = slot.busy.saturating_sub(1);
            if let ReleaseOutcome::Broken(reason) = outcome {
                tracing::warn!(environment = %lease.environment, %reason, "environment taken out of service");
                slot.broken = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn least_loaded_first_and_broken_environments_leave_service() {
        let pool = FixedPool::new([("a", 2), ("b", 2)]);
        let first = pool.acquire(&PlacementRequest::new("f")).await.unwrap();
        let second = pool.acquire(&PlacementRequest::new("f")).await.unwrap();
        assert_ne!(
            first.environment, second.environment,
            "spreads over environments"
        );
        pool.release(first.clone(), ReleaseOutcome::Broken("crashed".into()))
            .await;
        let third = pool.acquire(&PlacementRequest::new("f")).await.unwrap();
        assert_eq!(
            third.environment, second.environment,
            "the broken one is skipped"
        );
        let err = pool.acquire(&PlacementRequest::new("f")).await.unwrap_err();
        assert!(
            matches!(
                err,
                Rejection::Throttled {
                    reason: ThrottleReason::EnvironmentsBusy,
                    ..
                }
            ),
            "{err}"
        );
    }
}
