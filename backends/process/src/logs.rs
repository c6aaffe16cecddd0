//! `logs`: the captured stdout and stderr files, read whole, by their last lines, or followed
//! until the container exits.

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use hoist_core::{LogChunk, LogChunks, LogOptions, LogStream, Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use crate::containerizer::Phase;
use crate::record::{ContainerDir, io_error};

/// The log chunks of the container in `dir`. Without `follow`, stdout's chunk comes before
/// stderr's (the files keep no interleaving); with it, new output is read every `interval`
/// until the container has exited and everything it wrote has been returned.
pub(crate) async fn read(
    dir: &ContainerDir,
    phase: watch::Receiver<Phase>,
    options: LogOptions,
    interval: Duration,
) -> Result<LogChunks> {
    let mut files = Vec::with_capacity(2);
    let mut first = VecDeque::new();
    for (stream, path) in [
        (LogStream::Stdout, dir.stdout()),
        (LogStream::Stderr, dir.stderr()),
    ] {
        let data = read_from(&path, 0).await?;
        let start = options.tail.map_or(0, |n| tail_start(&data, n));
        if start < data.len() {
            first.push_back(LogChunk {
                stream,
                data: Bytes::copy_from_slice(&data[start..]),
            });
        }
        files.push(LogFile {
            stream,
            path,
            offset: data.len() as u64,
        });
    }
    if !options.follow {
        return Ok(Box::pin(futures::stream::iter(first.into_iter().map(Ok))));
    }
    let follow = Follow {
        files,
        pending: first,
        phase,
        interval,
        ended: false,
    };
    Ok(Box::pin(futures::stream::unfold(follow, Follow::next)))
}

struct LogFile {
    stream: LogStream,
    path: PathBuf,
    offset: u64,
}

struct Follow {
    files: Vec<LogFile>,
    pending: VecDeque<LogChunk>,
    phase: watch::Receiver<Phase>,
    interval: Duration,
    ended: bool,
}

impl Follow {
    async fn next(mut self) -> Option<(Result<LogChunk>, Self)> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some((Ok(chunk), self));
            }
            if self.ended {
                return None;
            }
            // Look at the phase before reading: output written before the exit is then read
            // by this pass or an earlier one.
            let exited = !matches!(*self.phase.borrow(), Phase::Pending);
            for file in &mut self.files {
                match read_from(&file.path, file.offset).await {
                    Ok(data) if !data.is_empty() => {
                        file.offset += data.len() as u64;
                        self.pending.push_back(LogChunk {
                            stream: file.stream,
                            data: Bytes::from(data),
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.ended = true;
                        return Some((Err(e), self));
                    }
                }
            }
            if self.pending.is_empty() {
                if exited {
                    return None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    changed = self.phase.changed() => if changed.is_err() {
                        // The container was forgotten: read what is left, then end.
                        self.ended = true;
                    },
                }
            }
        }
    }
}

/// The bytes of `path` from `offset` on; a missing file (the container was removed) is empty.
async fn read_from(path: &PathBuf, offset: u64) -> Result<Vec<u8>> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("could not open a log file", path, e)),
    };
    let mut data = Vec::new();
    let read = async {
        file.seek(SeekFrom::Start(offset)).await?;
        file.read_to_end(&mut data).await
    };
    read.await
        .map_err(|e| io_error("could not read a log file", path, e))?;
    Ok(data)
}

/// Where the last `lines` lines of `data` start (a final line without a newline counts).
fn tail_start(data: &[u8], lines: usize) -> usize {
    if lines == 0 {
        return data.len();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'\n')
        .nth(lines - 1)
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let data = b"one\ntwo\nthree\n";
        assert_eq!(&data[tail_start(data, 1)..], b"three\n");
        assert_eq!(&data[tail_start(data, 2)..], b"two\nthree\n");
        assert_eq!(&data[tail_start(data, 9)..], data);
        assert_eq!(&data[tail_start(data, 0)..], b"");
        let open = b"one\ntwo";
        assert_eq!(&open[tail_start(open, 1)..], b"two");
    }
}
