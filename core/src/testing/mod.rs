//! Test support (feature `testing`): [`FakeContainerizer`], and mockall mocks of the traits.

mod fake;
mod mocks;

pub use fake::{Call, ExecFn, FakeContainerizer, SIGKILL, SIGTERM, Script};
pub use mocks::{MockContainerizer, MockHealthChecker, MockHook, MockScheduler};
