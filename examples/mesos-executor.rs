//! A Mesos executor in a few lines: read the agent's environment, build an executor on the
//! process backend, and let the driver serve the agent until SHUTDOWN.
//!
//! Run it as a custom executor (`ExecutorInfo.command` naming this program): the agent gives it
//! `MESOS_FRAMEWORK_ID`, `MESOS_EXECUTOR_ID`, `MESOS_AGENT_ENDPOINT` and the rest. For the
//! complete drop-in (the Docker executor's flags, go-mesos-executor's configuration, Docker or
//! processes), install `hoist-mesos-executor` with `cargo install --path cli`.

use std::process::ExitCode;
use std::sync::Arc;

use hoist::Executor;
use hoist::mesos::{AgentEnv, Exit, MesosDriver};
use hoist::process::{ProcessContainerizer, ResourcePolicy};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match serve().await {
        Ok(Exit::Shutdown | Exit::Stopped) => ExitCode::SUCCESS,
        Ok(other) => {
            eprintln!("mesos-executor: gave up on the agent: {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("mesos-executor: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> hoist::Result<Exit> {
    // The ids, the agent's address and its timeouts, from the MESOS_* variables.
    let env = AgentEnv::from_env()?;
    // Tasks run as processes in the sandbox; their cpus and mem are enforced with cgroups
    // where this executor may write them, and only recorded otherwise.
    let state = env.sandbox.clone().unwrap_or_else(std::env::temp_dir);
    let (resources, why_not) = ResourcePolicy::enforce_or_advisory();
    if let Some(e) = why_not {
        tracing::warn!("cpus and mem are not enforced: {e}");
    }
    let processes = ProcessContainerizer::new(state.join("tasks"))?.with_resources(resources);
    let executor = Executor::builder(Arc::new(processes))
        .executor_id(env.executor_id.value.as_str())
        .build()?;
    // The driver subscribes, runs what the agent launches and reports every status until
    // the agent acknowledges it.
    let statuses = executor.statuses();
    MesosDriver::new(env, executor, statuses).run().await
}
