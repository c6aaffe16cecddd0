//! `hoist serve`: the AWS endpoint. One port (`127.0.0.1:4566` by default, `--listen`; an
//! address beyond loopback only with `--allow-remote`) serving the Lambda API over a state
//! directory (`--state-dir`, default `$XDG_DATA_HOME/hoist` or `~/.local/share/hoist`), with
//! functions running in warm environments on the backend `LAMBDA_RUNTIME_EXECUTOR` names.
//! LocalStack's `LAMBDA_*` variables configure it. On the process backend, Python runtimes run
//! under the interpreter `HOIST_LAMBDA_PYTHON` names (which must have `awslambdaric`), Node
//! runtimes under the program `HOIST_LAMBDA_NODE` names (a runtime interface client taking the
//! handler), and `provided`, `provided.al2` and `provided.al2023` run the zip's `bootstrap`. On
//! Docker a mapped runtime runs its image's `/lambda-entrypoint.sh`, or the interpreter those
//! variables name inside the image.
//!
//! Warm environments outlive a restart (`--lambda-environments reattach`, the default): their
//! Runtime API ports are held by a relay (`hoist lambda-relay`, started detached in the state
//! directory), and a restarted server re-attaches to them. With `cleanup` a start removes what
//! an earlier server left, and a stop removes every environment.
//!
//! On Kubernetes (`LAMBDA_RUNTIME_EXECUTOR`, `EC2_VM_MANAGER` or `ECS_TASK_EXECUTOR` set to
//! `kubernetes`), pods are created through the kubeconfig `KUBECONFIG` names (else the
//! in-cluster service account) and shaped by LocalStack's `LOCALSTACK_K8S_NAMESPACE`,
//! `LOCALSTACK_K8S_LABELS`, `LOCALSTACK_K8S_ANNOTATIONS`, `LOCALSTACK_K8S_POD_CONFIG` (pod
//! profiles per service and architecture) and `K8S_CONTAINER_SECURITY_CONTEXT`; a malformed
//! one stops start-up, naming it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hoist::backend::Backend as ComputeBackend;
use hoist::function_backend::{BackendSettings, containerizer};
use hoist::{Containerizer, Error, ErrorKind};
use hoist_aws::compute::{ComputeConfig, ComputeService};
use hoist_aws::lambda::{LambdaConfig, LambdaService};
use hoist_aws::sigv4::{Credentials, SignatureCheck, require_signature};
use hoist_functions::config::{Backend, FunctionsConfig, RuntimeCommand};
use hoist_functions::lambda_host::LambdaHost;
use hoist_functions::relay::{RelayClient, run_relay};
use hoist_functions::{EnvironmentRecovery, FunctionExecutor};

use crate::exit;

/// The arguments of `hoist serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to serve on.
    #[arg(long, default_value = "127.0.0.1:4566", value_name = "ADDRESS:PORT")]
    listen: SocketAddr,
    /// Allow `--listen` on an address other than loopback (anyone who reaches it can run code).
    #[arg(long)]
    allow_remote: bool,
    /// Where functions, code, versions and aliases are kept across restarts.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// What becomes of warm Lambda environments across a restart: `reattach` leaves them
    /// running at a stop and the next start takes them over (so its first invoke is warm);
    /// `cleanup` stops them at a stop and removes what an earlier server left at a start.
    #[arg(
        long,
        env = "HOIST_LAMBDA_ENVIRONMENTS",
        default_value = "reattach",
        value_name = "reattach|cleanup",
        value_parser = parse_recovery
    )]
    lambda_environments: EnvironmentRecovery,
    /// Require AWS Signature Version 4 on every request, against the credentials in
    /// `HOIST_AWS_CREDENTIALS` (`ACCESS_KEY_ID:SECRET[,...]`); off by default, as LocalStack.
    #[arg(long, env = "HOIST_REQUIRE_SIGNATURE")]
    require_signature: bool,
}

/// The largest body a signed request may have: the checked body is read whole, and the
/// largest route takes a 50 MB zip, base64-encoded in JSON.
const MAX_SIGNED_BODY: usize = 80 << 20;

fn parse_recovery(value: &str) -> Result<EnvironmentRecovery, String> {
    value.parse().map_err(|e: Error| e.to_string())
}

/// The arguments of `hoist lambda-relay` (started by `hoist serve`, not by hand).
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// The relay's directory: its control socket, and the server's Runtime API socket.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How long the relay waits for a server to come back before it exits.
    #[arg(long, value_name = "MS")]
    linger_ms: u64,
}

/// The relay keeps waiting for a restarted server at least this long.
const MIN_RELAY_LINGER: Duration = Duration::from_secs(10);

/// AWS's Python runtime identifiers.
const PYTHON_RUNTIMES: [&str; 6] = [
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
];
/// AWS's Node runtime identifiers.
const NODE_RUNTIMES: [&str; 4] = ["nodejs16.x", "nodejs18.x", "nodejs20.x", "nodejs22.x"];
/// AWS's OS-only runtimes: the zip's `bootstrap` is the runtime.
const PROVIDED_RUNTIMES: [&str; 3] = ["provided", "provided.al2", "provided.al2023"];

