//! `hoist-mesos-executor`: a drop-in for `mesos-docker-executor` and go-mesos-executor.
//!
//! Installed at the agent's Docker executor path (or named as a custom executor), it takes the
//! agent's flags and `MESOS_*` environment, go-mesos-executor's flags and configuration file,
//! subscribes to the agent and runs its tasks on Docker, as local processes, or sandboxed
//! (namespaces and cgroups through runc) until SHUTDOWN.
//!
//! Exit codes: 0 after SHUTDOWN or SIGTERM/SIGINT/SIGHUP (every task killed and reported), 1
//! when the agent was lost or did not come back in time, 2 for a bad flag, configuration file
//! or environment, 3 when the backend (Docker, the cgroup tree) cannot be used. Errors are one
//! line on standard error.

mod config;
mod flags;
mod hooks;
#[path = "../metrics.rs"]
mod metrics;

use std::process::ExitCode;
use std::sync::Arc;

use hoist::mesos::{AgentEnv, DriverOptions, Exit, MesosDriver};
use hoist::process::{Cgroups, ProcessContainerizer, ResourcePolicy};
use hoist::sandbox::SandboxContainerizer;
use hoist::{Containerizer, Executor};
use tokio::signal::unix::{SignalKind, signal};

use config::{Backend, Config, ResourcesChoice};
use flags::{Flags, Parsed};

/// Why the program stops before serving: a message and the exit code.
struct Failure(String, u8);

impl Failure {
    /// Input the user gave: a flag, the file, the environment.
    fn input(message: impl Into<String>) -> Self {
        Failure(message.into(), 2)
    }

    /// A backend that cannot be used.
    fn backend(message: impl Into<String>) -> Self {
        Failure(message.into(), 3)
    }
}

fn main() -> ExitCode {
    let flags = match flags::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(flags)) => flags,
        Ok(Parsed::Help) => {
            print!("{}", flags::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("hoist-mesos-executor {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(Failure::input(e)),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(Failure(
                format!("could not start the async runtime: {e}"),
                1,
            ));
        }
    };
    match runtime.block_on(run(*flags)) {
        Ok(Exit::Shutdown | Exit::Stopped) => ExitCode::SUCCESS,
        Ok(exit @ (Exit::AgentLost | Exit::RecoveryTimedOut)) => {
            fail(Failure(format!("gave up on the agent: {exit:?}"), 1))
        }
        Err(failure) => fail(failure),
    }
}

fn fail(Failure(message, code): Failure) -> ExitCode {
    eprintln!("hoist-mesos-executor: {message}");
    ExitCode::from(code)
}

