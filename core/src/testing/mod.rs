//! Test support (feature `testing`): [`FakeContainerizer`], the [`conformance`] suite every
//! containerizer runs, and mockall mocks of the traits.

pub mod conformance;
mod fake;
mod mocks;

pub use conformance::ConformanceTarget;
pub use fake::{
    Call, ExecDurationFn, ExecFn, FakeContainerizer, SIGKILL, SIGTERM, Script, ScriptFn,
};
pub use mocks::{MockContainerizer, MockHealthChecker, MockHook, MockScheduler};
