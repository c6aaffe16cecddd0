//! A containerizer written from scratch: containers are Rust programs run as tokio tasks.
//!
//! [`TaskContainerizer`] keeps a table of named programs (async functions). A container's
//! `command` names one and passes it arguments; the program runs as a tokio task, writes its
//! output to an in-memory log, receives TERM as a message it may ignore, and is aborted by KILL.
//! It suits executors that run trusted in-process work (a function, a job) with the same
//! engine, hooks and health checks as real containers. The executor wraps it in hoist's
//! `TracingLayer`, which logs every call.
//!
//! Run it with `cargo run --example custom-containerizer`; the guide
//! `docs/guides/containerizer.md` walks through it, and `tests/custom_containerizer.rs` runs it
//! through the conformance suite.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use hoist::capabilities::Ports;
use hoist::layer::TracingLayer;
use hoist::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, ContainerState, Containerizer, Error,
    ErrorKind, ExecOutput, ExecutorId, ExitStatus, LogChunk, LogChunks, LogOptions, LogStream,
    OwnedContainer, Owner, Result,
};
use tokio::sync::watch;

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// What a running program sees: its arguments and environment, its output, and TERM.
pub struct Context {
    /// The arguments after the program's name.
    pub args: Vec<String>,
    /// The container's environment.
    pub env: BTreeMap<String, String>,
    output: Arc<Mutex<Vec<u8>>>,
    term: watch::Receiver<bool>,
    ignore_term: Arc<Mutex<bool>>,
}

impl Context {
    /// Appends a line to the program's output.
    pub fn println(&self, line: &str) {
        let mut output = self.output.lock().unwrap();
        output.extend_from_slice(line.as_bytes());
        output.push(b'\n');
    }

    /// From now on TERM does not end the program; only KILL does.
    pub fn ignore_term(&self) {
        *self.ignore_term.lock().unwrap() = true;
    }

    /// Resolves once TERM has been sent (for programs that ignore it and clean up first).
    pub async fn terminated(&mut self) {
        let _ = self.term.wait_for(|sent| *sent).await;
    }
}

/// A program: takes its context, returns its exit code.
pub type Program = Arc<dyn Fn(Context) -> BoxFuture<'static, i32> + Send + Sync>;

/// One container: its record, its TERM switch, its output and its exit.
struct Task {
    owner: Owner,
    spec: ContainerSpec,
    state: Mutex<ContainerState>,
    term: watch::Sender<bool>,
    exit: watch::Sender<Option<ExitStatus>>,
    output: Arc<Mutex<Vec<u8>>>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Task {
    fn new(owner: Owner, spec: ContainerSpec) -> Self {
        Task {
            owner,
            spec,
            state: Mutex::new(ContainerState::Created),
            term: watch::Sender::new(false),
            exit: watch::Sender::new(None),
            output: Arc::default(),
            abort: Mutex::new(None),
        }
    }

    fn finish(&self, status: ExitStatus) {
        *self.state.lock().unwrap() = ContainerState::Exited;
        self.exit
            .send_if_modified(|exit| exit.is_none() && exit.replace(status).is_none());
    }
}

/// Containers as programs run on tokio tasks. Nothing survives the process, so
/// `capabilities().recovery` is false and `list_owned` sees only this instance's containers.
#[derive(Default)]
pub struct TaskContainerizer {
    programs: HashMap<String, Program>,
    tasks: Mutex<HashMap<ContainerId, Arc<Task>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for TaskContainerizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut programs: Vec<_> = self.programs.keys().collect();
        programs.sort();
        f.debug_struct("TaskContainerizer")
            .field("programs", &programs)
            .finish_non_exhaustive()
    }
}

impl TaskContainerizer {
    /// A containerizer with the built-in programs: `echo TEXT...`, `exit CODE`,
    /// `say TEXT CODE` (prints, then exits with CODE), `sleep SECONDS` and `ignore-term`
    /// (prints `ignoring`, then runs until KILLed).
    pub fn with_builtins() -> Self {
        TaskContainerizer::default()
            .program("echo", |ctx| async move {
                ctx.println(&ctx.args.join(" "));
                0
            })
            .program("exit", |ctx| async move {
                ctx.args.first().and_then(|c| c.parse().ok()).unwrap_or(2)
            })
            .program("say", |ctx| async move {
                ctx.println(ctx.args.first().map_or("", String::as_str));
                ctx.args.get(1).and_then(|c| c.parse().ok()).unwrap_or(0)
            })
            .program("sleep", |ctx| async move {
                let secs: f64 = ctx.args.first().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                0
            })
            .program("ignore-term", |ctx| async move {
                ctx.ignore_term();
                ctx.println("ignoring");
                std::future::pending::<i32>().await
            })
    }

