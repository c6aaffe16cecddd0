//! The bounded queue of asynchronous (`Event`) invocations and the background work of the
//! executor (prewarming), drained or dropped at shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EventQueueConfig;
use crate::invoke::InvokeError;

/// Background tasks of the executor, with a count of the `Event` invocations among them.
#[derive(Debug, Clone)]
pub(super) struct Background {
    tasks: TaskTracker,
    /// One permit per free place in the `Event` queue.
    places: Arc<Semaphore>,
    cancel: CancellationToken,
    config: EventQueueConfig,
}

/// One place in the `Event` queue, given back when dropped.
pub(super) type Slot = OwnedSemaphorePermit;

impl Background {
    pub(super) fn new(config: EventQueueConfig) -> Self {
        Background {
            tasks: TaskTracker::new(),
            places: Arc::new(Semaphore::new(Self::places(&config))),
            cancel: CancellationToken::new(),
            config,
        }
    }

    /// Takes a place in the `Event` queue, or says why not: the executor is shutting down, or
    /// the queue is full (a throttle, retried after `retry_after`).
    pub(super) fn admit(&self, retry_after: std::time::Duration) -> Result<Slot, InvokeError> {
        if self.tasks.is_closed() {
            return Err(InvokeError::Service(hoist_core::Error::new(
                hoist_core::ErrorKind::InvalidState,
                "the function executor is shutting down",
            )));
        }
        self.places
            .clone()
            .try_acquire_owned()
            .map_err(|_| InvokeError::Throttled {
                reason: hoist_core::scheduler::ThrottleReason::QueueFull,
                retry_after,
            })
    }

    /// How many `Event` invocations are waiting or running.
    pub(super) fn queued(&self) -> usize {
        Self::places(&self.config) - self.places.available_permits()
    }

    /// The queue's places: its capacity, within what a semaphore can count.
    fn places(config: &EventQueueConfig) -> usize {
        config.capacity.min(Semaphore::MAX_PERMITS)
    }

    /// Runs `work` in the background; at shutdown, past the drain deadline, it is dropped and
    /// `dropped` runs instead.
    pub(super) fn spawn(
        &self,
        work: impl Future<Output = ()> + Send + 'static,
        dropped: impl FnOnce() + Send + 'static,
    ) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = work => {}
                () = cancel.cancelled() => dropped(),
            }
        });
    }

    /// Refuses new `Event` invocations, lets the queued ones finish within the drain deadline,
    /// then drops the rest.
    pub(super) async fn shutdown(&self) {
        self.tasks.close();
        if tokio::time::timeout(self.config.drain, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                events = self.queued(),
                drain = ?self.config.drain,
                "asynchronous invocations still queued at shutdown are dropped"
            );
            self.cancel.cancel();
            self.tasks.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use hoist_core::testing::FakeContainerizer;

    use crate::config::{EventQueueConfig, FunctionsConfig, RuntimeCommand};
    use crate::invoke::{Completion, Invocation, InvocationType, InvokeError};
    use crate::{FunctionExecutor, FunctionSpec};

    fn event() -> Invocation {
        Invocation {
            kind: InvocationType::Event,
            ..Invocation::new("{}")
        }
    }

    /// Environments on the fake containerizer never call the Runtime API, so they never become
    /// ready: accepted `Event` invocations stay queued until the shutdown drops them.
    #[tokio::test(start_paused = true)]
    async fn a_full_event_queue_throttles_and_the_shutdown_drops_what_is_left() {
        let mut config = FunctionsConfig::default();
        config
            .runtimes
            .insert("stuck".into(), RuntimeCommand::lambda(["runtime"]));
        config.pool.startup_timeout = Duration::from_secs(3600);
        config.events = EventQueueConfig {
            capacity: 2,
            drain: Duration::from_secs(5),
        };
        let functions =
            FunctionExecutor::start(Arc::new(FakeContainerizer::new()), config).unwrap();
        functions
            .create(FunctionSpec::new("f", "stuck", "app.handler", "/srv/f"))
            .unwrap();

        for _ in 0..2 {
            let accepted = functions.invoke("f", event()).await.unwrap();
            assert_eq!(accepted.completion, Completion::Accepted);
        }
        assert_eq!(functions.queued_events(), 2);
        match functions.invoke("f", event()).await {
            Err(InvokeError::Throttled { reason, .. }) => {
                assert_eq!(reason, hoist_core::scheduler::ThrottleReason::QueueFull);
            }
            other => panic!("a third event was not throttled: {other:?}"),
        }
        // A synchronous dry run is not queued, so it still passes.
        let dry = Invocation {
            kind: InvocationType::DryRun,
            ..Invocation::new("{}")
        };
        assert_eq!(
            functions.invoke("f", dry).await.unwrap().completion,
            Completion::Checked
        );

        let start = tokio::time::Instant::now();
        functions.shutdown().await;
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "the shutdown waited for the drain deadline"
        );
        assert_eq!(
            functions.queued_events(),
            0,
            "the dropped events gave back their places"
        );
        match functions.invoke("f", event()).await {
            Err(InvokeError::Service(e)) => {
                assert!(e.to_string().contains("shutting down"), "{e}");
            }
            other => panic!("an event after the shutdown was accepted: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_shutdown_waits_for_events_that_finish_within_the_drain() {
        let background = super::Background::new(EventQueueConfig {
            capacity: 4,
            drain: Duration::from_secs(60),
        });
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let slot = background.admit(Duration::from_secs(1)).unwrap();
        let finished = done.clone();
        background.spawn(
            async move {
                let _slot = slot;
                tokio::time::sleep(Duration::from_secs(10)).await;
                finished.store(true, std::sync::atomic::Ordering::SeqCst);
            },
            || panic!("an event that finishes within the drain was dropped"),
        );
        background.shutdown().await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(background.queued(), 0);
    }
}