/// The default state directory: `$XDG_DATA_HOME/hoist`, else `~/.local/share/hoist`.
fn default_state_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("hoist"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/hoist")),
        None => Err(Error::invalid_field(
            "--state-dir",
            "is needed: neither XDG_DATA_HOME nor HOME is set",
        )),
    }
}

/// How each AWS runtime identifier starts: on the process backend from `HOIST_LAMBDA_PYTHON`
/// and `HOIST_LAMBDA_NODE`; on container backends in the image the mapping gives it.
fn add_runtimes(config: &mut FunctionsConfig, vars: &[(String, String)]) {
    let var = |name: &str| {
        vars.iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
    };
    let mut commands: Vec<(&str, Vec<String>)> = Vec::new();
    for runtime in PROVIDED_RUNTIMES {
        commands.push((runtime, vec!["{code}/bootstrap".into()]));
    }
    if let Some(python) = var("HOIST_LAMBDA_PYTHON") {
        for runtime in PYTHON_RUNTIMES {
            let argv = [python.as_str(), "-m", "awslambdaric", "{handler}"];
            commands.push((runtime, argv.map(str::to_owned).to_vec()));
        }
    }
    if let Some(node) = var("HOIST_LAMBDA_NODE") {
        for runtime in NODE_RUNTIMES {
            commands.push((runtime, vec![node.clone(), "{handler}".into()]));
        }
    }
    match config.backend {
        Backend::Process => {
            for (runtime, argv) in commands {
                config
                    .runtimes
                    .insert(runtime.to_owned(), RuntimeCommand::lambda(argv));
            }
        }
        // Images come from LAMBDA_RUNTIME_IMAGE_MAPPING; AWS's base images start their
        // runtime interface client from their entry point, given the handler. A runtime whose
        // interpreter `HOIST_LAMBDA_PYTHON` (`HOIST_LAMBDA_NODE`) names runs it in the image
        // instead (with the interpreter in the image, or mounted by LAMBDA_DOCKER_FLAGS).
        _ => {
            for (runtime, command) in &mut config.runtimes {
                if !command.command.is_empty() {
                    continue;
                }
                command.command = commands
                    .iter()
                    .find(|(r, _)| r == runtime && !PROVIDED_RUNTIMES.contains(r))
                    .map(|(_, argv)| argv.clone())
                    .unwrap_or_else(|| vec!["/lambda-entrypoint.sh".into(), "{handler}".into()]);
            }
        }
    }
}

async fn start(args: &Args) -> Result<(), Error> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(Error::invalid_field(
            "--listen",
            format!(
                "is {}, beyond loopback: anyone who reaches it can run code; pass --allow-remote to mean it",
                args.listen
            ),
        ));
    }
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => default_state_dir()?,
    };
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let mut functions_config = FunctionsConfig::from_vars(vars.iter().map(|(k, v)| (k, v)))?;
    let signature = if args.require_signature {
        let spec = vars
            .iter()
            .find(|(k, _)| k == "HOIST_AWS_CREDENTIALS")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                Error::invalid_field(
                    "HOIST_AWS_CREDENTIALS",
                    "is needed with --require-signature: ACCESS_KEY_ID:SECRET[,ACCESS_KEY_ID:SECRET...]",
                )
            })?;
        let credentials = Credentials::parse(spec)?;
        // Functions call back with their own credentials: unless those are among the
        // accepted ones, they get the first accepted key.
        let theirs = &functions_config.credentials.access_key_id;
        if !credentials.contains(theirs)
            && let Some((id, secret)) = credentials.first()
        {
            functions_config.credentials.access_key_id = id.to_owned();
            functions_config.credentials.secret_access_key = secret.to_owned();
        }
        Some(SignatureCheck::new(credentials, MAX_SIGNED_BODY))
    } else {
        None
    };
    let lambda_config = LambdaConfig::from_vars(vars.iter().map(|(k, v)| (k, v)))?;
    functions_config.region = lambda_config.region.clone();
    add_runtimes(&mut functions_config, &vars);
    let reachable = if args.listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], args.listen.port()))
    } else {
        args.listen
    };
    functions_config.endpoint_url = Some(format!("http://{reachable}"));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot listen on {}", args.listen),
            )
            .with_source(e)
        })?;
    let settings =
        BackendSettings::from_vars(state_dir.join("backend"), vars.iter().map(|(k, v)| (k, v)));
    let backend = containerizer(&functions_config, &settings).await?;
    // Everything that can refuse to start comes before the relay, which outlives this process.
    let store = hoist_store::Store::open(state_dir.join("lambda")).map_err(|e| {
        Error::new(ErrorKind::Backend, "cannot open the state directory").with_source(e)
    })?;
    let compute_backend = compute_backend(&vars, &state_dir).await?;
    let compute_config = ComputeConfig::from_vars(vars.iter().map(|(k, v)| (k, v)))?;
    let relay_dir = state_dir.join("lambda-relay");
    let recovery = args.lambda_environments;
    let functions = match recovery {
        EnvironmentRecovery::Reattach => {
            let linger = functions_config.pool.keepalive.max(MIN_RELAY_LINGER);
            let program = std::env::current_exe().map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    "cannot find this program to start the relay",
                )
                .with_source(e)
            })?;
            let mut command = std::process::Command::new(program);
            command
                .arg("lambda-relay")
                .arg("--dir")
                .arg(&relay_dir)
                .arg("--linger-ms")
                .arg(linger.as_millis().to_string());
            let relay = RelayClient::start(&relay_dir, command).await?;
            FunctionExecutor::start_relayed(backend, functions_config, Arc::new(relay))?
        }
        EnvironmentRecovery::Cleanup => FunctionExecutor::start(backend, functions_config)?,
    };
    let host = LambdaHost::new(functions.clone(), state_dir.join("unpacked"));
    let service = LambdaService::start(store.clone(), Arc::new(host), lambda_config).await;
    // Once the functions are registered again: the environments an earlier server left.
    match functions.recover_environments(recovery).await {
        Ok(recovered) if recovered.reattached.len() + recovered.removed.len() > 0 => eprintln!(
            "hoist: {} warm Lambda environments re-attached, {} removed",
            recovered.reattached.len(),
            recovered.removed.len()
        ),
        Ok(_) => {}
        Err(e) => eprintln!("hoist: could not recover the Lambda environments: {e}"),
    }
    if recovery == EnvironmentRecovery::Cleanup
        && let Some(relay) = RelayClient::connect(&relay_dir).await
    {
        relay.shutdown().await;
    }
    let compute = ComputeService::start(store, compute_backend, compute_config).await;
    eprintln!(
        "hoist: serving the AWS endpoint on http://{} (state in {})",
        listener.local_addr().unwrap_or(args.listen),
        state_dir.display()
    );
    let mut router = service.router().merge(compute.router());
    if let Some(check) = signature {
        router = router.layer(axum::middleware::from_fn_with_state(
            check,
            require_signature,
        ));
    }
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    compute.shutdown().await;
    service.shutdown().await;
    match recovery {
        EnvironmentRecovery::Reattach => functions.detach().await,
        EnvironmentRecovery::Cleanup => functions.shutdown().await,
    }
    served.map_err(|e| Error::new(ErrorKind::Backend, "the server failed").with_source(e))
}

