//! Whose containers are whose: `list_owned`, and unknown ids.

use std::collections::BTreeSet;

use crate::container::{ContainerId, ContainerState, ExecutorId, LogOptions, Owner};
use crate::containerizer::Containerizer;
use crate::error::{Error, ErrorKind, Result};
use crate::task::TaskId;

use super::scratch::unique;
use super::{ConformanceTarget, Scratch};

/// `list_owned` finds the containers of its executor, running or exited, and neither another
/// executor's nor removed ones.
pub async fn list_owned(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "list_owned");
    let result = async {
        let running = s.create("running", &t.runs_forever).await?;
        s.within("start", c.start(&running)).await?;
        let exited = s.create("exited", &(t.exits_with)(0)).await?;
        s.within("start", c.start(&exited)).await?;
        s.within("wait", c.wait(&exited)).await?;
        let removed = s.create("removed", &(t.exits_with)(0)).await?;
        s.within("remove", c.remove(&removed, true)).await?;
        let other_executor = ExecutorId::new(format!("{}-other", s.executor));
        let other_owner = Owner {
            executor_id: other_executor.clone(),
            task_id: TaskId::new("foreign"),
        };
        let foreign = s.create_as(&other_owner, &(t.exits_with)(0)).await?;

        let listed = s.within("list_owned", c.list_owned(&s.executor)).await?;
        let ids: BTreeSet<_> = listed.iter().map(|o| o.id.clone()).collect();
        let expected: BTreeSet<_> = [running.clone(), exited.clone()].into_iter().collect();
        s.ensure(
            ids == expected,
            format!("list_owned found {ids:?}, expected {expected:?}"),
        )?;
        for owned in &listed {
            s.ensure(
                owned.owner.executor_id == s.executor,
                format!("list_owned reports owner {:?}", owned.owner),
            )?;
            let (task, state) = if owned.id == running {
                ("running", ContainerState::Running)
            } else {
                ("exited", ContainerState::Exited)
            };
            s.ensure(
                owned.owner.task_id.as_str() == task && owned.state == state,
                format!("list_owned reports {owned:?}, expected task {task} in state {state:?}"),
            )?;
        }
        let theirs = s
            .within("list_owned", c.list_owned(&other_executor))
            .await?;
        s.ensure(
            theirs.len() == 1 && theirs[0].id == foreign,
            format!("the other executor's list_owned found {theirs:?}"),
        )
    }
    .await;
    s.finish(result).await
}

/// Every method naming an unknown container answers [`ErrorKind::NotFound`], except `remove`,
/// which is idempotent and succeeds.
pub async fn unknown_ids_are_not_found(c: &dyn Containerizer, t: &ConformanceTarget) -> Result<()> {
    let s = Scratch::new(c, t, "unknown_ids_are_not_found");
    let result = async {
        let id = ContainerId::new(format!("hoist-conformance-missing-{}", unique()));
        let argv = (t.exec_prints)("x", 0);
        let outcomes: Vec<(&str, Option<Error>)> = vec![
            ("start", c.start(&id).await.err()),
            ("wait", c.wait(&id).await.err()),
            ("stop", c.stop(&id, t.grace).await.err()),
            ("inspect", c.inspect(&id).await.err()),
            ("exec", c.exec(&id, &argv, t.timeout).await.err()),
            ("logs", c.logs(&id, LogOptions::default()).await.err()),
        ];
        for (method, err) in outcomes {
            s.ensure(
                err.as_ref()
                    .is_some_and(|e| e.kind() == ErrorKind::NotFound),
                format!("{method} of an unknown container should be NotFound, got {err:?}"),
            )?;
        }
        s.within("remove of an unknown container", c.remove(&id, true))
            .await
    }
    .await;
    s.finish(result).await
}
