//! What a container uses and how to reach into it: `stats`, `signal` and `exec_stream`. Each
//! check holds a backend without the capability to an [`ErrorKind::Unsupported`] answer.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{ConformanceTarget, Scratch};
use crate::container::LogStream;
use crate::containerizer::Containerizer;
use crate::error::{ErrorKind, Result};
use crate::session::ExecRequest;

/// `stats` gives a first sample with at least one figure within the deadline, and the stream
/// ends once the container has exited.
pub async fn stats_report_usage(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "stats_report_usage");
    let result = async {
        let id = s.create("stats", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        if !c.capabilities().stats {
            let err = c.stats(&id, Duration::from_millis(100)).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("stats without the capability should be Unsupported, got {err:?}"),
            );
        }
        let mut samples = s
            .within("stats", c.stats(&id, Duration::from_millis(100)))
            .await?;
        let first = s
            .within("the first sample", async {
                samples.next().await.transpose()
            })
            .await?;
        let first = first.ok_or_else(|| s.fail("the stats stream ended at once"))?;
        s.ensure(
            !first.measured().is_empty(),
            format!("the first sample measured nothing: {first:?}"),
        )?;
        s.within("stop", c.stop(&id, t.grace)).await?;
        s.within("the end of the stream after the exit", async {
            while samples.next().await.transpose()?.is_some() {}
            Ok(())
        })
        .await
    }
    .await;
    s.finish(result).await
}

/// A signal reaches the container's process (it traps HUP and says so), and a signal to an
/// exited container is refused.
pub async fn signals_reach_the_process(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "signals_reach_the_process");
    let result = async {
        let spec = t.traps_hup.as_ref().unwrap_or(&t.runs_forever);
        let id = s.create("signal", spec).await?;
        s.within("start", c.start(&id)).await?;
        if !c.capabilities().signal {
            let err = c.signal(&id, 1).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("signal without the capability should be Unsupported, got {err:?}"),
            );
        }
        let Some(_) = &t.traps_hup else {
            return Ok(());
        };
        s.wait_for_output(&id, "ready").await?;
        s.within("signal HUP", c.signal(&id, 1)).await?;
        s.wait_for_output(&id, "hup").await?;
        s.within("stop", c.stop(&id, t.grace)).await?;
        let err = c.signal(&id, 1).await.err();
        s.ensure(
            err.as_ref()
                .is_some_and(|e| matches!(e.kind(), ErrorKind::InvalidState | ErrorKind::NotFound)),
            format!("a signal to an exited container should be refused, got {err:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// An interactive shell reads what is written to its input, answers on its output, and its
/// exit code comes back.
pub async fn interactive_sessions(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "interactive_sessions");
    let result = async {
        let id = s.create("interactive", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        let shell = t.interactive_shell.clone().unwrap_or_default();
        if !c.capabilities().exec_stream {
            let err = c.exec_stream(&id, ExecRequest::new(shell)).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("exec_stream without the capability should be Unsupported, got {err:?}"),
            );
        }
        if shell.is_empty() {
            return Ok(());
        }
        let mut session = s
            .within(
                "exec_stream",
                c.exec_stream(&id, ExecRequest::new(shell).stdin()),
            )
            .await?;
        let mut input = session
            .take_input()
            .ok_or_else(|| s.fail("the session has no input though one was asked for"))?;
        let mut output = session
            .take_output()
            .ok_or_else(|| s.fail("the session has no output"))?;
        s.within("write the input", async {
            input
                .write_all(b"echo conformance-$((6 * 7))\nexit 3\n")
                .await?;
            input.shutdown().await?;
            Ok(())
        })
        .await?;
        let said = s
            .within("read the output", async {
                let mut said = Vec::new();
                while let Some(chunk) = output.next().await {
                    let chunk = chunk?;
                    if chunk.stream == LogStream::Stdout {
                        said.extend_from_slice(&chunk.data);
                    }
                }
                Ok(String::from_utf8_lossy(&said).into_owned())
            })
            .await?;
        s.ensure(
            said.contains("conformance-42"),
            format!("the shell's answer was {said:?}, not conformance-42"),
        )?;
        let exit = s.within("the session's exit", session.wait()).await?;
        s.ensure(
            exit.code == Some(3),
            format!("the shell exited {exit}, not with code 3"),
        )
    }
    .await;
    s.finish(result).await
}
