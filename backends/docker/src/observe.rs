//! Resource usage from the Engine's stats API, and interactive sessions through exec attach.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerStatsResponse, ExecConfig};
use bollard::query_parameters::StatsOptionsBuilder;
use futures::{FutureExt, StreamExt};
use hoist_core::observe::{BlockIoUsage, NetworkUsage, ResourceUsage, UsageStream};
use hoist_core::session::{ExecRequest, ExecSession, ResizeFn, TerminalSize};
use hoist_core::{ContainerId, Error, ErrorKind, ExitStatus, LogChunk, LogStream, Result};

use crate::engine_error::{engine_error, message_of, status_of};
use crate::state::exit_status_from_code;

/// A usage sample from one Engine stats answer. The Engine reports cgroup v1 figures (`rss`,
/// `cache`, `swap`) or v2 ones (`anon`, `file`) in `memory_stats.stats`; both are read.
pub(crate) fn usage_of(stats: &ContainerStatsResponse) -> ResourceUsage {
    let mut usage = ResourceUsage::now();
    if let Some(cpu) = &stats.cpu_stats {
        if let Some(cpu_usage) = &cpu.cpu_usage {
            let ns = |v: Option<u64>| v.map(Duration::from_nanos);
            usage.cpu.total = ns(cpu_usage.total_usage);
            usage.cpu.user = ns(cpu_usage.usage_in_usermode);
            usage.cpu.system = ns(cpu_usage.usage_in_kernelmode);
        }
        if let Some(throttling) = &cpu.throttling_data {
            usage.cpu.throttled_periods = throttling.throttled_periods;
            usage.cpu.throttled_time = throttling.throttled_time.map(Duration::from_nanos);
        }
    }
    if let Some(memory) = &stats.memory_stats {
        usage.memory.usage = memory.usage;
        usage.memory.max_usage = memory.max_usage;
        if let Some(figures) = &memory.stats {
            let first = |names: &[&str]| names.iter().find_map(|n| figures.get(*n).copied());
            usage.memory.rss = first(&["rss", "anon"]);
            usage.memory.cache = first(&["cache", "file"]);
            usage.memory.swap = first(&["swap"]);
        }
    }
    usage.pids = stats.pids_stats.as_ref().and_then(|p| p.current);
    if let Some(networks) = &stats.networks {
        let mut total = NetworkUsage::default();
        for network in networks.values() {
            total.rx_bytes += network.rx_bytes.unwrap_or(0);
            total.tx_bytes += network.tx_bytes.unwrap_or(0);
            total.rx_packets += network.rx_packets.unwrap_or(0);
            total.tx_packets += network.tx_packets.unwrap_or(0);
        }
        usage.network = Some(total);
    }
    if let Some(entries) = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
    {
        let mut io = BlockIoUsage::default();
        for entry in entries {
            let value = entry.value.unwrap_or(0);
            match entry.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => io.read_bytes += value,
                Some("write") => io.write_bytes += value,
                _ => {}
            }
        }
        usage.block_io = Some(io);
    }
    usage
}

/// The Engine's stats of container `id`, one sample per `interval` at most (the Engine sends
/// one a second), until the container has stopped: the Engine then ends the stream, or sends
/// samples without a CPU reading.
pub(crate) fn stats(docker: &Docker, id: &ContainerId, interval: Duration) -> UsageStream {
    let options = StatsOptionsBuilder::new().stream(true).build();
    let answers = docker.stats(id.as_str(), Some(options));
    let container = id.to_string();
    let state = (Box::pin(answers), None::<ResourceUsage>, None::<SystemTime>);
    Box::pin(futures::stream::unfold(
        state,
        move |(mut answers, previous, last_sent)| {
            let container = container.clone();
            async move {
                loop {
                    let answer = match answers.next().await? {
                        Ok(answer) => answer,
                        Err(e) if status_of(&e) == Some(404) => return None,
                        Err(e) => {
                            let error = engine_error(e, "stats", &container);
                            return Some((Err(error), (answers, previous, last_sent)));
                        }
                    };
                    let usage = usage_of(&answer);
                    // A stopped container's answers have no CPU reading: it is over.
                    if usage.cpu.total.is_none_or(|t| t.is_zero()) && previous.is_some() {
                        return None;
                    }
                    let now = usage.time.unwrap_or_else(SystemTime::now);
                    let due = last_sent.is_none_or(|sent| {
                        now.duration_since(sent).unwrap_or_default() + Duration::from_millis(50)
                            >= interval
                    });
                    if !due {
                        continue;
                    }
                    let usage = match &previous {
                        Some(previous) => usage.with_percent_since(previous),
                        None => usage,
                    };
                    let state = (answers, Some(usage.clone()), Some(now));
                    return Some((Ok(usage), state));
                }
            }
        },
    ))
}

