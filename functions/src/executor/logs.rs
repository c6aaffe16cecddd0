//! The log of one invocation, for `X-Amz-Log-Type: Tail`: the output its environment wrote
//! between the hand-over and the answer, read through the containerizer's `logs`, framed by
//! the `START`, `END` and `REPORT` lines AWS writes, cut to the last 4 KB.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hoist_core::scheduler::EnvironmentId;
use hoist_core::{ContainerId, Containerizer, LogOptions, LogStream};

/// How much of an invocation's log is returned (the last 4 KB, as on AWS).
pub(crate) const LOG_TAIL_BYTES: usize = 4 * 1024;

/// How long to wait for output still on its way to the log between reads at the end of an
/// invocation.
const SETTLE_STEP: Duration = Duration::from_millis(25);
/// At most this many extra reads while the log still grows.
const SETTLE_READS: usize = 8;
/// How long reading the log may take, at the hand-over and again after the answer: a backend
/// whose `logs` hangs must not hold the invocation (and its environment) with it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// `read` within [`READ_TIMEOUT`].
async fn bounded<T>(read: impl Future<Output = hoist_core::Result<T>>) -> hoist_core::Result<T> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(hoist_core::Error::new(
                hoist_core::ErrorKind::Timeout,
                format!("the log was not read within {READ_TIMEOUT:?}"),
            ))
        })
}

/// Where an environment's log stood when an invocation was handed over.
#[derive(Debug, Clone)]
pub(super) struct LogMark {
    container: Option<ContainerId>,
    /// Bytes already written to stdout and stderr.
    offsets: [usize; 2],
    /// Why the log could not be read at the hand-over, if it could not.
    failed: Option<String>,
}

impl LogMark {
    /// Names the container when the mark was taken before it was known: the whole log of a
    /// container that did not exist at the hand-over belongs to this invocation.
    pub(super) fn or_container(mut self, container: Option<ContainerId>) -> Self {
        if self.container.is_none() {
            self.container = container;
            self.offsets = [0; 2];
            self.failed = None;
        }
        self
    }
}

fn index(stream: LogStream) -> usize {
    match stream {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

/// The whole log of `container` as ordered chunks.
async fn read(
    containerizer: &dyn Containerizer,
    container: &ContainerId,
) -> hoist_core::Result<Vec<(usize, Bytes)>> {
    let mut chunks = containerizer.logs(container, LogOptions::default()).await?;
    let mut all = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        all.push((index(chunk.stream), chunk.data));
    }
    Ok(all)
}

fn lengths(chunks: &[(usize, Bytes)]) -> [usize; 2] {
    let mut lengths = [0; 2];
    for (stream, data) in chunks {
        lengths[*stream] += data.len();
    }
    lengths
}

/// The output of `chunks` past `offsets`, in the order the chunks came.
fn since(chunks: &[(usize, Bytes)], offsets: [usize; 2]) -> Vec<u8> {
    let mut seen = [0usize; 2];
    let mut out = Vec::new();
    for (stream, data) in chunks {
        let start = offsets[*stream]
            .saturating_sub(seen[*stream])
            .min(data.len());
        out.extend_from_slice(&data[start..]);
        seen[*stream] += data.len();
    }
    out
}

/// Marks where `environment`'s log stands now.
pub(super) async fn mark(
    containerizer: &dyn Containerizer,
    container: Option<ContainerId>,
) -> LogMark {
    let (offsets, failed) = match &container {
        Some(id) => match bounded(read(containerizer, id)).await {
            Ok(chunks) => (lengths(&chunks), None),
            Err(e) => ([0; 2], Some(e.to_string())),
        },
        None => ([0; 2], None),
    };
    LogMark {
        container,
        offsets,
        failed,
    }
}

/// The whole log of `container` once it stops growing: output written just before the
/// answer may still be on its way into the log (a container engine copies it from a pipe).
async fn settled(
    containerizer: &dyn Containerizer,
    container: &ContainerId,
) -> hoist_core::Result<Vec<(usize, Bytes)>> {
    let mut chunks = read(containerizer, container).await?;
    for _ in 0..SETTLE_READS {
        tokio::time::sleep(SETTLE_STEP).await;
        let again = read(containerizer, container).await?;
        let grew = lengths(&again) != lengths(&chunks);
        chunks = again;
        if !grew {
            break;
        }
    }
    Ok(chunks)
}

/// What AWS writes around an invocation's own output.
pub(super) struct Framing<'a> {
    pub(super) request_id: &'a str,
    pub(super) version: &'a str,
    pub(super) duration: Duration,
    pub(super) memory_mb: u32,
    /// A line the platform adds after the output (`Task timed out after 1.00 seconds`).
    pub(super) note: Option<String>,
}

