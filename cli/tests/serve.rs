//! `hoist serve` end to end on the process backend, as a LocalStack user drives it: boto3 and
//! the AWS CLI create a function from a zip, wait for it to be active, invoke it every way,
//! update its code and configuration, publish a version, alias it, reserve concurrency and see
//! the throttle; then the server restarts on the same state directory and lists, gets, invokes
//! and deletes. Needs the venv of `functions/tests/setup-python.sh` (boto3, the AWS CLI and
//! awslambdaric).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hoist_kube::testing::FakeApiServer;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

mod support;

use support::free_port;

fn venv() -> PathBuf {
    let venv = std::env::var_os("HOIST_LAMBDA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("target/lambda-venv")
        });
    assert!(
        venv.join("bin/aws").exists(),
        "no venv with boto3, the AWS CLI and awslambdaric at {}: run functions/tests/setup-python.sh",
        venv.display()
    );
    venv
}

/// Starts `hoist serve` and waits (up to 30 s) until it answers.
/// EC2 and ECS run on the process backend too.
async fn start(port: u16, state: &Path, venv: &Path) -> Child {
    start_with(port, state, venv, "reattach", &[]).await
}

/// Starts `hoist serve` as [`start`] does, with `--lambda-environments recovery` and `vars`
/// over its environment.
async fn start_with(
    port: u16,
    state: &Path,
    venv: &Path,
    recovery: &str,
    vars: &[(&str, &str)],
) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(state)
        .args(["--lambda-environments", recovery])
        .env("HOIST_LAMBDA_PYTHON", venv.join("bin/python"))
        .env("LAMBDA_RUNTIME_EXECUTOR", "process")
        .env("LAMBDA_KEEPALIVE_MS", "600000")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("EC2_VM_MANAGER", "process")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hoist serve did not listen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// Starts `hoist serve` as [`start_with`] does, with owned values for the variables.
async fn start_env(
    port: u16,
    state: &Path,
    venv: &Path,
    recovery: &str,
    extra: &[(&str, String)],
) -> Child {
    let vars: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_with(port, state, venv, recovery, &vars).await
}

