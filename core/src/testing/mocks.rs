//! mockall mocks of the core traits, for unit tests that need exact expectations.

use std::time::Duration;

use async_trait::async_trait;

use crate::container::{
    Capabilities, ContainerId, ContainerInfo, ExecOutput, ExecutorId, ExitStatus, LogOptions,
    OwnedContainer, Owner,
};
use crate::containerizer::{Containerizer, LogChunks};
use crate::error::Result;
use crate::health::{HealthChecker, ProbeOutcome, ProbeTarget};
use crate::hook::{Hook, HookContext};
use crate::scheduler::{Lease, PlacementRequest, Rejection, ReleaseOutcome, Scheduler};
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
    }
}

mockall::mock! {
    /// A mock [`Hook`].
    #[derive(Debug)]
    pub Hook {}

    #[async_trait]
    impl Hook for Hook {
        fn name(&self) -> &str;
        fn priority(&self) -> i64;
        fn validate(&self) -> Result<()>;
        async fn pre_create<'c>(&self, ctx: &mut HookContext<'c>, task: &mut TaskSpec) -> Result<()>;
        async fn pre_run<'c>(&self, ctx: &mut HookContext<'c>, task: &TaskSpec) -> Result<()>;
        async fn post_run<'c>(&self, ctx: &mut HookContext<'c>, task: &TaskSpec) -> Result<()>;
        async fn pre_stop<'c>(&self, ctx: &mut HookContext<'c>, task: &TaskSpec) -> Result<()>;
        async fn post_stop<'c>(&self, ctx: &mut HookContext<'c>, task: &TaskSpec) -> Result<()>;
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