    /// Adds (or replaces) the program `name`.
    pub fn program<F, Fut>(mut self, name: &str, program: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = i32> + Send + 'static,
    {
        self.programs
            .insert(name.to_owned(), Arc::new(move |ctx| Box::pin(program(ctx))));
        self
    }

    fn task(&self, id: &ContainerId, operation: &'static str) -> Result<Arc<Task>> {
        self.tasks
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("container", id).with_operation(operation))
    }

    fn lookup(&self, argv: &[String]) -> Result<Program> {
        let name = argv
            .first()
            .ok_or_else(|| Error::invalid("the command is empty"))?;
        self.programs.get(name).cloned().ok_or_else(|| {
            Error::invalid(format!("there is no program `{name}`")).with_context("program", name)
        })
    }

    /// Runs `program` for `task`: its exit code, or TERM's signal unless it ignores TERM.
    fn run(
        &self,
        task: &Task,
        program: Program,
        args: Vec<String>,
    ) -> BoxFuture<'static, ExitStatus> {
        let ignore_term = Arc::new(Mutex::new(false));
        let ctx = Context {
            args,
            env: task.spec.env.clone(),
            output: task.output.clone(),
            term: task.term.subscribe(),
            ignore_term: ignore_term.clone(),
        };
        let mut term = task.term.subscribe();
        Box::pin(async move {
            let run = program(ctx);
            let terminated = async move {
                loop {
                    if term.wait_for(|sent| *sent).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if !*ignore_term.lock().unwrap() {
                        return;
                    }
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                code = run => ExitStatus::code(code),
                () = terminated => ExitStatus::signal(SIGTERM),
            }
        })
    }
}

#[async_trait]
impl Containerizer for TaskContainerizer {
    fn name(&self) -> &str {
        "tasks"
    }

