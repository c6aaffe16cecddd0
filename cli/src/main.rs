//! `hoist`: run a task file on any backend (`hoist run`), serve the AWS endpoint (`hoist
//! serve`).
//!
//! Exit codes: 0 when every task finished (or was stopped by `--for` or Ctrl-C), 1 when a task
//! failed, was refused or was lost, 2 for a bad command line or task file, 3 when the backend
//! could not be reached. Errors are printed as one line on standard error.

mod exit;
mod metrics;
mod progress;
mod run;
mod serve;

use clap::{Parser, Subcommand};

/// Build and run executors: tasks in processes, containers or pods, with hooks and health checks.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the tasks of a task file until they end (or for a while), printing every status.
    Run(run::Args),
    /// Serves the AWS endpoint (the Lambda API) until Ctrl-C or SIGTERM.
    Serve(serve::Args),
    /// Holds the Runtime API ports of `hoist serve`'s warm environments across its restarts
    /// (started by `hoist serve`).
    #[command(hide = true)]
    LambdaRelay(serve::RelayArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    exit::init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return exit::fail(&format!("could not start the async runtime: {e}"), 1),
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Serve(args) => serve::serve(args).await,
            Command::LambdaRelay(args) => serve::relay(args).await,
        }
    })
}