/// The invocation's log since `mark`, framed and cut to [`LOG_TAIL_BYTES`].
pub(super) async fn tail(
    containerizer: &dyn Containerizer,
    mark: &LogMark,
    framing: Framing<'_>,
) -> Bytes {
    let mut output = Vec::new();
    if let Some(container) = &mark.container {
        let chunks = match &mark.failed {
            Some(failed) => Err(failed.clone()),
            None => bounded(settled(containerizer, container))
                .await
                .map_err(|e| e.to_string()),
        };
        match chunks {
            Ok(chunks) => output = since(&chunks, mark.offsets),
            Err(reason) => {
                tracing::warn!(%container, %reason, "could not read an invocation's log");
                output =
                    format!("hoist: could not read the environment's log: {reason}").into_bytes();
            }
        }
    }
    let Framing {
        request_id,
        version,
        duration,
        memory_mb,
        note,
    } = framing;
    let mut log = format!("START RequestId: {request_id} Version: {version}\n").into_bytes();
    log.extend_from_slice(&output);
    if !output.is_empty() && !output.ends_with(b"\n") {
        log.push(b'\n');
    }
    if let Some(note) = note {
        log.extend_from_slice(format!("{note}\n").as_bytes());
    }
    let millis = duration.as_secs_f64() * 1000.0;
    let billed = duration.as_micros().div_ceil(1000).max(1);
    log.extend_from_slice(
        format!(
            "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {millis:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\t\n"
        )
        .as_bytes(),
    );
    let start = log.len().saturating_sub(LOG_TAIL_BYTES);
    Bytes::from(log).slice(start..)
}

/// The container of `environment` on `executor`, if it has one yet.
pub(super) fn container_of(
    executor: &hoist_core::Executor,
    environment: &EnvironmentId,
) -> Option<ContainerId> {
    executor.container_of(&hoist_core::TaskId::new(environment.0.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(request_id: &str, note: Option<String>) -> Framing<'_> {
        Framing {
            request_id,
            version: "$LATEST",
            duration: Duration::from_micros(1500),
            memory_mb: 128,
            note,
        }
    }

    #[test]
    fn only_output_past_the_mark_is_kept_in_order() {
        let chunks = vec![
            (0, Bytes::from_static(b"old out\n")),
            (1, Bytes::from_static(b"old err\n")),
            (0, Bytes::from_static(b"new out\n")),
            (1, Bytes::from_static(b"new err\n")),
        ];
        assert_eq!(since(&chunks, [8, 8]), b"new out\nnew err\n");
        // A mark inside a chunk keeps its rest.
        assert_eq!(since(&chunks, [12, 16]), b"out\n");
        assert_eq!(lengths(&chunks), [16, 16]);
    }

    #[tokio::test]
    async fn a_container_unknown_at_the_hand_over_gives_its_whole_log() {
        use hoist_core::testing::{FakeContainerizer, Script};
        use hoist_core::{ContainerSpec, Owner};
        let fake = FakeContainerizer::new();
        fake.script(
            "env-1",
            Script {
                logs: vec![
                    (LogStream::Stdout, Bytes::from_static(b"init out\n")),
                    (LogStream::Stderr, Bytes::from_static(b"init err\n")),
                ],
                ..Script::default()
            },
        );
        let owner = Owner {
            executor_id: "e".into(),
            task_id: "env-1".into(),
        };
        let id = fake
            .create(&owner, &ContainerSpec::command(["fn"]))
            .await
            .unwrap();

        let unknown = mark(&fake, None).await.or_container(Some(id.clone()));
        let log = tail(&fake, &unknown, framing("r-1", None)).await;
        let text = String::from_utf8(log.to_vec()).unwrap();
        assert!(text.contains("$LATEST\ninit out\ninit err\nEND"), "{text}");

        // A mark taken on a known container keeps its offsets.
        let known = mark(&fake, Some(id.clone())).await.or_container(None);
        let log = tail(&fake, &known, framing("r-2", None)).await;
        let text = String::from_utf8(log.to_vec()).unwrap();
        assert!(text.contains("$LATEST\nEND RequestId: r-2"), "{text}");

        // A log that cannot be read says so in the tail instead of looking empty.
        let gone = mark(&fake, Some(ContainerId::new("gone"))).await;
        let text =
            String::from_utf8(tail(&fake, &gone, framing("r-3", None)).await.to_vec()).unwrap();
        assert!(
            text.contains("hoist: could not read the environment's log: ") && text.contains("gone"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_tail_is_framed_and_cut_to_four_kilobytes() {
        let fake = hoist_core::testing::FakeContainerizer::new();
        let mark = LogMark {
            container: None,
            offsets: [0; 2],
            failed: None,
        };
        let log = tail(&fake, &mark, framing("r-1", Some("Task timed out".into()))).await;
        let text = String::from_utf8(log.to_vec()).unwrap();
        assert!(
            text.starts_with("START RequestId: r-1 Version: $LATEST\n"),
            "{text}"
        );
        assert!(
            text.contains("Task timed out\nEND RequestId: r-1\n"),
            "{text}"
        );
        assert!(text.contains("Duration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB"));
        assert!(log.len() <= LOG_TAIL_BYTES);
    }
}
