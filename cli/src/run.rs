//! `hoist run TASKFILE`: the tasks of a task file on a backend, every status and task event
//! printed as one line (image pulls as a progress bar on a terminal), until every task has
//! ended, `--for` has passed, or Ctrl-C; with `--metrics ADDRESS`, the engine's metrics on
//! `http://ADDRESS/metrics` meanwhile.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hoist::backend::{Backend, BackendSettings};
use hoist::{Error, Executor, TaskFile, TaskState};

use crate::exit;
use crate::metrics::MetricsServer;
use crate::progress::EventPrinter;

/// The arguments of `hoist run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task file (YAML, or JSON when it ends in `.json`): `tasks: [...]`.
    task_file: PathBuf,
    /// Stop every task after this long (`15s`, `2m`); by default run until every task ends.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    run_for: Option<Duration>,
    /// Where tasks run.
    #[arg(long, default_value = "process", value_parser = parse_backend)]
    backend: Backend,
    /// The executor's id, written on every container so a later run finds what this one left.
    #[arg(long, default_value = "hoist-run")]
    executor_id: String,
    /// The process backend's state directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The Kubernetes backend's kubeconfig (default: `KUBECONFIG`, else in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The Kubernetes namespace of the pods.
    #[arg(long)]
    namespace: Option<String>,
    /// Keep every container after its task ends, for debugging.
    #[arg(long)]
    keep_containers: bool,
    /// Serve the engine's Prometheus metrics on `http://ADDRESS/metrics` while running.
    #[arg(long, value_name = "ADDRESS:PORT")]
    metrics: Option<SocketAddr>,
    /// Print statuses only, not task events (created, started, hook phases, failed probes...).
    #[arg(long)]
    no_events: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    hoist::units::parse_duration(text)
}

fn parse_backend(text: &str) -> Result<Backend, String> {
    text.parse().map_err(|e: Error| e.message().to_owned())
}

fn read_task_file(path: &PathBuf) -> hoist::Result<TaskFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!("cannot read the task file {}: {e}", path.display()))
    })?;
    let file = if path.extension().is_some_and(|e| e == "json") {
        TaskFile::from_json(&text)
    } else {
        TaskFile::from_yaml(&text)
    };
    file.map_err(|e| e.with_context("file", path.display()))
}

/// Runs `hoist run`.
pub async fn run(args: Args) -> ExitCode {
    let file = match read_task_file(&args.task_file) {
        Ok(file) => file,
        Err(e) => return exit::error(&e),
    };
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("hoist-run"));
    let settings = BackendSettings {
        kubeconfig: args.kubeconfig.clone(),
        namespace: args.namespace.clone(),
        ..BackendSettings::new(state_dir)
    };
    let containerizer = match args.backend.connect(&settings).await {
        Ok(containerizer) => containerizer,
        Err(e) => return exit::error(&e),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let mut builder = Executor::builder(containerizer)
        .executor_id(args.executor_id.as_str())
        .keep_containers(args.keep_containers);
    if args.metrics.is_some() {
        builder = builder.metrics(&mut registry);
    }
    let executor = match builder.build() {
        Ok(executor) => executor,
        Err(e) => return exit::error(&e),
    };
    let _metrics = match args.metrics {
        Some(addr) => match MetricsServer::start(addr, Arc::new(registry)).await {
            Ok(server) => {
                eprintln!("hoist: metrics on http://{}/metrics", server.addr());
                Some(server)
            }
            Err(e) => {
                executor.shutdown(None).await;
                return exit::error(&e);
            }
        },
        None => None,
    };
    // What an earlier run with the same id left behind is cleaned up.
    if let Err(e) = executor.recover([]).await {
        return exit::error(&e);
    }
    // Every status is printed from the shared stream; the tasks' handles say for sure when
    // each has ended, even if printing fell behind.
    let mut statuses = executor.statuses();
    let mut events = executor.events();
    let mut printer = EventPrinter::new(!args.no_events);
    let mut handles = Vec::with_capacity(file.tasks.len());
    for task in file.tasks {
        match executor.launch(task) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                executor.shutdown(None).await;
                return exit::error(&e);
            }
        }
    }
    let ended = futures::future::join_all(handles.iter().map(|h| h.wait()));
    tokio::pin!(ended);
    let deadline = async {
        match args.run_for {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let print = |status: hoist::TaskStatus| println!("{status}");
    loop {
        tokio::select! {
            biased;
            Some(status) = statuses.recv() => print(status),
            Some(event) = events.recv() => printer.print(&event),
            _ = &mut ended => break,
            () = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => {
                println!("interrupted: stopping every task");
                break;
            }
        }
    }
    executor.shutdown(None).await;
    while let Some(event) = events.try_recv() {
        printer.print(&event);
    }
    printer.finish();
    while let Some(status) = statuses.try_recv() {
        print(status);
    }
    let failed = handles.iter().any(|h| {
        matches!(
            h.status().state,
            TaskState::Failed | TaskState::Error | TaskState::Lost
        )
    });
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
