//! What a starting executor does with the environments an earlier process left running:
//! re-attach to them (warm after a restart) or clean them up; and how a relayed executor lets
//! its environments go when its process ends.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hoist_core::scheduler::EnvironmentId;
use hoist_core::{Error, TaskId};
use hoist_runtimes::function::FunctionSpec;

use super::FunctionExecutor;
use crate::pool::FunctionKey;
use crate::relay::HeldEnvironment;

/// How long [`FunctionExecutor::recover_environments`] waits for the environments it removes
/// to be gone.
const REMOVAL_DEADLINE: Duration = Duration::from_secs(30);
/// The grace between TERM and KILL for an environment removed at recovery.
const REMOVAL_GRACE: Duration = Duration::from_secs(2);

/// What becomes of the environments an earlier executor left running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvironmentRecovery {
    /// Those whose runtime still calls a port of the relay, and whose function version is
    /// registered again with the same spec, join the warm pool as idle environments; the
    /// others are stopped and removed.
    #[default]
    Reattach,
    /// Every one is stopped and removed.
    Cleanup,
}

impl EnvironmentRecovery {
    /// `reattach` or `cleanup`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentRecovery::Reattach => "reattach",
            EnvironmentRecovery::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for EnvironmentRecovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EnvironmentRecovery {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reattach" => Ok(EnvironmentRecovery::Reattach),
            "cleanup" => Ok(EnvironmentRecovery::Cleanup),
            other => Err(Error::invalid(format!(
                "`{other}` is not an environment recovery: use `reattach` or `cleanup`"
            ))),
        }
    }
}

/// What [`FunctionExecutor::recover_environments`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredEnvironments {
    /// Environments now idle in the warm pool.
    pub reattached: Vec<EnvironmentId>,
    /// Environments stopped and removed.
    pub removed: Vec<EnvironmentId>,
}

impl FunctionExecutor {
    /// Finds the environments an earlier executor with the same backend state left (the
    /// containerizer's `list_owned`) and, by `mode`, re-attaches to them or removes them.
    /// Re-attaching needs a relayed executor ([`FunctionExecutor::start_relayed`]): an
    /// environment is taken over when the relay still holds its port and a registered
    /// version has the spec recorded with it, so call this once the functions are registered
    /// again. Every other environment is stopped and removed (awaited, within a deadline), and
    /// the relay's ports without a running environment are closed.
    pub async fn recover_environments(
        &self,
        mode: EnvironmentRecovery,
    ) -> hoist_core::Result<RecoveredEnvironments> {
        let relay = self.shared.runtime_api.relay().cloned();
        let held: Vec<HeldEnvironment> = match &relay {
            Some(relay) => relay.environments().await?,
            None => Vec::new(),
        };
        let mut held: HashMap<String, HeldEnvironment> = held
            .into_iter()
            .map(|h| (h.environment.clone(), h))
            .collect();
        let versions = self.shared.registry.all_versions();
        let key_of = |record: &str| -> Option<FunctionKey> {
            let spec: FunctionSpec = serde_json::from_str(record).ok()?;
            versions.iter().find(|v| v.spec == spec).map(|v| v.key())
        };
        let found = self
            .executor
            .recover([])
            .await
            .map_err(|e| e.with_operation("recover environments"))?;
        let mut report = RecoveredEnvironments::default();
        for task in found.reattached {
            let environment = EnvironmentId(task.as_str().to_owned());
            let adopted = match (mode, held.remove(&environment.0)) {
                (EnvironmentRecovery::Reattach, Some(h)) => key_of(&h.record),
                _ => None,
            };
            if let Some(key) = adopted
                && self.adopt(&environment, &key).is_ok()
            {
                tracing::info!(%environment, function = %key, "re-attached to a warm environment");
                report.reattached.push(environment);
                continue;
            }
            match self.executor.kill(&task, Some(REMOVAL_GRACE)) {
                Ok(()) => report.removed.push(environment.clone()),
                Err(e) => {
                    tracing::warn!(%environment, error = %e, "could not remove an environment left by an earlier executor")
                }
            }
            if let Some(relay) = &relay {
                relay.close(&environment.0).await;
            }
        }
        if let Some(relay) = &relay {
            for orphan in held.keys() {
                relay.close(orphan).await;
            }
            relay.resume().await;
        }
        self.await_removals(&report.removed).await;
        Ok(report)
    }

    fn adopt(&self, environment: &EnvironmentId, key: &FunctionKey) -> hoist_core::Result<()> {
        self.shared.runtime_api.adopt(environment)?;
        self.pool.adopt(environment, key)
    }

    /// Waits (within a deadline) until the executor no longer has the tasks of `removed`.
    async fn await_removals(&self, removed: &[EnvironmentId]) {
        let ids: Vec<TaskId> = removed.iter().map(|e| TaskId::new(e.0.clone())).collect();
        let gone = async {
            while self.executor.tasks().iter().any(|t| ids.contains(&t.id)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(REMOVAL_DEADLINE, gone).await.is_err() {
            tracing::warn!(
                "environments left by an earlier executor were not gone within {REMOVAL_DEADLINE:?}"
            );
        }
    }

    /// Ends this executor but leaves its environments running for the next one on the same
    /// relay ([`FunctionExecutor::recover_environments`]): refuses new `Event` invocations and
    /// lets the queued ones finish (as [`FunctionExecutor::shutdown`]), forgets the warm pool
    /// without stopping it, and hands each runtime's waiting `next` back to the relay. Without
    /// a relay, nothing could keep the runtimes' ports, so this is
    /// [`FunctionExecutor::shutdown`].
    pub async fn detach(&self) {
        if self.shared.runtime_api.relay().is_none() {
            return self.shutdown().await;
        }
        self.events.shutdown().await;
        let left = self.pool.detach().await;
        tracing::info!(
            environments = left.len(),
            "left the warm environments running for the next executor"
        );
        // Environments the pool was stopping (idle past their keepalive, of a deleted
        // function) finish stopping first: only the ones let go stay.
        let kept: Vec<TaskId> = left.iter().map(|e| TaskId::new(e.0.clone())).collect();
        let stopped = async {
            while self.executor.tasks().iter().any(|t| !kept.contains(&t.id)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(super::SHUTDOWN_DEADLINE, stopped)
            .await
            .is_err()
        {
            tracing::warn!(
                "environments being stopped did not end within {:?}",
                super::SHUTDOWN_DEADLINE
            );
        }
        self.cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(super::SHUTDOWN_DEADLINE, self.tasks.wait()).await;
        self.shared.runtime_api.detach().await;
    }
}