/// The backend EC2 instances and ECS tasks run on, from LocalStack's `EC2_VM_MANAGER` and
/// `ECS_TASK_EXECUTOR` (hoist runs both on one backend, so when both are set they must agree):
/// `docker`, `kubernetes`, `process` or `sandbox`. Unset, it is Docker, as LocalStack's, or the
/// process backend when no Docker Engine answers, said on standard error.
async fn compute_backend(
    vars: &[(String, String)],
    state_dir: &std::path::Path,
) -> Result<Arc<dyn Containerizer>, Error> {
    let named: Vec<(&str, &str)> = ["EC2_VM_MANAGER", "ECS_TASK_EXECUTOR"]
        .into_iter()
        .filter_map(|key| {
            vars.iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| (key, v.as_str()))
        })
        .collect();
    let settings = BackendSettings::from_vars(
        state_dir.join("compute-backend"),
        vars.iter().map(|(k, v)| (k, v)),
    );
    let chosen = match named.as_slice() {
        [] => None,
        [(_, one)] => Some(*one),
        [(k1, v1), (k2, v2)] if v1 == v2 => {
            let _ = (k1, k2);
            Some(*v1)
        }
        [(k1, v1), (k2, v2), ..] => {
            return Err(Error::invalid_field(
                *k2,
                format!(
                    "is `{v2}` but {k1} is `{v1}`: hoist runs EC2 instances and ECS tasks on one backend"
                ),
            ));
        }
    };
    match chosen {
        Some(name) => {
            let backend: ComputeBackend = name.parse().map_err(|e: Error| {
                let key = named.first().map_or("EC2_VM_MANAGER", |(k, _)| *k);
                Error::invalid_field(key, e.to_string())
            })?;
            backend.connect(&settings).await
        }
        None => match ComputeBackend::Docker.connect(&settings).await {
            Ok(docker) => Ok(docker),
            Err(e) => {
                eprintln!(
                    "hoist: EC2 and ECS run on the process backend: no Docker Engine answered ({e}); set EC2_VM_MANAGER to choose"
                );
                ComputeBackend::Process.connect(&settings).await
            }
        },
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Runs the Runtime API relay of `hoist serve` until the server tells it to stop, it has
/// waited for a server longer than its linger, or SIGTERM.
pub async fn relay(args: RelayArgs) -> ExitCode {
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = run_relay(
        &args.dir,
        Duration::from_millis(args.linger_ms),
        stop.clone(),
    );
    tokio::pin!(relay);
    let result = tokio::select! {
        result = &mut relay => result,
        () = shutdown_signal() => {
            stop.cancel();
            relay.await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::error(&e),
    }
}

/// Runs `hoist serve` until Ctrl-C or SIGTERM.
pub async fn serve(args: Args) -> ExitCode {
    match start(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::error(&e),
    }
}
