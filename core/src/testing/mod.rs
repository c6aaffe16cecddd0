//! Test support (feature `testing`): [`FakeContainerizer`], the [`conformance`] suite every
//! containerizer runs, mockall mocks of the traits, and [`cargo_build`] for tests that run the
//! workspace's own programs.

mod cargo;
pub mod conformance;
mod fake;
mod mocks;

pub use cargo::{cargo_build, target_profile_dir};
pub use conformance::ConformanceTarget;
pub use fake::{
    Call, ExecDurationFn, ExecFn, FakeContainerizer, SIGKILL, SIGTERM, Script, ScriptFn,
};
pub use mocks::{HookCalls, MockContainerizer, MockHealthChecker, MockHook, MockScheduler};