/// Stops the server with SIGTERM and waits (up to 30 s) for it to exit cleanly.
async fn stop(mut child: Child) {
    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on the pid of the child this test started, with a valid signal.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("hoist serve stops within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "hoist serve exited with {status}");
}

/// The processes running out of the state directory `state`, but this test's own: the relay
/// (its command line names the directory), the environments (their working directory is in
/// it) and the servers.
fn leftover_pids(state: &Path) -> Vec<i32> {
    let own = std::process::id() as i32;
    let needle = state.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own || !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.starts_with(state) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Kills, when dropped, whatever still runs out of a test's state directory, so that a test
/// that fails half-way leaves no relay or environment behind.
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in leftover_pids(&self.0) {
            // SAFETY: kill(2) with a valid signal on a process running out of this test's
            // own state directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Waits (up to 30 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The test credentials and region, and nothing of the user's own AWS configuration.
fn aws_env(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
}

/// `aws ARGS --endpoint-url ENDPOINT --output json`, its JSON answer.
async fn aws(endpoint: &str, venv: &Path, args: &[&str]) -> Value {
    let mut command = Command::new(venv.join("bin/aws"));
    command
        .args(args)
        .args(["--endpoint-url", endpoint, "--output", "json"]);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        aws_env(&mut command).kill_on_drop(true).output(),
    )
    .await
    .expect("the AWS CLI answers within 60 s")
    .unwrap();
    assert!(
        output.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

async fn phase(endpoint: &str, name: &str, venv: &Path) -> Value {
    python("serve_e2e.py", endpoint, name, venv).await
}

/// Runs `tests/python/SCRIPT ENDPOINT PHASE` with the test credentials and returns the JSON it
/// printed last, failing with its output when it fails.
async fn python(script: &str, endpoint: &str, phase: &str, venv: &Path) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        aws_env(
            Command::new(venv.join("bin/python"))
                .arg(path)
                .arg(endpoint)
                .arg(phase),
        )
        .kill_on_drop(true)
        .output(),
    )
    .await
    .expect("the client phase finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} {phase} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_drive_hoist_serve_across_a_restart() {
    let venv = venv();
    the_issue_sequence(&venv, &[]).await;
}

/// The issue's sequence on Docker (`LAMBDA_RUNTIME_EXECUTOR=docker`): the Python runtime is
/// mapped (`LAMBDA_RUNTIME_IMAGE_MAPPING`) to a `FROM scratch` busybox image this test builds,
/// into which `LAMBDA_DOCKER_FLAGS` mounts the venv, its interpreter's installation and the C
/// libraries (no registry is needed). Fails without an Engine when `HOIST_REQUIRE_DOCKER=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_drive_hoist_serve_on_docker_across_a_restart() {
    let venv = venv();
    let Some(docker) = hoist_docker::testing::engine_for_test("hoist serve on Docker").await else {
        return;
    };
    let run = format!("serve-{}", std::process::id());
    let tag = format!("hoist-cli-test-{run}:1");
    let _containers = DockerLeftovers {
        label: format!("io.hoist-test.run={run}"),
        image: tag.clone(),
    };
    hoist_docker::testing::build_busybox_image(
        docker.client(),
        Path::new(hoist_docker::testing::DEBIAN_STATIC_BUSYBOX),
        &tag,
        &[("io.hoist-test.run", run.as_str())],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    let python = venv.join("bin/python");
    let interpreter = std::fs::canonicalize(&python).unwrap();
    let prefix = interpreter
        .parent()
        .and_then(Path::parent)
        .expect("the interpreter sits in <prefix>/bin")
        .to_path_buf();
    let mounts: Vec<PathBuf> = [
        venv.clone(),
        prefix,
        PathBuf::from("/lib/x86_64-linux-gnu"),
        PathBuf::from("/lib64"),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect();
    let flags: Vec<String> = mounts
        .iter()
        .map(|p| format!("-v {0}:{0}:ro", p.display()))
        .collect();
    let extra = [
        ("LAMBDA_RUNTIME_EXECUTOR", "docker".to_owned()),
        (
            "LAMBDA_RUNTIME_IMAGE_MAPPING",
            json!({ "python3.12": tag }).to_string(),
        ),
        ("LAMBDA_DOCKER_FLAGS", flags.join(" ")),
        ("LAMBDA_K8S_LABELS", format!("io.hoist-test.run={run}")),
    ];
    the_issue_sequence(&venv, &extra).await;
    let left = docker_containers(&format!("io.hoist-test.run={run}"));
    assert!(
        left.is_empty(),
        "the deleted function's containers are gone: {left:?}"
    );
}

/// The containers (any state) with the label `label` (`key=value`).
fn docker_containers(label: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes, when dropped, the containers a test labelled and the image it built.
struct DockerLeftovers {
    label: String,
    image: String,
}

impl Drop for DockerLeftovers {
    fn drop(&mut self) {
        let containers = docker_containers(&self.label);
        if !containers.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f"])
                .args(&containers)
                .output();
        }
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// The issue's sequence with boto3 and the AWS CLI, on the server `extra` configures: create
/// from a zip, wait active, invoke every way, update code and configuration, publish, alias,
/// reserve concurrency and see the throttle; restart (SIGTERM); list, get, invoke (warm: in an
/// environment the first server started), invoke by alias, delete.
async fn the_issue_sequence(venv: &Path, extra: &[(&str, String)]) {
    let state = tempfile::tempdir().unwrap();
    let _leftovers = Leftovers(state.path().to_path_buf());
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");

    let server = start_env(port, state.path(), venv, "reattach", extra).await;
    let r = phase(&endpoint, "before", venv).await;
    assert_eq!(r["create"], "Pending", "{r}");
    assert_eq!(r["wait_active"]["code"], 0, "{r}");

    assert_eq!(r["sync"]["status"], 200, "{r}");
    assert_eq!(r["sync"]["payload"]["event"], json!({"hello": "world"}));
    assert_eq!(r["sync"]["payload"]["code"], "v1");
    assert_eq!(r["sync"]["version"], "$LATEST");
    assert_eq!(r["sync"]["payload"]["version"], "$LATEST");
    assert_eq!(
        r["again"]["payload"]["pid"], r["sync"]["payload"]["pid"],
        "warm reuse"
    );
    assert_eq!(r["event"]["status"], 202);
    assert_eq!(r["dry_run"]["status"], 204);
    let log = r["tail"]["log"].as_str().unwrap_or_default();
    assert!(
        log.starts_with("START RequestId: ") && log.contains("log: marker-7"),
        "{log}"
    );
    assert_eq!(
        r["client_context"]["payload"]["custom"],
        json!({"k": "v"}),
        "{r}"
    );
    assert_eq!(r["cli_no_payload"]["code"], 0, "{r}");
    assert_eq!(r["cli_no_payload"]["payload"]["event"], json!({}), "{r}");
    assert_eq!(r["bad_json"]["status"], 400);
    assert_eq!(r["bad_json"]["code"], "InvalidRequestContentException");
    assert_eq!(r["big_request"]["status"], 413, "{r}");
    assert_eq!(r["big_request"]["code"], "RequestEntityTooLargeException");
    assert_eq!(r["big_response"]["function_error"], "Unhandled", "{r}");
    assert_eq!(
        r["big_response"]["payload"]["errorType"],
        "Function.ResponseSizeTooLarge"
    );
    assert_eq!(
        r["after_big"]["payload"]["pid"], r["sync"]["payload"]["pid"],
        "the environment survived the oversize response"
    );

    assert_eq!(r["wait_code"]["code"], 0, "{r}");
    assert_eq!(r["updated_code"]["payload"]["code"], "v2", "{r}");
    assert_eq!(r["wait_config"]["code"], 0, "{r}");
    assert_eq!(r["updated_config"]["payload"]["greeting"], "hola", "{r}");
    assert_eq!(r["configuration"]["Timeout"], 20);

    let published = r["publish"].as_str().unwrap();
    assert_eq!(r["by_alias"]["status"], 200, "{r}");
    assert_eq!(r["by_alias"]["version"], published, "{r}");
    assert_eq!(r["by_alias"]["payload"]["version"], published, "{r}");
    assert_eq!(
        r["by_alias"]["payload"]["context_version"], published,
        "{r}"
    );
    assert!(
        r["by_alias"]["payload"]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":function:e2e:live"),
        "{r}"
    );
    assert_eq!(r["by_version"]["payload"]["greeting"], "hola");

    assert_eq!(r["throttled"]["status"], 429, "{r}");
    assert_eq!(r["throttled"]["code"], "TooManyRequestsException");
    assert_eq!(
        r["throttled"]["reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert_eq!(
        r["throttled_alias"]["reason"], "ReservedFunctionConcurrentInvocationLimitExceeded",
        "every version shares the function's reservation: {r}"
    );
    assert_eq!(r["slow"]["status"], 200, "{r}");
    let latest_boots = [
        r["updated_config"]["payload"]["boot"].clone(),
        r["slow"]["payload"]["boot"].clone(),
    ];
    let alias_boot = r["by_alias"]["payload"]["boot"].clone();
    stop(server).await;

    let server = start_env(port, state.path(), venv, "reattach", extra).await;
    let r = phase(&endpoint, "after", venv).await;
    assert_eq!(r["list"], json!(["e2e"]), "{r}");
    assert_eq!(r["get"]["State"], "Active", "{r}");
    assert_eq!(r["get"]["Environment"]["Variables"]["GREETING"], "hola");
    assert!(r["versions"].as_array().unwrap().len() >= 2, "{r}");
    assert_eq!(r["invoke"]["status"], 200, "{r}");
    assert_eq!(r["invoke"]["payload"]["code"], "v2");
    assert_eq!(r["invoke"]["payload"]["event"], json!({"after": "restart"}));
    assert!(
        latest_boots.contains(&r["invoke"]["payload"]["boot"]),
        "the first invoke after the restart is warm: {r} (environments before: {latest_boots:?})"
    );
    assert_eq!(
        r["by_alias"]["payload"]["boot"], alias_boot,
        "the alias's environment is warm too: {r}"
    );
    assert_eq!(r["by_alias"]["version"], published, "{r}");
    assert_eq!(r["cli_get"]["code"], 0, "{r}");
    assert_eq!(r["deleted"]["status"], 404, "{r}");
    assert_eq!(r["deleted"]["code"], "ResourceNotFoundException");
    assert_eq!(r["list_after_delete"], json!([]), "{r}");
    stop(server).await;
}

/// Runs `tests/python/warm.py ENDPOINT PHASE` and returns what the function answered.
async fn warm(endpoint: &str, phase: &str, venv: &Path) -> Value {
    python("warm.py", endpoint, phase, venv).await
}

/// Kills the server with SIGKILL: it has no chance to let anything go.
async fn crash(mut child: Child) {
    child.kill().await.unwrap();
}

/// Warm environments outlive restarts of the server: after a SIGTERM and after a SIGKILL, the
/// first invoke lands in the same process, whose module-level counter went on counting. With
/// `--lambda-environments cleanup`, a start removes what the predecessor left (its environment,
/// its relay) and a stop leaves nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_invoke_after_a_restart_is_warm_and_cleanup_leaves_nothing() {
    let venv = venv();
    let state = tempfile::tempdir().unwrap();
    let _leftovers = Leftovers(state.path().to_path_buf());
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");

    let server = start(port, state.path(), &venv).await;
    let first = warm(&endpoint, "create", &venv).await;
    assert_eq!(first["calls"], 1, "{first}");
    let pid = first["pid"].as_i64().unwrap();

    stop(server).await;
    assert!(
        alive(pid as i32),
        "the environment outlives the server's stop"
    );
    let server = start(port, state.path(), &venv).await;
    let after_stop = warm(&endpoint, "invoke", &venv).await;
    assert_eq!(after_stop["pid"], pid, "warm after SIGTERM: {after_stop}");
    assert_eq!(after_stop["calls"], 2, "{after_stop}");

    crash(server).await;
    let server = start(port, state.path(), &venv).await;
    let after_crash = warm(&endpoint, "invoke", &venv).await;
    assert_eq!(after_crash["pid"], pid, "warm after SIGKILL: {after_crash}");
    assert_eq!(after_crash["calls"], 3, "{after_crash}");

    crash(server).await;
    let server = start_with(port, state.path(), &venv, "cleanup", &[]).await;
    let relay_socket = state.path().join("lambda-relay/relay.sock");
    eventually("the predecessor's environment is removed", || {
        !alive(pid as i32)
    })
    .await;
    eventually("the relay has exited", || !relay_socket.exists()).await;
    let cold = warm(&endpoint, "invoke", &venv).await;
    assert_ne!(cold["pid"], pid, "a new environment: {cold}");
    assert_eq!(cold["calls"], 1, "{cold}");
    let server_pid = server.id().unwrap() as i32;
    let running = leftover_pids(state.path());
    assert!(
        running
            .iter()
            .all(|p| *p == server_pid || *p == cold["pid"].as_i64().unwrap() as i32),
        "only the server and its one environment run: {running:?}"
    );

    stop(server).await;
    eventually("nothing of the server is left running", || {
        leftover_pids(state.path()).is_empty()
    })
    .await;
}

/// The instance state of `id` as DescribeInstances gives it.
async fn instance_state(endpoint: &str, venv: &Path, id: &str) -> String {
    let described = aws(
        endpoint,
        venv,
        &["ec2", "describe-instances", "--instance-ids", id],
    )
    .await;
    described["Reservations"][0]["Instances"][0]["State"]["Name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// EC2 on the same port as Lambda, on the backend `EC2_VM_MANAGER` names: the AWS CLI runs an
/// instance whose user data keeps it running, sees it running, stops it, and it survives a
/// restart of the server until it is terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_serve_answers_ec2_on_the_same_port() {
    let venv = venv();
    let state = tempfile::tempdir().unwrap();
    let _leftovers = Leftovers(state.path().to_path_buf());
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = start(port, state.path(), &venv).await;

    let ran = aws(
        &endpoint,
        &venv,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-12345678",
            "--count",
            "1",
            "--user-data",
            "sleep 1000",
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=team,Value=hoist}]",
        ],
    )
    .await;
    let id = ran["Instances"][0]["InstanceId"]
        .as_str()
        .expect("an instance id")
        .to_owned();
    instance_becomes(&endpoint, &venv, &id, "running").await;
    let tagged = aws(
        &endpoint,
        &venv,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=tag:team,Values=hoist",
        ],
    )
    .await;
    assert_eq!(
        tagged["Reservations"][0]["Instances"][0]["InstanceId"], id,
        "{tagged}"
    );

    stop(server).await;
    let server = start_with(port, state.path(), &venv, "cleanup", &[]).await;
    assert_eq!(instance_state(&endpoint, &venv, &id).await, "running");
    aws(
        &endpoint,
        &venv,
        &["ec2", "terminate-instances", "--instance-ids", &id],
    )
    .await;
    instance_becomes(&endpoint, &venv, &id, "terminated").await;
    stop(server).await;
}

/// Runs `hoist serve` (Lambda on the process backend) with `vars`, expecting it to refuse to
/// start; returns what it wrote to standard error.
async fn refused_start(vars: &[(&str, &str)]) -> String {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .env("LAMBDA_RUNTIME_EXECUTOR", "process")
        .envs(vars.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_required_signature_needs_credentials_and_refuses_other_keys() {
    let stderr = refused_start(&[("HOIST_REQUIRE_SIGNATURE", "true")]).await;
    assert!(stderr.contains("HOIST_AWS_CREDENTIALS"), "{stderr}");
    let venv = venv();
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let vars = [
        ("HOIST_REQUIRE_SIGNATURE", "true"),
        ("HOIST_AWS_CREDENTIALS", "AKIDHOIST:the-right-secret"),
    ];
    let server = start_with(port, state.path(), &venv, "cleanup", &vars).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let list = |key: &'static str, secret: &'static str| {
        let mut command = Command::new(venv.join("bin/aws"));
        command
            .args(["lambda", "list-functions", "--endpoint-url", &endpoint])
            .args(["--output", "json"]);
        aws_env(&mut command)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .kill_on_drop(true)
            .output()
    };
    let right = list("AKIDHOIST", "the-right-secret").await.unwrap();
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    let wrong = list("AKIDHOIST", "a-wrong-secret").await.unwrap();
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && said.contains("InvalidSignatureException"),
        "{said}"
    );
    // LocalStack's usual test key is one this server does not know.
    let unknown = list("test", "test").await.unwrap();
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("UnrecognizedClientException"), "{said}");
    stop(server).await;
}

#[tokio::test]
async fn two_backends_for_ec2_and_ecs_are_refused_naming_both() {
    let stderr = refused_start(&[
        ("EC2_VM_MANAGER", "process"),
        ("ECS_TASK_EXECUTOR", "docker"),
    ])
    .await;
    assert!(
        stderr.contains("ECS_TASK_EXECUTOR") && stderr.contains("EC2_VM_MANAGER"),
        "{stderr}"
    );
}

#[tokio::test]
async fn listening_beyond_loopback_needs_allow_remote() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["serve", "--listen", "0.0.0.0:0", "--state-dir"])
        .arg(state.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "a refused flag is a usage error"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--listen") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "nothing was written before the refusal"
    );
}

