//! Runs one task as a Kubernetes pod, prints its statuses and its log, and deletes the pod.
//!
//! ```text
//! cargo run --example kube-executor --features kube -- \
//!     --namespace functions --labels team=data --copy ./site:/srv/site \
//!     busybox:1.37 sh -c 'ls /srv/site; exit 3'
//! ```
//!
//! The cluster is the current context of `$KUBECONFIG` (else the in-cluster service account).
//! `--copy HOST:CONTAINER` copies a host directory (or file) into the pod through a ConfigMap
//! the pod owns, so the pod may run on any node; without it no host path is mounted. Ctrl-C
//! kills the task. The exit status is the task's: 0 when it finished, 1 otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use hoist::kube::{HostVolumes, KubeConfig, KubeContainerizer, parse_labels};
use hoist::{ContainerSpec, Containerizer, Executor, LogOptions, TaskSpec, TaskState, Volume};

const USAGE: &str = "usage: kube-executor [--namespace NS] [--labels k=v,...] \
                     [--copy HOST:CONTAINER]... IMAGE [COMMAND...]";

/// The command line: options first, then the image and its command.
fn parse(args: Vec<String>) -> anyhow::Result<(KubeConfig, ContainerSpec)> {
    let mut config = KubeConfig {
        host_volumes: HostVolumes::Copy,
        ..KubeConfig::default()
    };
    let mut volumes = Vec::new();
    let mut args = args.into_iter();
    let image = loop {
        let Some(arg) = args.next() else {
            anyhow::bail!("{USAGE}");
        };
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--namespace" => config.namespace = value("--namespace")?,
            "--labels" => config.labels = parse_labels(&value("--labels")?)?,
            "--copy" => {
                let pair = value("--copy")?;
                let Some((host, container)) = pair.split_once(':') else {
                    anyhow::bail!("--copy `{pair}` is not HOST:CONTAINER");
                };
                volumes.push(Volume {
                    host_path: std::fs::canonicalize(host)
                        .map_err(|e| anyhow::anyhow!("--copy `{host}`: {e}"))?,
                    container_path: PathBuf::from(container),
                    read_only: true,
                });
            }
            flag if flag.starts_with("--") => anyhow::bail!("unknown option `{flag}`\n{USAGE}"),
            _ => break arg,
        }
    };
    let mut container = ContainerSpec::command(args.collect::<Vec<_>>());
    container.image = Some(image);
    container.volumes = volumes;
    Ok((config, container))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (config, container) = parse(std::env::args().skip(1).collect())?;
    let pods = match std::env::var_os("KUBECONFIG") {
        Some(path) => {
            KubeContainerizer::from_kubeconfig(PathBuf::from(path).as_path(), config).await?
        }
        None => KubeContainerizer::in_cluster(config)?,
    };
    let pods = Arc::new(pods);
    // The example reads the pod's log after the task ends, then removes the pod itself.
    let executor = Executor::builder(pods.clone())
        .executor_id("kube-example")
        .keep_containers(true)
        .build()?;
    let mut statuses = executor.statuses();
    executor.launch(TaskSpec::new("example", container))?;

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut last = None;
    let mut pod = None;
    let mut killing = false;
    loop {
        tokio::select! {
            status = statuses.recv() => {
                let Some(status) = status else { break };
                println!("{status}");
                pod = status.container_id.clone().or(pod);
                if status.state.is_terminal() {
                    last = Some(status.state);
                    break;
                }
            }
            // Once: the future is done after the first Ctrl-C.
            _ = &mut ctrl_c, if !killing => {
                killing = true;
                executor.kill(&"example".into(), None)?;
            }
        }
    }
    if let Some(pod) = pod {
        // The pod's log, then the pod itself (and the ConfigMaps it owns) go.
        if let Ok(mut chunks) = pods.logs(&pod, LogOptions::default()).await {
            while let Some(Ok(chunk)) = chunks.next().await {
                print!("{}", String::from_utf8_lossy(&chunk.data));
            }
        }
        pods.remove(&pod, true).await?;
    }
    executor.shutdown(None).await;
    std::process::exit(if last == Some(TaskState::Finished) {
        0
    } else {
        1
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<String> {
        line.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn options_come_before_the_image_and_its_command() {
        let (config, spec) = parse(args(&[
            "--namespace",
            "jobs",
            "--labels",
            "a=b",
            "busybox:1.37",
            "sh",
            "-c",
            "--namespace is now an argument",
        ]))
        .unwrap();
        assert_eq!(config.namespace, "jobs");
        assert_eq!(config.labels["a"], "b");
        assert_eq!(config.host_volumes, HostVolumes::Copy);
        assert_eq!(spec.image.as_deref(), Some("busybox:1.37"));
        assert_eq!(spec.command, ["sh", "-c", "--namespace is now an argument"]);
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let message = |line: &[&str]| parse(args(line)).unwrap_err().to_string();
        assert!(message(&[]).starts_with("usage:"));
        assert!(message(&["--bogus", "x"]).contains("unknown option `--bogus`"));
        assert!(message(&["--namespace"]).contains("--namespace needs a value"));
        assert!(message(&["--copy", "nocolon", "img"]).contains("is not HOST:CONTAINER"));
        assert!(message(&["--copy", "/nonexistent/x:/y", "img"]).contains("`/nonexistent/x`"));
        assert!(message(&["--labels", "oops", "img"]).contains("oops"));
    }
}