fn init_tracing(config: &Config, quiet: bool) {
    let level = if quiet {
        "off"
    } else if config.debug {
        "info,hoist=debug,hoist_core=debug,hoist_mesos=debug,hoist_process=debug,\
         hoist_docker=debug,hoist_sandbox=debug,hoist_hooks=debug,hoist_mesos_executor=debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Under an agent, standard error is the sandbox's `stderr` file: no colours there.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn run(flags: Flags) -> Result<Exit, Failure> {
    let loaded = config::load(&config::search_dirs(), &flags.overrides).map_err(Failure::input)?;
    let config = loaded.config;
    init_tracing(&config, flags.quiet);
    match &loaded.path {
        Some(path) => tracing::info!(config = %path.display(), "configuration read"),
        None => tracing::info!(
            "no config.{{json,toml,yaml,yml}} in /etc/mesos-executor or the working directory; using the defaults"
        ),
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if config.registering_retry.is_some() {
        tracing::warn!(
            "registering_retry has no effect: the agent's MESOS_SUBSCRIPTION_BACKOFF_MAX is used"
        );
    }
    if config.docker_exec_poll_interval.is_some() {
        tracing::warn!(
            "docker_exec_poll_interval has no effect: exec waits for the command's exit"
        );
    }
    for flag in &flags.not_used {
        tracing::info!(%flag, "flag accepted, not used");
    }
    let env = AgentEnv::from_env().map_err(|e| Failure::input(e.to_string()))?;
    let containerizer = containerizer(&config, &flags, &env).await?;
    let executor_id = flags
        .container
        .clone()
        .unwrap_or_else(|| env.executor_id.value.clone());
    let mut builder = Executor::builder(containerizer).executor_id(executor_id.as_str());
    for hook in hooks::build(&config).map_err(Failure::input)? {
        builder = builder.hook(hook);
    }
    let mut registry = prometheus_client::registry::Registry::default();
    if flags.metrics_address.is_some() {
        builder = builder.metrics(&mut registry);
    }
    let executor = builder.build().map_err(|e| Failure::input(e.to_string()))?;
    let statuses = executor.statuses();
    let options = DriverOptions {
        default_kill_grace: flags.stop_timeout,
        // A process sees the host's files: the sandbox is already where it is.
        sandbox_mount: (config.containerizer != Backend::Process)
            .then(|| {
                flags
                    .sandbox_directory
                    .clone()
                    .zip(flags.mapped_directory.clone())
            })
            .flatten(),
        task_environment: flags.task_environment.clone(),
        ..DriverOptions::default()
    };
    tracing::info!(agent = %env.agent_endpoint, executor = %env.executor_id, backend = ?config.containerizer, "starting");
    let mut driver = MesosDriver::new(env, executor, statuses).options(options);
    let _metrics = match flags.metrics_address {
        Some(addr) => {
            driver = driver.metrics(&mut registry);
            let server = metrics::MetricsServer::start(addr, Arc::new(registry))
                .await
                .map_err(|e| Failure::input(e.to_string()))?;
            tracing::info!(address = %server.addr(), "metrics on /metrics");
            Some(server)
        }
        None => None,
    };
    let stop = driver.stop_token();
    let mut signals = Vec::new();
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        signals.push(signal(kind).map_err(|e| Failure(format!("cannot watch signals: {e}"), 1))?);
    }
    let run = driver.run();
    tokio::pin!(run);
    let signalled = async {
        let waits = signals.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
    };
    tokio::select! {
        exit = &mut run => return exit.map_err(|e| Failure(e.to_string(), 1)),
        () = signalled => {
            tracing::info!("signalled: killing every task");
            stop.cancel();
        }
    }
    run.await.map_err(|e| Failure(e.to_string(), 1))
}

async fn containerizer(
    config: &Config,
    flags: &Flags,
    env: &AgentEnv,
) -> Result<Arc<dyn Containerizer>, Failure> {
    match config.containerizer {
        Backend::Docker => {
            let mut docker = hoist::docker::DockerConfig::from_env();
            if let Some(socket) = &flags.docker_socket {
                docker = docker.host(format!("unix://{}", socket.display()));
            }
            let docker = hoist::docker::DockerContainerizer::connect(docker)
                .await
                .map_err(|e| Failure::backend(format!("cannot reach the Docker Engine: {e}")))?;
            Ok(Arc::new(docker))
        }
        Backend::Process => {
            let policy = resources_policy(config.process_resources)?;
            let state = env
                .sandbox
                .clone()
                .or_else(|| flags.sandbox_directory.clone())
                .unwrap_or_else(std::env::temp_dir)
                .join("hoist-process");
            let process = ProcessContainerizer::new(&state)
                .map_err(|e| Failure::backend(format!("cannot start the process backend: {e}")))?
                .with_resources(policy);
            Ok(Arc::new(process))
        }
        Backend::Sandbox => {
            let mut sandbox = SandboxContainerizer::new(&config.sandbox_state_dir)
                .map_err(|e| Failure::backend(format!("cannot start the sandbox backend: {e}")))?;
            match &config.sandbox_rootfs {
                Some(rootfs) => sandbox = sandbox.with_default_image(rootfs.display().to_string()),
                None => tracing::warn!(
                    "sandbox.rootfs is not set: a task without an image will fail to launch"
                ),
            }
            tracing::info!(
                state = %config.sandbox_state_dir.display(),
                "sandbox: cpus and mem enforced (cgroup v{})",
                sandbox.cgroups().version()
            );
            Ok(Arc::new(sandbox))
        }
    }
}

/// The process backend's resources policy, said at start-up.
fn resources_policy(choice: ResourcesChoice) -> Result<ResourcePolicy, Failure> {
    let policy = match choice {
        ResourcesChoice::Auto => {
            let (policy, why_not) = ResourcePolicy::enforce_or_advisory();
            if let Some(e) = why_not {
                tracing::warn!("process.resources: advisory, cpus and mem are not enforced ({e})");
            }
            policy
        }
        ResourcesChoice::Enforce => ResourcePolicy::Enforce(
            Cgroups::detect()
                .map_err(|e| Failure::backend(format!("process.resources is enforce, but {e}")))?,
        ),
        ResourcesChoice::Advisory => ResourcePolicy::Advisory,
        ResourcesChoice::Refuse => ResourcePolicy::Refuse,
    };
    match &policy {
        ResourcePolicy::Enforce(cgroups) => tracing::info!(
            "process.resources: enforce (cgroup v{} memory and CPU limits)",
            cgroups.version()
        ),
        other => tracing::info!("process.resources: {}", other.name()),
    }
    Ok(policy)
}
