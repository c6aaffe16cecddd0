//! The command probe: a command run inside the container through `Containerizer::exec`.

use std::time::Duration;

use async_trait::async_trait;

use super::deadline::Deadline;
use super::{CommandProbe, HealthChecker, ProbeOutcome, ProbeTarget, shorten};

/// What `exec` is given when the probe has no timeout: `exec` always takes one.
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How much of the command's standard error a reason quotes.
const STDERR_IN_REASON: usize = 512;

/// Healthy when a command run inside the container (through the target's containerizer's
/// `exec`, so in the container's namespaces) exits 0. A failure's reason gives the exit code and
/// the command's trimmed standard error.
#[derive(Debug, Clone)]
pub struct CommandChecker {
    probe: CommandProbe,
}

impl CommandChecker {
    /// Runs `probe`'s command (its `argv`, or `/bin/sh -c <shell>`).
    pub fn new(probe: CommandProbe) -> Self {
        CommandChecker { probe }
    }
}

#[async_trait]
impl HealthChecker for CommandChecker {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        let argv = self.probe.argv();
        let name = argv.first().cloned().unwrap_or_default();
        let exec_timeout = if timeout.is_zero() {
            NO_TIMEOUT
        } else {
            timeout
        };
        let run = async {
            target
                .containerizer
                .exec(&target.container_id, &argv, exec_timeout)
                .await
                .map_err(|e| format!("command `{name}` could not run: {e}"))
        };
        let output = match Deadline::after(timeout)
            .run(|| format!("command `{name}`"), run)
            .await
        {
            Ok(output) => output,
            Err(reason) => return ProbeOutcome::Unhealthy(reason),
        };
        if output.success() {
            return ProbeOutcome::Healthy;
        }
        let how = match output.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_owned(),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        if stderr.is_empty() {
            ProbeOutcome::Unhealthy(format!("command `{name}` {how}"))
        } else {
            ProbeOutcome::Unhealthy(format!(
                "command `{name}` {how}: {}",
                shorten(stderr, STDERR_IN_REASON)
            ))
        }
    }
}