/// The pods of `executor` (`hoist-ec2`, `hoist-ecs`) the fake API server holds, by the task id
/// they run (an instance id, `<task id>/<container>`).
fn pods_of(server: &FakeApiServer, executor: &str) -> BTreeMap<String, Pod> {
    server
        .pods()
        .into_iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(hoist::labels::EXECUTOR_ID))
                .map(String::as_str)
                == Some(executor)
        })
        .map(|p| {
            let annotations = p.metadata.annotations.clone().unwrap_or_default();
            (annotations[hoist::labels::TASK_ID].clone(), p)
        })
        .collect()
}

/// Waits (up to 30 s) until the pods of `executor` run exactly `tasks`; returns them.
async fn pods_become(
    server: &FakeApiServer,
    executor: &str,
    tasks: &[&str],
) -> BTreeMap<String, Pod> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pods = pods_of(server, executor);
        let names: Vec<&str> = pods.keys().map(String::as_str).collect();
        let mut wanted = tasks.to_vec();
        wanted.sort_unstable();
        if names == wanted {
            return pods;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{executor} pods are {names:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 30 s) until DescribeInstances says `state` for `id`.
async fn instance_becomes(endpoint: &str, venv: &Path, id: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = instance_state(endpoint, venv, id).await;
        if now == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} is {now}, never {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const POD_CONFIG: &str = r#"{
    "profiles": {
        "default": {"priorityClassName": "fallback"},
        "ec2-vms": {
            "nodeSelector": {"pool": "vms"},
            "tolerations": [{"key": "vms", "operator": "Exists", "effect": "NoSchedule"}],
            "labels": {"team": "vms", "io.hoist.service": "stolen"},
            "annotations": {"note": "ec2"}
        },
        "ecs-arm": {"nodeSelector": {"pool": "arm"}, "priorityClassName": "tasks"}
    },
    "services": {"ec2": {"profile": "ec2-vms"}, "ecs": {"arm64": "ecs-arm"}}
}"#;

/// `EC2_VM_MANAGER=kubernetes` and `ECS_TASK_EXECUTOR=kubernetes` against the fake API server
/// through the kubeconfig `KUBECONFIG` names, with pod profiles: the AWS CLI runs two tagged
/// instances (two pods, shaped by the `ec2` profile, limited to the instance type's size),
/// describes them by tag, finds them again after a restart of the server, stops one (its pod
/// goes), starts it (a new pod for the same id), terminates both (no pod left); then runs ECS
/// tasks, an ARM64 one on the `ecs-arm` profile
/// and one of unknown architecture on the default, and stops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_and_ecs_on_kubernetes_make_pods_shaped_by_the_profiles() {
    let venv = venv();
    let api = FakeApiServer::start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = state.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let vars = [
        ("EC2_VM_MANAGER", "kubernetes"),
        ("ECS_TASK_EXECUTOR", "kubernetes"),
        ("KUBECONFIG", kubeconfig.as_str()),
        ("EC2_IMAGE_MAPPING", r#"{"ami-0c0c0c0c": "busybox:1.37"}"#),
        ("LOCALSTACK_K8S_NAMESPACE", "aws"),
        ("LOCALSTACK_K8S_LABELS", "env=test"),
        ("LOCALSTACK_K8S_POD_CONFIG", POD_CONFIG),
    ];
    let server = start_with(port, &state.path().join("state"), &venv, "cleanup", &vars).await;

    let ran = aws(
        &endpoint,
        &venv,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-0c0c0c0c",
            "--count",
            "2",
            "--instance-type",
            "t3.micro",
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=role,Value=vm}]",
        ],
    )
    .await;
    let ids: Vec<String> = ran["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ran}");
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let tagged = aws(
        &endpoint,
        &venv,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=tag:role,Values=vm",
            "Name=instance-state-name,Values=running",
        ],
    )
    .await;
    let mut seen: Vec<&str> = tagged["Reservations"][0]["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    let mut both = vec![a, b];
    both.sort_unstable();
    assert_eq!(seen, both, "{tagged}");

    let pods = pods_become(&api, "hoist-ec2", &[a, b]).await;
    let first_pod = pods[a].metadata.name.clone().unwrap();
    for pod in pods.values() {
        assert_eq!(pod.metadata.namespace.as_deref(), Some("aws"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "vms", "the ec2 profile's labels");
        assert_eq!(labels["env"], "test", "LOCALSTACK_K8S_LABELS");
        assert_eq!(labels[hoist::labels::SERVICE], "ec2", "hoist's label wins");
        assert_eq!(labels[hoist::labels::ARCHITECTURE], "amd64");
        assert_eq!(pod.metadata.annotations.as_ref().unwrap()["note"], "ec2");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_selector.as_ref().unwrap()["pool"], "vms");
        assert_eq!(
            spec.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("vms")
        );
        assert!(
            spec.priority_class_name.is_none(),
            "not the default profile"
        );
        let main = &spec.containers[0];
        assert_eq!(main.image.as_deref(), Some("busybox:1.37"));
        // t3.micro: 2 vCPUs and 1 GiB, as limits (and requests) of the container.
        let resources = main.resources.as_ref().unwrap();
        for amounts in [&resources.limits, &resources.requests] {
            let amounts = amounts.as_ref().unwrap();
            assert_eq!(amounts["cpu"].0, "2000m");
            assert_eq!(amounts["memory"].0, (1u64 << 30).to_string());
        }
    }

    // A restarted server finds the instances' pods again, running.
    stop(server).await;
    let server = start_with(port, &state.path().join("state"), &venv, "cleanup", &vars).await;
    instance_becomes(&endpoint, &venv, a, "running").await;
    instance_becomes(&endpoint, &venv, b, "running").await;
    let again = pods_become(&api, "hoist-ec2", &[a, b]).await;
    assert_eq!(again[a].metadata.name.as_deref(), Some(first_pod.as_str()));

    // Stopped, the instance's pod goes; started, a new pod runs it under the same id.
    aws(
        &endpoint,
        &venv,
        &["ec2", "stop-instances", "--instance-ids", a],
    )
    .await;
    instance_becomes(&endpoint, &venv, a, "stopped").await;
    pods_become(&api, "hoist-ec2", &[b]).await;
    aws(
        &endpoint,
        &venv,
        &["ec2", "start-instances", "--instance-ids", a],
    )
    .await;
    instance_becomes(&endpoint, &venv, a, "running").await;
    let pods = pods_become(&api, "hoist-ec2", &[a, b]).await;
    assert_ne!(pods[a].metadata.name.as_deref(), Some(first_pod.as_str()));
    assert_eq!(
        pods[a]
            .spec
            .as_ref()
            .unwrap()
            .node_selector
            .as_ref()
            .unwrap()["pool"],
        "vms"
    );
    aws(
        &endpoint,
        &venv,
        &["ec2", "terminate-instances", "--instance-ids", a, b],
    )
    .await;
    instance_becomes(&endpoint, &venv, a, "terminated").await;
    instance_becomes(&endpoint, &venv, b, "terminated").await;
    pods_become(&api, "hoist-ec2", &[]).await;

    // ECS: an ARM64 task definition takes the `ecs-arm` profile; one that names no
    // architecture takes the default.
    aws(
        &endpoint,
        &venv,
        &["ecs", "create-cluster", "--cluster-name", "k8s"],
    )
    .await;
    let container = r#"[{"name": "app", "image": "busybox:1.37", "command": ["sleep", "1000"]}]"#;
    aws(
        &endpoint,
        &venv,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "arm",
            "--runtime-platform",
            "cpuArchitecture=ARM64,operatingSystemFamily=LINUX",
            "--container-definitions",
            container,
        ],
    )
    .await;
    aws(
        &endpoint,
        &venv,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "plain",
            "--container-definitions",
            container,
        ],
    )
    .await;
    let mut tasks = Vec::new();
    for family in ["arm", "plain"] {
        let ran = aws(
            &endpoint,
            &venv,
            &[
                "ecs",
                "run-task",
                "--cluster",
                "k8s",
                "--task-definition",
                family,
            ],
        )
        .await;
        let arn = ran["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
        tasks.push(arn);
    }
    let ids: Vec<String> = tasks
        .iter()
        .map(|arn| format!("{}/app", arn.rsplit('/').next().unwrap()))
        .collect();
    let pods = pods_become(&api, "hoist-ecs", &[&ids[0], &ids[1]]).await;
    let arm = &pods[&ids[0]];
    let arm_spec = arm.spec.as_ref().unwrap();
    assert_eq!(arm_spec.node_selector.as_ref().unwrap()["pool"], "arm");
    assert_eq!(arm_spec.priority_class_name.as_deref(), Some("tasks"));
    assert_eq!(
        arm_spec.containers[0].args.as_ref().unwrap(),
        &["sleep", "1000"]
    );
    let labels = arm.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[hoist::labels::SERVICE], "ecs");
    assert_eq!(labels[hoist::labels::ARCHITECTURE], "arm64");
    let plain = pods[&ids[1]].spec.as_ref().unwrap();
    assert_eq!(plain.priority_class_name.as_deref(), Some("fallback"));
    assert!(plain.node_selector.is_none());
    let described = aws(
        &endpoint,
        &venv,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            "k8s",
            "--tasks",
            &tasks[0],
            &tasks[1],
        ],
    )
    .await;
    for task in described["tasks"].as_array().unwrap() {
        assert_eq!(task["lastStatus"], "RUNNING", "{task}");
    }
    for arn in &tasks {
        let stopped = aws(
            &endpoint,
            &venv,
            &["ecs", "stop-task", "--cluster", "k8s", "--task", arn],
        )
        .await;
        assert_eq!(stopped["task"]["lastStatus"], "STOPPED", "{stopped}");
    }
    pods_become(&api, "hoist-ecs", &[]).await;
    stop(server).await;
}

/// A pod profile document with an unknown field stops `hoist serve` before it serves, naming
/// the variable and the field.
#[tokio::test]
async fn a_bad_pod_profile_document_stops_start_up_naming_the_field() {
    let stderr = refused_start(&[
        ("EC2_VM_MANAGER", "kubernetes"),
        ("KUBECONFIG", "/nonexistent/kubeconfig"),
        (
            "LOCALSTACK_K8S_POD_CONFIG",
            r#"{"profiles": {"p": {"nodeSelector": {}, "prioritClassName": "x"}}}"#,
        ),
    ])
    .await;
    assert!(
        stderr.contains("LOCALSTACK_K8S_POD_CONFIG")
            && stderr.contains("profiles.p.prioritClassName"),
        "{stderr}"
    );
}
