//! What a container says: `exec` and `logs`.

use std::time::{Duration, Instant};

use crate::container::{ContainerState, ExecOutput, LogOptions};
use crate::containerizer::Containerizer;
use crate::error::{ErrorKind, Result};

use super::{ConformanceTarget, Scratch};

/// `exec` returns the command's output and exit code, and a command outliving its timeout is
/// an [`ErrorKind::Timeout`] error. Backends without exec answer [`ErrorKind::Unsupported`].
pub async fn exec(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "exec");
    let result = async {
        let id = s.create("exec", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        if !c.capabilities().exec {
            let err = c.exec(&id, &(t.exec_prints)("x", 0), t.timeout).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("exec without the capability should be Unsupported, got {err:?}"),
            );
        }
        for code in [0, 4] {
            let argv = (t.exec_prints)("exec says hi", code);
            let out: ExecOutput = s.within("exec", c.exec(&id, &argv, t.timeout)).await?;
            s.ensure(
                out.exit_code == Some(code),
                format!("exec exiting {code} reported {:?}", out.exit_code),
            )?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            s.ensure(
                stdout.contains("exec says hi"),
                format!("exec stdout is {stdout:?}, without what the command printed"),
            )?;
        }
        let short = Duration::from_millis(300);
        let started = Instant::now();
        let hung = s
            .within("exec with a timeout", async {
                Ok(c.exec(&id, &t.exec_hangs, short).await)
            })
            .await?;
        s.ensure(
            matches!(&hung, Err(e) if e.kind() == ErrorKind::Timeout),
            format!("an exec past its timeout should be a Timeout error, got {hung:?}"),
        )?;
        s.ensure(
            started.elapsed() >= short,
            format!(
                "exec timed out after {:?}, before its timeout of {short:?}",
                started.elapsed()
            ),
        )?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.state == ContainerState::Running,
            "a timed-out exec must not end its container",
        )
    }
    .await;
    s.finish(result).await
}

/// What a container printed is in `logs`, with and without `follow` (which ends once the
/// container has exited). Backends without logs answer [`ErrorKind::Unsupported`].
pub async fn logs(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "logs");
    let result = async {
        let id = s
            .create("printer", &(t.prints)("hello from the container"))
            .await?;
        s.within("start", c.start(&id)).await?;
        s.within("wait", c.wait(&id)).await?;
        if !c.capabilities().logs {
            let err = c.logs(&id, LogOptions::default()).await.err();
            return s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::Unsupported),
                format!("logs without the capability should be Unsupported, got {err:?}"),
            );
        }
        for follow in [false, true] {
            let options = LogOptions { follow, tail: None };
            let stdout = s.within("logs", s.read_stdout(&id, options)).await?;
            s.ensure(
                stdout.contains("hello from the container"),
                format!("logs (follow: {follow}) hold {stdout:?}, not what the container printed"),
            )?;
        }
        Ok(())
    }
    .await;
    s.finish(result).await
}
