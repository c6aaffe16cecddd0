//! [`DockerContainerizer`]: the [`Containerizer`] on the Docker Engine.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures::StreamExt;
use hoist_core::labels;
use hoist_core::observe::UsageStream;
use hoist_core::session::{ExecRequest, ExecSession};
use hoist_core::{
    Capabilities, ContainerId, ContainerInfo, ContainerSpec, Containerizer, Error, ErrorKind,
    ExecOutput, ExecutorId, ExitStatus, LogChunk, LogChunks, LogOptions, LogStream, OwnedContainer,
    Owner, PullPolicy, Result, TaskId,
};

use crate::config::DockerConfig;
use crate::engine_error::{engine_error, message_of, status_of};
use crate::state::{Phase, exit_of, info_of, phase, summary_state};
use crate::{exec, image, observe, spec};

/// Runs containers on a Docker Engine.
///
/// Create maps the whole [`ContainerSpec`] (see [`crate::create_body`]) and pulls the image by
/// its pull policy; `wait` blocks on the Engine's own wait endpoint, so a container killed or
/// removed outside the executor is noticed at once; `stop` sends TERM, then KILL once the grace
/// has passed, with millisecond precision.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use std::time::Duration;
/// use hoist_core::{ContainerSpec, Containerizer, ContainerizerExt, Owner};
/// use hoist_docker::{DockerConfig, DockerContainerizer};
///
/// let docker = DockerContainerizer::connect(DockerConfig::from_env()).await?;
/// let mut spec = ContainerSpec::command(["sh", "-c", "exit 3"]);
/// spec.image = Some("busybox:1.36".into());
/// let owner = Owner { executor_id: "example".into(), task_id: "job".into() };
/// let status = docker.run_to_completion(&owner, &spec, Duration::from_secs(30)).await?;
/// assert_eq!(status.code, Some(3));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DockerContainerizer {
    docker: Docker,
    config: DockerConfig,
    local: bool,
    api_version: String,
}

impl std::fmt::Debug for DockerContainerizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerContainerizer")
            .field("host", &self.config.host)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl DockerContainerizer {
    /// Connects to the Engine at the configured address and negotiates the API version (the
    /// newest both sides speak). An Engine that cannot be reached is an
    /// [`ErrorKind::Unavailable`] error naming the address tried.
    pub async fn connect(config: DockerConfig) -> Result<Self> {
        let host = config.host.clone();
        let unreachable = |detail: String| {
            Error::new(
                ErrorKind::Unavailable,
                format!("could not reach the Docker Engine at {host}: {detail}"),
            )
            .with_operation("connect")
            .with_context("address", &host)
        };
        let timeout_secs = config.request_timeout.as_secs().max(1);
        let (client, local) = if host.starts_with("unix://") {
            (
                Docker::connect_with_unix(&host, timeout_secs, API_DEFAULT_VERSION),
                true,
            )
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            (
                Docker::connect_with_http(&host, timeout_secs, API_DEFAULT_VERSION),
                false,
            )
        } else {
            return Err(Error::invalid(format!(
                "the Docker Engine address `{host}` is not supported (use unix://, tcp:// or http://)"
            ))
            .with_operation("connect")
            .with_context("address", &host));
        };
        let client = client.map_err(|e| unreachable(e.to_string()))?;
        let docker =
            match tokio::time::timeout(config.connect_timeout, client.negotiate_version()).await {
                Ok(Ok(docker)) => docker,
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Err(_) => {
                    return Err(unreachable(format!(
                        "no answer within {:?}",
                        config.connect_timeout
                    )));
                }
            };
        let version = docker.client_version();
        let api_version = format!("{}.{}", version.major_version, version.minor_version);
        tracing::debug!(%host, %api_version, "connected to the Docker Engine");
        Ok(DockerContainerizer {
            docker,
            config,
            local,
            api_version,
        })
    }

    /// The Engine client, for what this backend does not cover.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The configuration this containerizer was connected with.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// The negotiated Engine API version (`"1.41"`).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    async fn inspect_raw(
        &self,
        id: &ContainerId,
        operation: &'static str,
    ) -> Result<ContainerInspectResponse> {
        self.docker
            .inspect_container(id.as_str(), None::<InspectContainerOptions>)
            .await
            .map_err(|e| engine_error(e, operation, id.as_str()))
    }

    async fn create_once(
        &self,
        body: &bollard::models::ContainerCreateBody,
    ) -> std::result::Result<ContainerId, bollard::errors::Error> {
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body.clone(),
            )
            .await?;
        for warning in &created.warnings {
            tracing::warn!(container = %created.id, %warning, "the Docker Engine warned on create");
        }
        Ok(ContainerId::new(created.id))
    }

    /// Sends `signal`; a container that is not running (or gone) is not an error here.
    async fn send_signal(&self, id: &ContainerId, signal: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        match self.docker.kill_container(id.as_str(), Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(engine_error(e, "stop", id.as_str())),
        }
    }

    /// Waits until the container is not running, for at most `timeout`; `Ok(false)` on timeout.
    async fn wait_not_running(&self, id: &ContainerId, timeout: Duration) -> Result<bool> {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(id.as_str(), Some(options));
        match tokio::time::timeout(timeout, stream.next()).await {
            Err(_) => Ok(false),
            Ok(
                None
                | Some(Ok(_))
                | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })),
            ) => Ok(true),
            Ok(Some(Err(e))) if status_of(&e) == Some(404) => Ok(true),
            Ok(Some(Err(e))) => Err(engine_error(e, "stop", id.as_str())),
        }
    }
}

