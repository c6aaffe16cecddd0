//! The containerizer conformance suite: behaviour every [`Containerizer`] must show.
//!
//! Each check is an async function taking the backend under test and a [`ConformanceTarget`]
//! that says how to express "a command" on that backend (a process, a busybox image, a pod).
//! A check returns `Ok(())` or an error of kind [`ErrorKind::Backend`] whose context names the
//! check and whose message says what was expected and what happened. Checks always remove the
//! containers they created, whether they pass or not, and bound every wait by
//! [`ConformanceTarget::timeout`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> hoist_core::Result<()> {
//! use hoist_core::testing::{FakeContainerizer, conformance};
//!
//! let fake = FakeContainerizer::new();
//! let target = fake.conformance_target();
//! conformance::run_all(&fake, &target).await?;
//! # Ok(()) }
//! ```

mod io;
mod lifecycle;
mod observe;
mod ownership;
mod scratch;

use std::sync::Arc;
use std::time::Duration;

use crate::containerizer::Containerizer;
use crate::error::Result;
use crate::task::ContainerSpec;

pub use io::{exec, logs};
pub use lifecycle::{
    exit_codes, kill_after_grace, lifecycle, stop_and_remove_are_idempotent, term_is_honoured,
    wait_after_exit_and_concurrent_waits,
};
pub use observe::{interactive_sessions, signals_reach_the_process, stats_report_usage};
pub use ownership::{list_owned, unknown_ids_are_not_found};
use scratch::Scratch;

/// SIGTERM's number on Linux.
pub(super) const SIGTERM: i32 = 15;
/// SIGKILL's number on Linux.
pub(super) const SIGKILL: i32 = 9;

/// Builds a container spec that exits with the given code.
pub type ExitSpecFn = Arc<dyn Fn(i32) -> ContainerSpec + Send + Sync>;

/// Builds a container spec that prints the given text.
pub type PrintSpecFn = Arc<dyn Fn(&str) -> ContainerSpec + Send + Sync>;

/// Builds an exec argv that prints `text` (and a newline) on stdout and exits with `code`.
pub type ExecArgvFn = Arc<dyn Fn(&str, i32) -> Vec<String> + Send + Sync>;

/// How to express the suite's containers on one backend.
#[derive(Clone)]
pub struct ConformanceTarget {
    /// Runs until stopped and ends on TERM.
    pub runs_forever: ContainerSpec,
    /// Runs until stopped and ignores TERM, so only KILL ends it.
    pub ignores_term: ContainerSpec,
    /// A line [`ConformanceTarget::ignores_term`] prints on stdout once it ignores TERM; the
    /// suite waits for it in the logs before stopping. `None` when the backend needs no wait.
    pub ignores_term_ready: Option<String>,
    /// Exits on its own with the given code.
    pub exits_with: ExitSpecFn,
    /// Prints the given text and a newline on stdout, then exits 0.
    pub prints: PrintSpecFn,
    /// An exec argv (run in a [`ConformanceTarget::runs_forever`] container) printing a text
    /// and exiting with a code.
    pub exec_prints: ExecArgvFn,
    /// An exec argv that does not finish on its own.
    pub exec_hangs: Vec<String>,
    /// Runs until stopped, prints `ready` once it has set its trap, then `hup` on each SIGHUP.
    /// `None` leaves out the check that a signal reaches the container's process.
    pub traps_hup: Option<ContainerSpec>,
    /// A shell reading commands from its standard input (`["/bin/sh"]`), run by
    /// `exec_stream` in a [`ConformanceTarget::runs_forever`] container. `None` leaves out the
    /// interactive session check.
    pub interactive_shell: Option<Vec<String>>,
    /// Whether `inspect` reports a host pid for a running container.
    pub reports_pid: bool,
    /// The grace the suite gives a TERM-ignoring container before KILL.
    pub grace: Duration,
    /// The deadline of every wait in the suite.
    pub timeout: Duration,
}

impl std::fmt::Debug for ConformanceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConformanceTarget")
            .field("runs_forever", &self.runs_forever)
            .field("ignores_term", &self.ignores_term)
            .field("exec_hangs", &self.exec_hangs)
            .field("reports_pid", &self.reports_pid)
            .field("grace", &self.grace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ConformanceTarget {
    /// A target whose containers are POSIX shell scripts run by `shell` (for example
    /// `["/bin/sh"]`, or `["/bin/busybox", "sh"]` in a busybox image), with `sleep` on its path.
    pub fn posix_shell<I, S>(shell: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let shell: Arc<Vec<String>> = Arc::new(shell.into_iter().map(Into::into).collect());
        let script = {
            let shell = shell.clone();
            move |body: String| -> Vec<String> {
                let mut argv = (*shell).clone();
                argv.push("-c".to_owned());
                argv.push(body);
                argv
            }
        };
        let script = Arc::new(script);
        let spec = {
            let script = script.clone();
            move |body: String| ContainerSpec::command(script(body))
        };
        let (s1, s2, s3) = (script.clone(), spec.clone(), spec.clone());
        ConformanceTarget {
            runs_forever: spec("exec sleep 1000".to_owned()),
            ignores_term: spec("trap '' TERM; echo ignoring; exec sleep 1000".to_owned()),
            ignores_term_ready: Some("ignoring".to_owned()),
            exits_with: Arc::new(move |code| s2(format!("exit {code}"))),
            prints: Arc::new(move |text| s3(format!("echo {}", shell_quote(text)))),
            exec_prints: Arc::new(move |text, code| {
                s1(format!("echo {}; exit {code}", shell_quote(text)))
            }),
            exec_hangs: script("exec sleep 1000".to_owned()),
            // `sleep` in the background and `wait`: the shell then runs its trap at once.
            traps_hup: Some(spec(
                "trap 'echo hup' HUP; echo ready; while true; do sleep 0.1 & wait $!; done"
                    .to_owned(),
            )),
            interactive_shell: Some((*shell).clone()),
            reports_pid: true,
            grace: Duration::from_millis(500),
            timeout: Duration::from_secs(20),
        }
    }

    /// Sets `image` on every container spec of the target.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        let image = image.into();
        self.runs_forever.image = Some(image.clone());
        self.ignores_term.image = Some(image.clone());
        if let Some(traps) = &mut self.traps_hup {
            traps.image = Some(image.clone());
        }
        let (exits, prints) = (self.exits_with.clone(), self.prints.clone());
        let i1 = image.clone();
        self.exits_with = Arc::new(move |code| ContainerSpec {
            image: Some(i1.clone()),
            ..exits(code)
        });
        self.prints = Arc::new(move |text| ContainerSpec {
            image: Some(image.clone()),
            ..prints(text)
        });
        self
    }
}

/// Quotes `text` for a POSIX shell.
pub(super) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs every check in turn and returns the first failure.
pub async fn run_all(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    lifecycle(c, t).await?;
    stop_and_remove_are_idempotent(c, t).await?;
    wait_after_exit_and_concurrent_waits(c, t).await?;
    exit_codes(c, t).await?;
    term_is_honoured(c, t).await?;
    kill_after_grace(c, t).await?;
    exec(c, t).await?;
    logs(c, t).await?;
    list_owned(c, t).await?;
    unknown_ids_are_not_found(c, t).await?;
    stats_report_usage(c, t).await?;
    signals_reach_the_process(c, t).await?;
    interactive_sessions(c, t).await?;
    Ok(())
}
