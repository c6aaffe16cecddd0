//! A local executor: reads a task file and runs its tasks as local processes, with two small
//! hooks, printing every status change as one line. Ctrl-C (or `--for`) kills every task cleanly.
//!
//! ```text
//! cargo run --example local-executor -- examples/tasks/demo.yaml --for 15s
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use hoist::process::ProcessContainerizer;
use hoist::{Executor, Hook, HookContext, Result, TaskFile, TaskSpec};

/// Prints each hook phase a task goes through.
#[derive(Debug)]
struct PrintPhases;

#[async_trait]
impl Hook for PrintPhases {
    fn name(&self) -> &str {
        "print-phases"
    }

    async fn post_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let info = ctx
            .containerizer
            .inspect(ctx.container_id.expect("started"))
            .await?;
        println!(
            "  [hook] {} started as pid {}",
            task.id,
            info.pid.unwrap_or_default()
        );
        Ok(())
    }

    async fn post_stop(&self, _ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        println!("  [hook] {} stopped", task.id);
        Ok(())
    }
}

/// Gives every task its own id in `HOIST_TASK_ID`.
#[derive(Debug)]
struct TaskIdEnv;

#[async_trait]
impl Hook for TaskIdEnv {
    fn name(&self) -> &str {
        "task-id-env"
    }

    fn priority(&self) -> i64 {
        10
    }

    async fn pre_create(&self, _ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        task.container
            .env
            .insert("HOIST_TASK_ID".into(), task.id.to_string());
        Ok(())
    }
}

struct Args {
    task_file: PathBuf,
    run_for: Option<Duration>,
    state_dir: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut task_file = None;
    let mut run_for = None;
    let mut state_dir = std::env::temp_dir().join("hoist-local-executor");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--for" => {
                let value = args.next().context("--for needs a duration, e.g. 15s")?;
                run_for = Some(hoist::units::parse_duration(&value).map_err(anyhow::Error::msg)?);
            }
            "--state-dir" => state_dir = args.next().context("--state-dir needs a path")?.into(),
            flag if flag.starts_with('-') => {
                bail!("unknown flag {flag} (known: --for, --state-dir)")
            }
            path => task_file = Some(PathBuf::from(path)),
        }
    }
    Ok(Args {
        task_file: task_file.unwrap_or_else(|| "examples/tasks/demo.yaml".into()),
        run_for,
        state_dir,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.task_file)
        .with_context(|| format!("reading {}", args.task_file.display()))?;
    let file =
        TaskFile::from_yaml(&text).with_context(|| format!("in {}", args.task_file.display()))?;

    let backend = Arc::new(ProcessContainerizer::new(&args.state_dir)?);
    let executor = Executor::builder(backend)
        .executor_id("local-executor")
        .hook(PrintPhases)
        .hook(TaskIdEnv)
        .build()?;
    let mut statuses = executor.statuses();
    // Whatever an earlier run left behind is cleaned up or watched again.
    let recovered = executor.recover([]).await?;
    if !recovered.reattached.is_empty() {
        println!("re-attached to {:?}", recovered.reattached);
    }

    let total = file.tasks.len();
    for task in file.tasks {
        executor.launch(task)?;
    }

    let deadline = async {
        match args.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut ended = 0;
    loop {
        tokio::select! {
            status = statuses.recv() => {
                let Some(status) = status else { break };
                println!("{status}");
                if status.state.is_terminal() {
                    ended += 1;
                    if ended == total {
                        break;
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => {
                println!("interrupted: killing every task");
                break;
            }
            _ = &mut deadline => {
                println!("time is up: killing every task");
                break;
            }
        }
    }
    let shutdown = executor.clone();
    let printer = tokio::spawn(async move {
        while let Some(status) = statuses.recv().await {
            println!("{status}");
        }
    });
    shutdown.shutdown(None).await;
    drop((shutdown, executor));
    printer.await?;
    Ok(())
}