fn gone(id: &ContainerId, operation: &'static str, why: &str) -> Error {
    Error::not_found("container", id)
        .with_operation(operation)
        .with_context("why", why)
}

#[async_trait]
impl Containerizer for DockerContainerizer {
    fn name(&self) -> &str {
        "docker"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let body = spec::create_body(owner, spec, &self.config)?;
        let image = body.image.clone().unwrap_or_default();
        let with_task = |e: Error| e.with_context("task", &owner.task_id);
        if spec.pull_policy == PullPolicy::Always {
            image::pull(&self.docker, &image, self.config.pull_timeout)
                .await
                .map_err(with_task)?;
        }
        let missing_image = |e: &bollard::errors::Error| {
            status_of(e) == Some(404) && message_of(e).to_lowercase().contains("no such image")
        };
        match self.create_once(&body).await {
            Ok(id) => Ok(id),
            Err(e) if missing_image(&e) => match spec.pull_policy {
                PullPolicy::Never => Err(with_task(
                    Error::new(
                        ErrorKind::NotFound,
                        format!("image `{image}` is not present on the Docker Engine and the pull policy is `never`"),
                    )
                    .with_operation("create")
                    .with_context("image", &image),
                )),
                PullPolicy::IfNotPresent | PullPolicy::Always => {
                    image::pull(&self.docker, &image, self.config.pull_timeout).await.map_err(with_task)?;
                    self.create_once(&body).await.map_err(|e| with_task(engine_error(e, "create", "")))
                }
            },
            Err(e) => Err(with_task(engine_error(e, "create", "").with_context("image", &image))),
        }
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        match self.docker.start_container(id.as_str(), None).await {
            Ok(()) => Ok(()),
            Err(e) => Err(engine_error(e, "start", id.as_str())),
        }
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        loop {
            let response = self.inspect_raw(id, "wait").await?;
            let condition = match phase(&response) {
                Phase::Exited => return Ok(exit_of(&response)),
                Phase::Removing => return Err(gone(id, "wait", "removed outside the executor")),
                Phase::Created => "next-exit",
                Phase::Running => "not-running",
            };
            let options = WaitContainerOptionsBuilder::new()
                .condition(condition)
                .build();
            let mut stream = self.docker.wait_container(id.as_str(), Some(options));
            let next = if condition == "next-exit" {
                // A created container may be started and exit between the inspect and this
                // call, which `next-exit` would miss: look again now and then.
                match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                    Ok(next) => next,
                    Err(_) => continue,
                }
            } else {
                stream.next().await
            };
            match next {
                // The container stopped (the Engine client turns a non-zero exit into an
                // error): inspect again for the exit code, the OOM flag, or its removal.
                Some(Ok(_))
                | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => continue,
                Some(Err(e)) if status_of(&e) == Some(404) => {
                    return Err(gone(id, "wait", "removed outside the executor"));
                }
                Some(Err(e)) => return Err(engine_error(e, "wait", id.as_str())),
                None => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "the Docker Engine closed the wait without an answer",
                    )
                    .with_operation("wait")
                    .with_context("container", id));
                }
            }
        }
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let response = self.inspect_raw(id, "stop").await?;
        if phase(&response) != Phase::Running {
            return Ok(());
        }
        if !grace.is_zero() {
            self.send_signal(id, "SIGTERM").await?;
            if self.wait_not_running(id, grace).await? {
                return Ok(());
            }
        }
        self.send_signal(id, "SIGKILL").await?;
        if self.wait_not_running(id, self.config.kill_timeout).await? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the container was still running {:?} after KILL",
                    self.config.kill_timeout
                ),
            )
            .with_operation("stop")
            .with_context("container", id))
        }
    }

    async fn remove(&self, id: &ContainerId, force: bool) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(force)
            .v(true)
            .build();
        match self
            .docker
            .remove_container(id.as_str(), Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e)
                if status_of(&e) == Some(409) && message_of(&e).contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) if status_of(&e) == Some(409) => Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "the container is running; remove it with force ({})",
                    message_of(&e).trim()
                ),
            )
            .with_operation("remove")
            .with_context("container", id)),
            Err(e) => Err(engine_error(e, "remove", id.as_str())),
        }
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let response = self.inspect_raw(id, "inspect").await?;
        if phase(&response) == Phase::Removing {
            return Err(gone(id, "inspect", "being removed"));
        }
        Ok(info_of(id, &response, self.local))
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        exec::exec(&self.docker, id, argv, timeout, self.local).await
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogChunks> {
        // Ask first, so an unknown container is an error of this call, not of the stream.
        self.inspect_raw(id, "logs").await?;
        let mut builder = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(options.follow);
        let tail = options.tail.map(|n| n.to_string());
        builder = builder.tail(tail.as_deref().unwrap_or("all"));
        let timeout = if options.follow {
            self.config.follow_logs_timeout
        } else {
            self.config.request_timeout
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let container = id.to_string();
        let stream = self.docker.logs(id.as_str(), Some(builder.build()));
        let chunks =
            futures::stream::unfold((Box::pin(stream), false), move |(mut stream, done)| {
                let container = container.clone();
                async move {
                    if done {
                        return None;
                    }
                    match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(None) => None,
                        Ok(Some(Ok(output))) => {
                            let chunk = match output {
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
                            };
                            Some((Ok(chunk), (stream, false)))
                        }
                        Ok(Some(Err(e))) => {
                            Some((Err(engine_error(e, "logs", &container)), (stream, true)))
                        }
                        Err(_) => Some((
                            Err(Error::new(
                                ErrorKind::Timeout,
                                format!("the log stream passed its {timeout:?} deadline"),
                            )
                            .with_operation("logs")
                            .with_context("container", &container)),
                            (stream, true),
                        )),
                    }
                }
            });
        Ok(Box::pin(chunks))
    }

    async fn list_owned(&self, executor: &ExecutorId) -> Result<Vec<OwnedContainer>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label",
            vec![format!("{}={}", labels::EXECUTOR_ID, executor)],
        );
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let started = Instant::now();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine_error(e, "list_owned", "").with_context("executor", executor))?;
        tracing::debug!(executor = %executor, found = summaries.len(), elapsed = ?started.elapsed(), "listed owned containers");
        let mut owned = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            let task = summary
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::TASK_ID))
                .cloned();
            let Some(task) = task else {
                tracing::warn!(container = %id, "an owned container has no task label; skipping it");
                continue;
            };
            owned.push(OwnedContainer {
                id: ContainerId::new(id),
                owner: Owner {
                    executor_id: executor.clone(),
                    task_id: TaskId::new(task),
                },
                state: summary_state(summary.state),
            });
        }
        owned.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(owned)
    }

    async fn stats(&self, id: &ContainerId, interval: Duration) -> Result<UsageStream> {
        // Ask first, so an unknown container is an error of this call, not of the stream.
        self.inspect_raw(id, "stats").await?;
        Ok(observe::stats(&self.docker, id, interval))
    }

    async fn signal(&self, id: &ContainerId, signal: i32) -> Result<()> {
        let state = self.inspect_raw(id, "signal").await?.state;
        if !state.and_then(|s| s.running).unwrap_or(false) {
            return Err(
                Error::new(ErrorKind::InvalidState, "the container is not running")
                    .with_operation("signal")
                    .with_context("container", id),
            );
        }
        let options = KillContainerOptionsBuilder::new()
            .signal(&signal.to_string())
            .build();
        self.docker
            .kill_container(id.as_str(), Some(options))
            .await
            .map_err(|e| engine_error(e, "signal", id.as_str()))
    }

    async fn exec_stream(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecSession> {
        observe::exec_stream(&self.docker, id, request).await
    }
}
