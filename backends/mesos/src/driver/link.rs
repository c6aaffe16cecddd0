//! The link to the agent: the subscription, its backoff, and the calls connection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use hoist_core::Result;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::Exit;
use super::state::State;
use crate::client::{AgentClient, EventStream};
use crate::wire::{self, Call, Event};

/// Sends calls in order over the calls connection; failures are logged, and the ledger sends
/// updates again until they are acknowledged.
/// It ends when the driver drops its sender (after sending what is queued) or at `cancel`.
pub(super) async fn send_calls(
    mut client: AgentClient,
    mut calls: mpsc::UnboundedReceiver<Call>,
    cancel: CancellationToken,
) {
    loop {
        let call = tokio::select! {
            () = cancel.cancelled() => return,
            call = calls.recv() => match call {
                Some(call) => call,
                None => return,
            },
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            result = client.call(&call) => if let Err(e) = result {
                tracing::warn!(call = ?call.kind, error = %e, "call to the agent failed");
            },
        }
    }
}

/// Where the subscription stands.
pub(super) enum Link {
    Connecting(BoxFuture<'static, Result<EventStream>>),
    Connected(EventStream),
    Waiting(Pin<Box<Sleep>>),
    Closed,
}

/// What happened on the link.
pub(super) enum Step {
    Event(Box<Event>),
    Broken(String),
    Subscribed(EventStream),
    Refused(hoist_core::Error),
    Retry,
}

impl Link {
    pub(super) async fn step(&mut self) -> Step {
        match self {
            Link::Connecting(attempt) => match attempt.await {
                Ok(stream) => Step::Subscribed(stream),
                Err(e) => Step::Refused(e),
            },
            Link::Connected(stream) => match stream.next().await {
                Some(Ok(event)) => Step::Event(Box::new(event)),
                Some(Err(e)) => Step::Broken(e.to_string()),
                None => Step::Broken("the agent closed the event stream".into()),
            },
            Link::Waiting(sleep) => {
                sleep.await;
                Step::Retry
            }
            Link::Closed => std::future::pending().await,
        }
    }
}

impl State {
    pub(super) fn subscribe(
        &mut self,
        client: &Arc<AgentClient>,
    ) -> BoxFuture<'static, Result<EventStream>> {
        if self.subscribed_once
            && let Some(metrics) = &self.metrics
        {
            metrics.resubscriptions.inc();
        }
        let updates = self.ledger.unacknowledged_updates();
        self.carried = updates
            .iter()
            .filter_map(|u| u.status.uuid.as_ref().map(|u| u.0.clone()))
            .collect();
        let call = Call::subscribe(
            self.env.executor_id.clone(),
            self.env.framework_id.clone(),
            self.ledger.unacknowledged_tasks(),
            updates,
        );
        let client = client.clone();
        async move { client.subscribe(&call).await }.boxed()
    }

    /// The subscription is gone: give up at once without checkpointing, else wait a random
    /// backoff and try again until the recovery deadline (started at the first failure).
    pub(super) fn disconnected(
        &mut self,
        client: &Arc<AgentClient>,
        deadline: &mut Option<Instant>,
    ) -> Link {
        let _ = client;
        if self.connected
            && let Some(metrics) = &self.metrics
        {
            metrics.disconnections.inc();
        }
        self.connected = false;
        if self.shutdown.is_some() {
            return Link::Closed;
        }
        if !self.env.checkpoint {
            tracing::error!("the framework does not checkpoint; killing every task and exiting");
            self.begin_shutdown(Exit::AgentLost, self.env.shutdown_grace_period);
            return Link::Closed;
        }
        deadline.get_or_insert_with(|| Instant::now() + self.env.recovery_timeout);
        let max = self.env.subscription_backoff_max;
        let wait = if max.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=max)
        };
        Link::Waiting(Box::pin(tokio::time::sleep(wait)))
    }

    pub(super) fn send(&self, call: Call) {
        // The receiver lives as long as the driver.
        let _ = self.calls.send(call);
    }

    pub(super) fn send_update(&self, status: wire::TaskStatus) {
        if let Some(metrics) = &self.metrics {
            metrics.updates_sent.inc();
        }
        self.send(Call::update(
            self.env.executor_id.clone(),
            self.env.framework_id.clone(),
            status,
        ));
    }

    pub(super) fn send_message(&mut self, data: Vec<u8>) {
        if self.connected {
            self.send(Call::message(
                self.env.executor_id.clone(),
                self.env.framework_id.clone(),
                data,
            ));
        } else {
            self.held_messages.push(data);
        }
    }

    pub(super) fn resend_due(&mut self) {
        for status in self
            .ledger
            .due(Instant::now(), self.options.resend_interval)
        {
            self.send_update(status);
        }
    }
}