/// Runs `request` in container `id` with the Engine's exec attach: input, output (one stream
/// on a terminal), resizes, and the exit code once the output has ended.
pub(crate) async fn exec_stream(
    docker: &Docker,
    id: &ContainerId,
    request: ExecRequest,
) -> Result<ExecSession> {
    if request.argv.is_empty() {
        return Err(
            Error::invalid_field("argv", "is empty: exec_stream needs a command")
                .with_operation("exec_stream")
                .with_context("container", id),
        );
    }
    let config = ExecConfig {
        cmd: Some(request.argv.clone()),
        attach_stdin: Some(request.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(request.tty),
        ..ExecConfig::default()
    };
    let exec_id = docker
        .create_exec(id.as_str(), config)
        .await
        .map_err(|e| {
            if status_of(&e) == Some(409) {
                Error::new(
                    ErrorKind::InvalidState,
                    format!("the container is not running: {}", message_of(&e).trim()),
                )
                .with_operation("exec_stream")
                .with_context("container", id)
            } else {
                engine_error(e, "exec_stream", id.as_str())
            }
        })?
        .id;
    let started = docker
        .start_exec(
            &exec_id,
            Some(StartExecOptions {
                detach: false,
                tty: request.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| engine_error(e, "exec_stream", id.as_str()))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(Error::new(
            ErrorKind::Backend,
            "the Docker Engine started the exec detached",
        )
        .with_operation("exec_stream")
        .with_context("container", id));
    };
    let container = id.to_string();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let output = futures::stream::unfold((output, Some(done_tx)), move |(mut output, mut done)| {
        let container = container.clone();
        async move {
            let Some(item) = output.next().await else {
                // The command's output has ended: its exit can now be read.
                if let Some(done) = done.take() {
                    let _ = done.send(());
                }
                return None;
            };
            let chunk = item
                .map(|out| match out {
                    LogOutput::StdErr { message } => LogChunk {
                        stream: LogStream::Stderr,
                        data: message,
                    },
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => LogChunk {
                        stream: LogStream::Stdout,
                        data: message,
                    },
                })
                .map_err(|e| engine_error(e, "exec_stream", &container));
            Some((chunk, (output, done)))
        }
    });
    let resize: Option<ResizeFn> = request.tty.then(|| {
        let (docker, exec_id) = (docker.clone(), exec_id.clone());
        let resize: ResizeFn = Arc::new(move |size: TerminalSize| {
            let (docker, exec_id) = (docker.clone(), exec_id.clone());
            async move {
                let options = ResizeExecOptions {
                    height: size.rows,
                    width: size.cols,
                };
                docker
                    .resize_exec(&exec_id, options)
                    .await
                    .map_err(|e| engine_error(e, "resize", &exec_id))
            }
            .boxed()
        });
        resize
    });
    if let (Some(size), Some(resize)) = (request.size, &resize) {
        resize(size).await?;
    }
    let (docker, container) = (docker.clone(), id.to_string());
    let exit = async move {
        // The exit code is known once the output has ended. A caller that dropped the output
        // before its end waits for the command to stop running instead.
        let read_to_the_end = done_rx.await.is_ok();
        loop {
            let inspected = docker
                .inspect_exec(&exec_id)
                .await
                .map_err(|e| engine_error(e, "exec_stream", &container))?;
            if read_to_the_end || inspected.running != Some(true) {
                return Ok(match inspected.exit_code {
                    Some(code) => exit_status_from_code(code, false),
                    None => ExitStatus::default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    .boxed();
    let input = request.stdin.then_some(input);
    Ok(ExecSession::new(input, output.boxed(), resize, exit))
}
