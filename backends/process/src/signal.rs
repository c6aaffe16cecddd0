//! Signals to a container's process group.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Sends `signal` to the process group led by `pid` (every container process leads its own).
/// A group that no longer exists is not an error: the container has already gone.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pid, ?signal, error = %e, "could not signal the process group"),
    }
}