    fn capabilities(&self) -> Capabilities {
        // What a tokio task can be: no image, no limits, no isolation. Declaring it is enough:
        // the engine refuses the rest by name before `create` is called.
        let mut caps = Capabilities::default();
        caps.exec = true;
        caps.logs = true;
        caps.network_host = true;
        caps.ports = Ports::SamePort;
        caps
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        // Called without the engine (the conformance suite, a program of its own), the
        // containerizer still refuses what it cannot honour.
        self.capabilities()
            .check(spec)
            .map_err(|e| e.with_operation("create").with_context("backend", "tasks"))?;
        self.lookup(&spec.argv())
            .map_err(|e| e.with_operation("create"))?;
        let id = ContainerId::new(format!(
            "task-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let task = Task::new(owner.clone(), spec.clone());
        self.tasks
            .lock()
            .unwrap()
            .insert(id.clone(), Arc::new(task));
        Ok(id)
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let task = self.task(id, "start")?;
        {
            let mut state = task.state.lock().unwrap();
            match *state {
                ContainerState::Created => *state = ContainerState::Running,
                ContainerState::Running => return Ok(()),
                ContainerState::Exited => {
                    return Err(
                        Error::new(ErrorKind::InvalidState, "the container has exited")
                            .with_operation("start")
                            .with_context("container", id),
                    );
                }
            }
        }
        let argv = task.spec.argv();
        let program = self.lookup(&argv)?;
        let run = self.run(&task, program, argv[1..].to_vec());
        let finished = task.clone();
        let handle = tokio::spawn(async move { finished.finish(run.await) });
        *task.abort.lock().unwrap() = Some(handle.abort_handle());
        Ok(())
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let mut exit = self.task(id, "wait")?.exit.subscribe();
        let status = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::not_found("container", id))?;
        Ok(status.expect("waited for an exit"))
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let task = self.task(id, "stop")?;
        let state = *task.state.lock().unwrap();
        match state {
            ContainerState::Exited => return Ok(()),
            ContainerState::Created => {
                task.finish(ExitStatus::signal(SIGKILL));
                return Ok(());
            }
            ContainerState::Running => {}
        }
        task.term.send_replace(true);
        let mut exit = task.exit.subscribe();
        if tokio::time::timeout(grace, exit.wait_for(Option::is_some))
            .await
            .is_err()
        {
            if let Some(abort) = task.abort.lock().unwrap().take() {
                abort.abort();
            }
            task.finish(ExitStatus::signal(SIGKILL));
        }
        Ok(())
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let Ok(task) = self.task(id, "remove") else {
            return Ok(());
        };
        if *task.state.lock().unwrap() == ContainerState::Running {
            if !force {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the container is running; remove it with force",
                )
                .with_operation("remove")
                .with_context("container", id));
            }
            self.stop(id, Duration::ZERO).await?;
        }
        self.tasks.lock().unwrap().remove(id);
        Ok(())
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let task = self.task(id, "inspect")?;
        let mut info = ContainerInfo::new(id.clone(), *task.state.lock().unwrap());
        info.addresses = vec![std::net::Ipv4Addr::LOCALHOST.into()];
        info.exit = *task.exit.borrow();
        info.details
            .insert("program".to_owned(), task.spec.command[0].clone());
        Ok(info)
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let task = self.task(id, "exec")?;
        if *task.state.lock().unwrap() != ContainerState::Running {
            return Err(
                Error::new(ErrorKind::InvalidState, "the container is not running")
                    .with_operation("exec"),
            );
        }
        let program = self.lookup(argv).map_err(|e| e.with_operation("exec"))?;
        // The exec writes to its own output, not the container's log.
        let scratch = Task::new(task.owner.clone(), task.spec.clone());
        let run = self.run(&scratch, program, argv[1..].to_vec());
        match tokio::time::timeout(timeout, run).await {
            Ok(status) => Ok(ExecOutput {
                exit_code: status.code,
                stdout: std::mem::take(&mut *scratch.output.lock().unwrap()).into(),
                stderr: Vec::new().into(),
            }),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("`{}` did not finish within {timeout:?}", argv[0]),
            )
            .with_operation("exec")
            .with_context("container", id)),
        }
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        let task = self.task(id, "logs")?;
        if options.follow {
            // Everything is in memory: following is waiting for the exit, then reading it all.
            let _ = task.exit.subscribe().wait_for(Option::is_some).await;
        }
        let output = task.output.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&output);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let skip = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
        let data = lines[skip..].concat().into_bytes().into();
        let chunk = LogChunk {
            stream: LogStream::Stdout,
            data,
        };
        Ok(Box::pin(futures::stream::iter(
            (!chunk.data.is_empty()).then_some(Ok(chunk)),
        )))
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let tasks = self.tasks.lock().unwrap();
        let mut owned: Vec<_> = tasks
            .iter()
            .filter(|(_, t)| &t.owner.executor_id == executor)
            .map(|(id, t)| OwnedContainer {
                id: id.clone(),
                owner: t.owner.clone(),
                state: *t.state.lock().unwrap(),
            })
            .collect();
        owned.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(owned)
    }
}

/// Runs two tasks on the task containerizer through the executor and returns their statuses.
pub async fn run() -> Result<Vec<hoist::TaskStatus>> {
    let backend = Arc::new(TaskContainerizer::with_builtins());
    let executor = hoist::Executor::builder(backend)
        .layer(TracingLayer)
        .build()?;
    let mut statuses = executor.statuses();
    executor.launch(hoist::TaskSpec::new(
        "greet",
        ContainerSpec::command(["echo", "hello", "from", "a", "task"]),
    ))?;
    executor.launch(hoist::TaskSpec::new(
        "fail",
        ContainerSpec::command(["exit", "3"]),
    ))?;
    let mut seen = Vec::new();
    let mut ended = 0;
    while ended < 2 {
        let status = tokio::time::timeout(Duration::from_secs(10), statuses.recv())
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, "no status within 10 s"))?
            .ok_or_else(|| Error::new(ErrorKind::Backend, "the status stream ended"))?;
        ended += usize::from(status.state.is_terminal());
        seen.push(status);
    }
    executor.shutdown(None).await;
    Ok(seen)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt().with_env_filter("debug").init();
    for status in run().await? {
        println!("{status}");
    }
    Ok(())
}
