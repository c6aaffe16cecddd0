//! The lifecycle checks: create, start, inspect, wait, stop, remove, exit codes, TERM and KILL.

use std::time::{Duration, Instant};

use crate::container::{ContainerState, ExitStatus};
use crate::containerizer::Containerizer;
use crate::error::{ErrorKind, Result};

use super::{ConformanceTarget, SIGKILL, SIGTERM, Scratch};

/// Create, start, inspect (running, with a pid where the backend has one), stop (the wait
/// reports TERM), inspect (exited, with the status), remove (then the id is unknown).
pub async fn lifecycle(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "lifecycle");
    let result = async {
        let id = s.create("main", &t.runs_forever).await?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.id == id,
            format!("inspect reported id {} for {id}", info.id),
        )?;
        s.ensure(
            info.state == ContainerState::Created,
            format!("a created container is {:?}, not Created", info.state),
        )?;
        s.within("start", c.start(&id)).await?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.state == ContainerState::Running,
            format!("a started container is {:?}, not Running", info.state),
        )?;
        if t.reports_pid {
            s.ensure(
                info.pid.is_some_and(|p| p > 0),
                "a running container has no pid",
            )?;
        }
        s.ensure(info.exit.is_none(), "a running container reports an exit")?;
        s.within("stop", c.stop(&id, t.timeout)).await?;
        let status = s.within("wait", c.wait(&id)).await?;
        s.ensure(
            status.signal == Some(SIGTERM),
            format!("a stopped container should end by TERM, but it {status}"),
        )?;
        let info = s.within("inspect", c.inspect(&id)).await?;
        s.ensure(
            info.state == ContainerState::Exited,
            format!("a stopped container is {:?}, not Exited", info.state),
        )?;
        s.ensure(
            info.exit == Some(status),
            format!(
                "inspect reports exit {:?}, wait reported {status:?}",
                info.exit
            ),
        )?;
        s.within("remove", c.remove(&id, false)).await?;
        let err = c.inspect(&id).await.err();
        s.ensure(
            err.as_ref()
                .is_some_and(|e| e.kind() == ErrorKind::NotFound),
            format!("inspect after remove should be NotFound, got {err:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// `stop` twice, `stop` on an exited container, and `remove` twice all succeed; a removed
/// container is gone from `list_owned`.
pub async fn stop_and_remove_are_idempotent(
    c: &dyn Containerizer,
    t: &ConformanceTarget,
) -> Result<()> {
    let s = Scratch::new(c, t, "stop_and_remove_are_idempotent");
    let result = async {
        let id = s.create("twice", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        s.within("stop", c.stop(&id, t.timeout)).await?;
        s.within("second stop", c.stop(&id, t.timeout)).await?;
        let first = s.within("wait", c.wait(&id)).await?;
        s.within("remove", c.remove(&id, false)).await?;
        s.within("second remove", c.remove(&id, false)).await?;
        s.within("forced remove of a removed container", c.remove(&id, true))
            .await?;
        s.ensure(
            first.signal == Some(SIGTERM),
            format!("the stopped container {first}"),
        )?;

        let exited = s.create("exited", &(t.exits_with)(0)).await?;
        s.within("start", c.start(&exited)).await?;
        let status = s.within("wait", c.wait(&exited)).await?;
        s.within("stop of an exited container", c.stop(&exited, t.grace))
            .await?;
        let again = s.within("wait after stop", c.wait(&exited)).await?;
        s.ensure(
            status == again,
            format!("stopping an exited container changed its status from {status:?} to {again:?}"),
        )?;
        s.within("remove of an exited container", c.remove(&exited, false))
            .await?;
        s.within("second remove", c.remove(&exited, false)).await?;

        let running = s.create("forced", &t.runs_forever).await?;
        s.within("start", c.start(&running)).await?;
        s.within(
            "forced remove of a running container",
            c.remove(&running, true),
        )
        .await?;
        let err = c.inspect(&running).await.err();
        s.ensure(
            err.as_ref()
                .is_some_and(|e| e.kind() == ErrorKind::NotFound),
            format!("inspect after a forced remove should be NotFound, got {err:?}"),
        )?;
        let listed = s.within("list_owned", c.list_owned(&s.executor)).await?;
        s.ensure(
            listed.is_empty(),
            format!("removed containers are still listed: {listed:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// Waits started before the exit all return the same status; a wait after the exit returns
/// at once with it.
pub async fn wait_after_exit_and_concurrent_waits(
    c: &dyn Containerizer,
    t: &ConformanceTarget,
) -> Result<()> {
    let s = Scratch::new(c, t, "wait_after_exit_and_concurrent_waits");
    let result = async {
        let id = s.create("waited", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        let waits = futures::future::join_all((0..4).map(|_| c.wait(&id)));
        let stop = async {
            // Let the waits register before the container ends.
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.stop(&id, t.timeout).await
        };
        let (statuses, stopped) = s
            .within("concurrent waits", async {
                Ok(futures::join!(waits, stop))
            })
            .await?;
        stopped?;
        let statuses: Vec<ExitStatus> = statuses.into_iter().collect::<Result<_>>()?;
        s.ensure(
            statuses.windows(2).all(|w| w[0] == w[1]),
            format!("concurrent waits disagree: {statuses:?}"),
        )?;
        let at_once = tokio::time::timeout(Duration::from_secs(2), c.wait(&id)).await;
        match at_once {
            Ok(Ok(status)) => s.ensure(
                status == statuses[0],
                format!(
                    "a wait after the exit gave {status:?}, not {:?}",
                    statuses[0]
                ),
            ),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(s.fail("a wait after the exit did not return at once")),
        }
    }
    .await;
    s.finish(result).await
}

/// A container exiting 0 and one exiting 3 report exactly those codes and no signal.
pub async fn exit_codes(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "exit_codes");
    let result = async {
        for code in [0, 3] {
            let id = s
                .create(&format!("exit-{code}"), &(t.exits_with)(code))
                .await?;
            s.within("start", c.start(&id)).await?;
            let status = s.within("wait", c.wait(&id)).await?;
            s.ensure(
                status.code == Some(code) && status.signal.is_none(),
                format!("a container exiting {code} reported {status:?}"),
            )?;
            s.ensure(
                status.success() == (code == 0),
                format!("success() is wrong for {status:?}"),
            )?;
        }
        Ok(())
    }
    .await;
    s.finish(result).await
}

/// A container that honours TERM ends by TERM well before a long grace runs out.
pub async fn term_is_honoured(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "term_is_honoured");
    let result = async {
        let id = s.create("term", &t.runs_forever).await?;
        s.within("start", c.start(&id)).await?;
        let long_grace = t.timeout * 2;
        s.within("stop", c.stop(&id, long_grace)).await?;
        let status = s.within("wait", c.wait(&id)).await?;
        s.ensure(
            status.signal == Some(SIGTERM),
            format!("a container honouring TERM should end by TERM, but it {status}"),
        )
    }
    .await;
    s.finish(result).await
}

/// A container that ignores TERM is KILLed, and not before the grace has passed.
pub async fn kill_after_grace(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "kill_after_grace");
    let result = async {
        let id = s.create("stubborn", &t.ignores_term).await?;
        s.within("start", c.start(&id)).await?;
        if let Some(marker) = &t.ignores_term_ready {
            s.wait_for_output(&id, marker).await?;
        }
        let started = Instant::now();
        s.within("stop", c.stop(&id, t.grace)).await?;
        let took = started.elapsed();
        let status = s.within("wait", c.wait(&id)).await?;
        s.ensure(
            status.signal == Some(SIGKILL),
            format!("a container ignoring TERM should end by KILL, but it {status}"),
        )?;
        s.ensure(
            took >= t.grace,
            format!(
                "stop returned after {took:?}, before the grace of {:?}",
                t.grace
            ),
        )
    }
    .await;
    s.finish(result).await
}
