//! Test support (feature `testing`): [`FakeContainerizer`], the [`conformance`] suite every
//! containerizer runs, mockall mocks of the traits, [`cargo_build`] for tests that run the
//! workspace's own programs, and [`SmallDisk`] (Linux) for tests of a full disk.

mod cargo;
pub mod conformance;
#[cfg(target_os = "linux")]
mod disk;
mod fake;
mod mocks;

pub use cargo::{cargo_build, target_profile_dir};
pub use conformance::ConformanceTarget;
#[cfg(target_os = "linux")]
pub use disk::SmallDisk;
pub use fake::{
    Call, ExecDurationFn, ExecFn, FakeContainerizer, SIGKILL, SIGTERM, Script, ScriptFn,
};
pub use mocks::{HookCalls, MockContainerizer, MockHealthChecker, MockHook, MockScheduler};
