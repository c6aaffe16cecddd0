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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use crate::container::{
    ContainerId, ContainerState, ExecOutput, ExecutorId, ExitStatus, LogOptions, LogStream, Owner,
};
use crate::containerizer::Containerizer;
use crate::error::{Error, ErrorKind, Result};
use crate::task::{ContainerSpec, TaskId};

/// SIGTERM's number on Linux.
const SIGTERM: i32 = 15;
/// SIGKILL's number on Linux.
const SIGKILL: i32 = 9;

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
fn shell_quote(text: &str) -> String {
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
    Ok(())
}

/// Create, start, inspect (running, with a pid where the backend has one), stop (the wait
/// reports TERM), inspect (exited, with the status), remove (then the id is unknown).
pub async fn lifecycle(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "lifecycle");
    let result = async {
        let id = s.create("main", &t.runs_forever).await?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.id == id,
            format!("inspect reported id {} for {id}", info.id),
        )?;
        s.ensure(
            info.state == ContainerState::Created,
            format!("a created container is {:?}, not Created", info.state),
        )?;
        s.within("start", c.start(&id)).await?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.state == ContainerState::Running,
            format!("a started container is {:?}, not Running", info.state),
        )?;
        if t.reports_pid {
            s.ensure(
                info.pid.is_some_and(|p| p > 0),
                "a running container has no pid",
            )?;
        }
        s.ensure(info.exit.is_none(), "a running container reports an exit")?;
        s.within("stop", c.stop(&id, t.timeout)).await?;
        let status = s.within("wait", c.wait(&id)).await?;
        s.ensure(
            status.signal == Some(SIGTERM),
            format!("a stopped container should end by TERM, but it {status}"),
        )?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.state == ContainerState::Exited,
            format!("a stopped container is {:?}, not Exited", info.state),
        )?;
        s.ensure(
            info.exit == Some(status),
            format!(
                "inspect reports exit {:?}, wait reported {status:?}",
                info.exit
            ),
        )?;
        s.within("remove", c.remove(&id, false)).await?;
        let err = c.inspect(&id).await.err();
        s.ensure(
            err.as_ref()
                .is_some_and(|e| e.kind() == ErrorKind::NotFound),
            format!("inspect after remove should be NotFound, got {err:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// `stop` twice, `stop` on an exited container, and `remove` twice all succeed; a removed
/// container is gone from `list_owned`.
pub async fn stop_and_remove_are_idempotent(
    c: &dyn Containerizer,
    t: &ConformanceTarget,
) -> Result<()> {
    let s = Scratch::new(c, t, "stop_and_remove_are_idempotent");
    let result = async {
        let id = s.create("twice", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        s.within("stop", c.stop(&id, t.timeout)).await?;
        s.within("second stop", c.stop(&id, t.timeout)).await?;
        let first = s.within("wait", c.wait(&id)).await?;
        s.within("remove", c.remove(&id, false)).await?;
        s.within("second remove", c.remove(&id, false)).await?;
        s.within("forced remove of a removed container", c.remove(&id, true))
            .await?;
        s.ensure(
            first.signal == Some(SIGTERM),
            format!("the stopped container {first}"),
        )?;

        let exited = s.create("exited", &(t.exits_with)(0)).await?;
        s.within("start", c.start(&exited)).await?;
        let status = s.within("wait", c.wait(&exited)).await?;
        s.within("stop of an exited container", c.stop(&exited, t.grace))
            .await?;
        let again = s.within("wait after stop", c.wait(&exited)).await?;
        s.ensure(
            status == again,
            format!("stopping an exited container changed its status from {status:?} to {again:?}"),
        )?;
        s.within("remove of an exited container", c.remove(&exited, false))
            .await?;
        s.within("second remove", c.remove(&exited, false)).await?;

        let running = s.create("forced", &t.runs_forever).await?;
        s.within("start", c.start(&running)).await?;
        s.within(
            "forced remove of a running container",
            c.remove(&running, true),
        )
        .await?;
        let err = c.inspect(&running).await.err();
        s.ensure(
            err.as_ref()
                .is_some_and(|e| e.kind() == ErrorKind::NotFound),
            format!("inspect after a forced remove should be NotFound, got {err:?}"),
        )?;
        let listed = s.within("list_owned", c.list_owned(&s.executor)).await?;
        s.ensure(
            listed.is_empty(),
            format!("removed containers are still listed: {listed:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// Waits started before the exit all return the same status; a wait after the exit returns
/// at once with it.
pub async fn wait_after_exit_and_concurrent_waits(
    c: &dyn Containerizer,
    t: &ConformanceTarget,
) -> Result<()> {
    let s = Scratch::new(c, t, "wait_after_exit_and_concurrent_waits");
    let result = async {
        let id = s.create("waited", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        let waits = futures::future::join_all((0..4).map(|_| c.wait(&id)));
        let stop = async {
            // Let the waits register before the container ends.
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.stop(&id, t.timeout).await
        };
        let (statuses, stopped) = s
            .within("concurrent waits", async {
                Ok(futures::join!(waits, stop))
            })
            .await?;
        stopped?;
        let statuses: Vec<ExitStatus> = statuses.into_iter().collect::<Result<_>>()?;
        s.ensure(
            statuses.windows(2).all(|w| w[0] == w[1]),
            format!("concurrent waits disagree: {statuses:?}"),
        )?;
        let at_once = tokio::time::timeout(Duration::from_secs(2), c.wait(&id)).await;
        match at_once {
            Ok(Ok(status)) => s.ensure(
                status == statuses[0],
                format!(
                    "a wait after the exit gave {status:?}, not {:?}",
                    statuses[0]
                ),
            ),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(s.fail("a wait after the exit did not return at once")),
        }
    }
    .await;
    s.finish(result).await
}

/// A container exiting 0 and one exiting 3 report exactly those codes and no signal.
pub async fn exit_codes(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "exit_codes");
    let result = async {
        for code in [0, 3] {
            let id = s
                .create(&format!("exit-{code}"), &(t.exits_with)(code))
                .await?;
            s.within("start", c.start(&id)).await?;
            let status = s.within("wait", c.wait(&id)).await?;
            s.ensure(
                status.code == Some(code) && status.signal.is_none(),
                format!("a container exiting {code} reported {status:?}"),
            )?;
            s.ensure(
                status.success() == (code == 0),
                format!("success() is wrong for {status:?}"),
            )?;
        }
        Ok(())
    }
    .await;
    s.finish(result).await
}

/// A container that honours TERM ends by TERM well before a long grace runs out.
pub async fn term_is_honoured(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "term_is_honoured");
    let result = async {
        let id = s.create("term", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        let long_grace = t.timeout * 2;
        s.within("stop", c.stop(&id, long_grace)).await?;
        let status = s.within("wait", c.wait(&id)).await?;
        s.ensure(
            status.signal == Some(SIGTERM),
            format!("a container honouring TERM should end by TERM, but it {status}"),
        )
    }
    .await;
    s.finish(result).await
}

/// A container that ignores TERM is KILLed, and not before the grace has passed.
pub async fn kill_after_grace(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "kill_after_grace");
    let result = async {
        let id = s.create("stubborn", &t.ignores_term).await?;
        s.within("start", c.start(&id)).await?;
        if let Some(marker) = &t.ignores_term_ready {
            s.wait_for_output(&id, marker).await?;
        }
        let started = Instant::now();
        s.within("stop", c.stop(&id, t.grace)).await?;
        let took = started.elapsed();
        let status = s.within("wait", c.wait(&id)).await?;
        s.ensure(
            status.signal == Some(SIGKILL),
            format!("a container ignoring TERM should end by KILL, but it {status}"),
        )?;
        s.ensure(
            took >= t.grace,
            format!(
                "stop returned after {took:?}, before the grace of {:?}",
                t.grace
            ),
        )
    }
    .await;
    s.finish(result).await
}

/// `exec` returns the command's output and exit code, and a command outliving its timeout is
/// an [`ErrorKind::Timeout`] error. Backends without exec answer [`ErrorKind::Unsupported`].
pub async fn exec(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "exec");
    let result = async {
        let id = s.create("exec", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        if !c.capabilities().exec {
            let err = c.exec(&id, &(t.exec_prints)("x", 0), t.timeout).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("exec without the capability should be Unsupported, got {err:?}"),
            );
        }
        for code in [0, 4] {
            let argv = (t.exec_prints)("exec says hi", code);
            let out: ExecOutput = s.within("exec", c.exec(&id, &argv, t.timeout)).await?;
            s.ensure(
                out.exit_code == Some(code),
                format!("exec exiting {code} reported {:?}", out.exit_code),
            )?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            s.ensure(
                stdout.contains("exec says hi"),
                format!("exec stdout is {stdout:?}, without what the command printed"),
            )?;
        }
        let short = Duration::from_millis(300);
        let started = Instant::now();
        let hung = s
            .within("exec with a timeout", async {
                Ok(c.exec(&id, &t.exec_hangs, short).await)
            })
            .await?;
        s.ensure(
            matches!(&hung, Err(e) if e.kind() == ErrorKind::Timeout),
            format!("an exec past its timeout should be a Timeout error, got {hung:?}"),
        )?;
        s.ensure(
            started.elapsed() >= short,
            format!(
                "exec timed out after {:?}, before its timeout of {short:?}",
                started.elapsed()
            ),
        )?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.state == ContainerState::Running,
            "a timed-out exec must not end its container",
        )
    }
    .await;
    s.finish(result).await
}

/// What a container printed is in `logs`, with and without `follow` (which ends once the
/// container has exited). Backends without logs answer [`ErrorKind::Unsupported`].
pub async fn logs(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "logs");
    let result = async {
        let id = s
            .create("printer", &(t.prints)("hello from the container"))
            .await?;
        s.within("start", c.start(&id)).await?;
        s.within("wait", c.wait(&id)).await?;
        if !c.capabilities().logs {
            let err = c.logs(&id, LogOptions::default()).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("logs without the capability should be Unsupported, got {err:?}"),
            );
        }
        for follow in [false, true] {
            let options = LogOptions { follow, tail: None };
            let stdout = s.within("logs", s.read_stdout(&id, options)).await?;
            s.ensure(
                stdout.contains("hello from the container"),
                format!("logs (follow: {follow}) hold {stdout:?}, not what the container printed"),
            )?;
        }
        Ok(())
    }
    .await;
    s.finish(result).await
}

/// `list_owned` finds the containers of its executor, running or exited, and neither another
/// executor's nor removed ones.
pub async fn list_owned(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "list_owned");
    let result = async {
        let running = s.create("running", &t.runs_forever).await?;
        s.within("start", c.start(&running)).await?;
        let exited = s.create("exited", &(t.exits_with)(0)).await?;
        s.within("start", c.start(&exited)).await?;
        s.within("wait", c.wait(&exited)).await?;
        let removed = s.create("removed", &(t.exits_with)(0)).await?;
        s.within("remove", c.remove(&removed, true)).await?;
        let other_executor = ExecutorId::new(format!("{}-other", s.executor));
        let other_owner = Owner {
            executor_id: other_executor.clone(),
            task_id: TaskId::new("foreign"),
        };
        let foreign = s.create_as(&other_owner, &(t.exits_with)(0)).await?;

        let listed = s.within("list_owned", c.list_owned(&s.executor)).await?;
        let ids: BTreeSet<_> = listed.iter().map(|o| o.id.clone()).collect();
        let expected: BTreeSet<_> = [running.clone(), exited.clone()].into_iter().collect();
        s.ensure(
            ids == expected,
            format!("list_owned found {ids:?}, expected {expected:?}"),
        )?;
        for owned in &listed {
            s.ensure(
                owned.owner.executor_id == s.executor,
                format!("list_owned reports owner {:?}", owned.owner),
            )?;
            let (task, state) = if owned.id == running {
                ("running", ContainerState::Running)
            } else {
                ("exited", ContainerState::Exited)
            };
            s.ensure(
                owned.owner.task_id.as_str() == task && owned.state == state,
                format!("list_owned reports {owned:?}, expected task {task} in state {state:?}"),
            )?;
        }
        let theirs = s
            .within("list_owned", c.list_owned(&other_executor))
            .await?;
        s.ensure(
            theirs.len() == 1 && theirs[0].id == foreign,
            format!("the other executor's list_owned found {theirs:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// Every method naming an unknown container answers [`ErrorKind::NotFound`], except `remove`,
/// which is idempotent and succeeds.
pub async fn unknown_ids_are_not_found(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "unknown_ids_are_not_found");
    let result = async {
        let id = ContainerId::new(format!("hoist-conformance-missing-{}", unique()));
        let argv = (t.exec_prints)("x", 0);
        let outcomes: Vec<(&str, Option<Error>)> = vec![
            ("start", c.start(&id).await.err()),
            ("wait", c.wait(&id).await.err()),
            ("stop", c.stop(&id, t.grace).await.err()),
            ("inspect", c.inspect(&id).await.err()),
            ("exec", c.exec(&id, &argv, t.timeout).await.err()),
            ("logs", c.logs(&id, LogOptions::default()).await.err()),
        ];
        for (method, err) in outcomes {
            s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::NotFound),
                format!("{method} of an unknown container should be NotFound, got {err:?}"),
            )?;
        }
        s.within("remove of an unknown container", c.remove(&id, true))
            .await
    }
    .await;
    s.finish(result).await
}

fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// One check's scratch space: a fresh executor id, the containers it created (removed at the
/// end whatever happened) and the helpers that turn surprises into errors naming the check.
struct Scratch<'a> {
    c: &'a dyn Containerizer,
    t: &'a ConformanceTarget,
    check: &'static str,
    executor: ExecutorId,
    created: Mutex<Vec<ContainerId>>,
}

impl<'a> Scratch<'a> {
    fn new(c: &'a dyn Containerizer, t: &'a ConformanceTarget, check: &'static str) -> Self {
        Scratch {
            c,
            t,
            check,
            executor: ExecutorId::new(format!("conformance-{}", unique())),
            created: Mutex::new(Vec::new()),
        }
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Backend, message)
            .with_operation("conformance")
            .with_context("check", self.check)
            .with_context("backend", self.c.name())
    }

    fn ensure(&self, condition: bool, message: impl Into<String>) -> Result<()> {
        if condition {
            Ok(())
        } else {
            Err(self.fail(message))
        }
    }

    /// Runs `fut` under the target's deadline; its error gains the check's name.
    async fn within<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.t.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e
                .with_context("check", self.check)
                .with_context("step", what)),
            Err(_) => Err(self.fail(format!("{what} did not finish within {:?}", self.t.timeout))),
        }
    }

    async fn create(&self, task: &str, spec: &ContainerSpec) -> Result<ContainerId> {
        let owner = Owner {
            executor_id: self.executor.clone(),
            task_id: TaskId::new(task),
        };
        self.create_as(&owner, spec).await
    }

    async fn create_as(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let id = self.within("create", self.c.create(owner, spec)).await?;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        Ok(id)
    }

    /// Everything the container wrote on stdout, read with `options`.
    async fn read_stdout(&self, id: &ContainerId, options: LogOptions) -> Result<String> {
        let mut chunks = self.c.logs(id, options).await?;
        let mut out = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if chunk.stream == LogStream::Stdout {
                out.extend_from_slice(&chunk.data);
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Polls the logs until `marker` shows on stdout.
    async fn wait_for_output(&self, id: &ContainerId, marker: &str) -> Result<()> {
        let deadline = Instant::now() + self.t.timeout;
        loop {
            let stdout = self
                .within("logs", self.read_stdout(id, LogOptions::default()))
                .await?;
            if stdout.contains(marker) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.fail(format!("the container never printed {marker:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes every container the check created, then returns the check's result (or the
    /// first cleanup failure when the check itself passed).
    async fn finish(self, result: Result<()>) -> Result<()> {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        let mut cleanup = Ok(());
        for id in created {
            let removed = tokio::time::timeout(self.t.timeout, self.c.remove(&id, true)).await;
            let removed = match removed {
                Ok(r) => r,
                Err(_) => Err(self.fail(format!(
                    "remove of {id} did not finish within {:?}",
                    self.t.timeout
                ))),
            };
            if let (Err(e), Ok(())) = (removed, &cleanup) {
                cleanup = Err(e
                    .with_context("check", self.check)
                    .with_context("step", "cleanup"));
            }
        }
        result.and(cleanup)
    }
}
