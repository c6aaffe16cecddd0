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

/// Where an environment's log stood when an invocation was handed over.
#[derive(Debug, Clone)]
pub(super) struct LogMark {
    container: Option<ContainerId>,
    /// Bytes already written to stdout and stderr.
    offsets: [usize; 2],
}

fn index(stream: LogStream) -> usize {
    match stream {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

/// The whole log of `container` as ordered chunks; empty when the backend has none.
async fn read(containerizer: &dyn Containerizer, container: &ContainerId) -> Vec<(usize, Bytes)> {
    let Ok(mut chunks) = containerizer.logs(container, LogOptions::default()).await else {
        return Vec::new();
    };
    let mut all = Vec::new();
    while let Some(Ok(chunk)) = chunks.next().await {
        all.push((index(chunk.stream), chunk.data));
    }
    all
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
    let offsets = match &container {
        Some(container) => lengths(&read(containerizer, container).await),
        None => [0; 2],
    };
    LogMark { container, offsets }
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
        // Output written just before the answer may still be on its way into the log
        // (a container engine copies it from a pipe): read until it stops growing.
        let mut chunks = read(containerizer, container).await;
        for _ in 0..SETTLE_READS {
            tokio::time::sleep(SETTLE_STEP).await;
            let again = read(containerizer, container).await;
            let grew = lengths(&again) != lengths(&chunks);
            chunks = again;
            if !grew {
                break;
            }
        }
        output = since(&chunks, mark.offsets);
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
    executor
        .tasks()
        .into_iter()
        .find(|(task, _, _)| task.as_str() == environment.0)
        .and_then(|(_, _, container)| container)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn the_tail_is_framed_and_cut_to_four_kilobytes() {
        let fake = hoist_core::testing::FakeContainerizer::new();
        let mark = LogMark {
            container: None,
            offsets: [0; 2],
        };
        let framing = |note| Framing {
            request_id: "r-1",
            version: "$LATEST",
            duration: Duration::from_micros(1500),
            memory_mb: 128,
            note,
        };
        let log = tail(&fake, &mark, framing(Some("Task timed out".into()))).await;
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
