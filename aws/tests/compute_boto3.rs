//! EC2, ECS and ELBv2 driven by boto3 and the AWS CLI on the process backend, with the server
//! restarted (a new router, a new containerizer, the same state directories) between steps.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hoist_aws::compute::ComputeConfig;
use hoist_process::ProcessContainerizer;
use serde_json::Value;
use support::{ComputeServer, client_command, python, venv};

/// The compute APIs on the process backend, over `dirs`.
async fn start(dirs: &Dirs) -> ComputeServer {
    let backend = Arc::new(
        ProcessContainerizer::new(&dirs.backend)
            .unwrap()
            .with_poll_interval(Duration::from_millis(50)),
    );
    ComputeServer::start(&dirs.state, backend, ComputeConfig::default()).await
}

struct Dirs {
    _root: tempfile::TempDir,
    state: PathBuf,
    backend: PathBuf,
    marks: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        state: root.path().join("state"),
        backend: root.path().join("backend"),
        marks: root.path().join("marks"),
        _root: root,
    };
    std::fs::create_dir_all(&dirs.marks).unwrap();
    dirs
}

/// Runs one phase of `tests/python/compute_boto3.py`; returns what it printed last (JSON).
async fn boto3(endpoint: &str, phase: &str, args: &[&str]) -> Value {
    python("compute_boto3.py", endpoint, phase, args).await
}

/// Runs the AWS CLI against `endpoint`; returns its JSON output.
async fn aws(endpoint: &str, args: &[&str]) -> Value {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        client_command(&venv().join("bin").join("aws"))
            .arg("--endpoint-url")
            .arg(endpoint)
            .arg("--output")
            .arg("json")
            .args(args)
            .output(),
    )
    .await
    .expect("the AWS CLI finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "aws {args:?} failed:\n{stdout}\n{stderr}"
    );
    if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap()
    }
}

/// The lines of the user-data mark of `instance`, waiting up to 10 s for `lines` of them.
async fn marks(dirs: &Dirs, instance: &str, lines: usize) -> usize {
    let path = dirs.marks.join(instance);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = std::fs::read_to_string(&path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= lines || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_instances_run_stop_start_and_terminate_across_restarts() {
    let dirs = dirs();
    let marks_dir = dirs.marks.to_str().unwrap().to_owned();
    let server = start(&dirs).await;
    let seen = boto3(&server.endpoint, "ec2-run", &[&marks_dir]).await;
    let web = seen["web"].as_str().unwrap().to_owned();
    let db = seen["db"].as_str().unwrap().to_owned();
    // The user data ran once in each instance, as its boot script.
    assert_eq!(marks(&dirs, &web, 1).await, 1);
    assert_eq!(marks(&dirs, &db, 1).await, 1);
    server.stop().await;

    let server = start(&dirs).await;
    boto3(&server.endpoint, "ec2-stop", &[&web, &db]).await;
    server.stop().await;

    let server = start(&dirs).await;
    boto3(&server.endpoint, "ec2-start", &[&web, &db]).await;
    // Started again, the instance booted again: its user data ran a second time.
    assert_eq!(marks(&dirs, &web, 2).await, 2);
    assert_eq!(marks(&dirs, &db, 1).await, 1);

    // The AWS CLI sees the same instances, and runs and terminates one of its own.
    let described = aws(
        &server.endpoint,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=tag:Name,Values=web",
        ],
    )
    .await;
    let instances = &described["Reservations"][0]["Instances"];
    assert_eq!(instances[0]["InstanceId"], web.as_str());
    assert_eq!(instances[0]["State"]["Name"], "running");
    let run = aws(
        &server.endpoint,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-0abcdef1",
            "--count",
            "1",
            "--instance-type",
            "t2.micro",
        ],
    )
    .await;
    let cli = run["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(run["Instances"][0]["State"]["Code"], 0);
    assert_eq!(run["Instances"][0]["InstanceType"], "t2.micro");
    let terminated = aws(
        &server.endpoint,
        &["ec2", "terminate-instances", "--instance-ids", &cli],
    )
    .await;
    assert_eq!(
        terminated["TerminatingInstances"][0]["CurrentState"]["Name"],
        "shutting-down"
    );
    assert_eq!(
        terminated["TerminatingInstances"][0]["PreviousState"]["Code"],
        16
    );
    server.stop().await;

    let server = start(&dirs).await;
    boto3(&server.endpoint, "ec2-terminate", &[&web, &db, &cli]).await;
    server.stop().await;
    // Nothing is left running.
    let backend = ProcessContainerizer::new(&dirs.backend).unwrap();
    let owned = hoist_core::Containerizer::list_owned(&backend, &"hoist-ec2".into())
        .await
        .unwrap();
    assert!(owned.is_empty(), "{owned:?}");
}

/// The process of the running container of an ECS task (`arn`), found from outside.
async fn task_pid(dirs: &Dirs, arn: &str) -> u32 {
    let id = arn.rsplit('/').next().unwrap();
    let backend = ProcessContainerizer::new(&dirs.backend).unwrap();
    let owned = hoist_core::Containerizer::list_owned(&backend, &"hoist-ecs".into())
        .await
        .unwrap();
    let container = owned
        .iter()
        .find(|c| c.owner.task_id.as_str() == format!("{id}/app"))
        .unwrap_or_else(|| panic!("no container for task {id} in {owned:?}"));
    let info = hoist_core::Containerizer::inspect(&backend, &container.id)
        .await
        .unwrap();
    info.pid.expect("a running task has a process")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_service_behind_a_target_group_replaces_a_killed_task_across_restarts() {
    let dirs = dirs();
    let server = start(&dirs).await;
    let seen = boto3(&server.endpoint, "ecs-setup", &[]).await;
    let tg = seen["tg"].as_str().unwrap().to_owned();
    let tasks: Vec<String> = seen["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    server.stop().await;

    // While no server runs, one task's process is killed from outside.
    let pid = task_pid(&dirs, &tasks[0]).await;
    let killed = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(killed.success());

    let server = start(&dirs).await;
    let seen = boto3(&server.endpoint, "ecs-replaced", &[&tg, &tasks[0]]).await;
    assert_eq!(seen["ports"].as_array().unwrap().len(), 2);
    // The AWS CLI sees the same cluster and group.
    let clusters = aws(&server.endpoint, &["ecs", "list-clusters"]).await;
    assert_eq!(
        clusters["clusterArns"],
        serde_json::json!(["arn:aws:ecs:us-east-1:000000000000:cluster/web"])
    );
    let groups = aws(
        &server.endpoint,
        &["elbv2", "describe-target-groups", "--names", "web-tg"],
    )
    .await;
    assert_eq!(groups["TargetGroups"][0]["TargetGroupArn"], tg.as_str());
    server.stop().await;

    let server = start(&dirs).await;
    boto3(&server.endpoint, "ecs-delete", &[&tg]).await;
    server.stop().await;
    let backend = ProcessContainerizer::new(&dirs.backend).unwrap();
    let owned = hoist_core::Containerizer::list_owned(&backend, &"hoist-ecs".into())
        .await
        .unwrap();
    assert!(owned.is_empty(), "{owned:?}");
}
