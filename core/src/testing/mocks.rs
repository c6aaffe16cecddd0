//! mockall mocks of the core traits, for unit tests that need exact expectations.

use std::time::Duration;

use async_trait::async_trait;

use crate::capabilities::Capabilities;
use crate::container::{
    ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogOptions, OwnedContainer,
    Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::Result;
use crate::health::{HealthChecker, ProbeOutcome, ProbeTarget};
use crate::hook::{Hook, HookContext};
use crate::observe::UsageStream;
use crate::scheduler::{Lease, PlacementRequest, Rejection, ReleaseOutcome, Scheduler};
use crate::session::{ExecRequest, ExecSession};
use crate::task::{ContainerSpec, TaskSpec};

mockall::mock! {
    /// A mock [`Containerizer`].
    #[derive(Debug)]
    pub Containerizer {}

    #[async_trait]
    impl Containerizer for Containerizer {
        fn name(&self) -> &str;
        fn capabilities(&self) -> Capabilities;
        async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId>;
        async fn start(&self, id: &ContainerId) -> Result<()>;
        async fn wait(&self, id: &ContainerId) -> Result<ExitStatus>;
        async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()>;
        async fn remove(&self, id: &ContainerId, force: bool) -> Result<()>;
        async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo>;
        async fn exec(&self, id: &ContainerId, argv: &[String], timeout: Duration) -> Result<ExecOutput>;
        async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks>;
        async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>>;
        async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream>;
        async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()>;
        async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession>;
    }
}

/// What a [`MockHook`] is asked: the [`Hook`] methods without their context, so expectations
/// are set on the task alone (`mock.expect_pre_run().returning(|task| ...)`).
pub trait HookCalls {
    /// See [`Hook::name`].
    fn name(&self) -> &str;
    /// See [`Hook::priority`].
    fn priority(&self) -> i64;
    /// See [`Hook::validate`].
    fn validate(&self) -> Result<()>;
    /// See [`Hook::pre_create`].
    fn pre_create(&self, task: &mut TaskSpec) -> Result<()>;
    /// See [`Hook::pre_run`].
    fn pre_run(&self, task: &TaskSpec) -> Result<()>;
    /// See [`Hook::post_run`].
    fn post_run(&self, task: &TaskSpec) -> Result<()>;
    /// See [`Hook::pre_stop`].
    fn pre_stop(&self, task: &TaskSpec) -> Result<()>;
    /// See [`Hook::post_stop`].
    fn post_stop(&self, task: &TaskSpec) -> Result<()>;
}

mockall::mock! {
    /// A mock [`Hook`]: set expectations through [`HookCalls`].
    #[derive(Debug)]
    pub Hook {}

    impl HookCalls for Hook {
        fn name(&self) -> &str;
        fn priority(&self) -> i64;
        fn validate(&self) -> Result<()>;
        fn pre_create(&self, task: &mut TaskSpec) -> Result<()>;
        fn pre_run(&self, task: &TaskSpec) -> Result<()>;
        fn post_run(&self, task: &TaskSpec) -> Result<()>;
        fn pre_stop(&self, task: &TaskSpec) -> Result<()>;
        fn post_stop(&self, task: &TaskSpec) -> Result<()>;
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Hook for MockHook {
    fn name(&self) -> &str {
        HookCalls::name(self)
    }
    fn priority(&self) -> i64 {
        HookCalls::priority(self)
    }
    fn validate(&self) -> Result<()> {
        HookCalls::validate(self)
    }
    async fn pre_create(&self, _: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        HookCalls::pre_create(self, task)
    }
    async fn pre_run(&self, _: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        HookCalls::pre_run(self, task)
    }
    async fn post_run(&self, _: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        HookCalls::post_run(self, task)
    }
    async fn pre_stop(&self, _: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        HookCalls::pre_stop(self, task)
    }
    async fn post_stop(&self, _: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        HookCalls::post_stop(self, task)
    }
}

mockall::mock! {
    /// A mock [`HealthChecker`].
    #[derive(Debug)]
    pub HealthChecker {}

    #[async_trait]
    impl HealthChecker for HealthChecker {
        async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome;
    }
}

mockall::mock! {
    /// A mock [`Scheduler`].
    #[derive(Debug)]
    pub Scheduler {}

    #[async_trait]
    impl Scheduler for Scheduler {
        async fn acquire(&self, request: &PlacementRequest) -> std::result::Result<Lease, Rejection>;
        async fn release(&self, lease: Lease, outcome: ReleaseOutcome);
    }
}
