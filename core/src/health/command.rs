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
        // The capability authority decides, before the backend is asked.
        if !target.containerizer.capabilities().exec {
            return ProbeOutcome::Unhealthy(format!(
                "command `{name}` cannot run: the {} backend does not support exec",
                target.containerizer.name()
            ));
        }
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

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;

    use super::*;
    use crate::testing::{FakeContainerizer, Script};
    use crate::{ContainerSpec, Containerizer, ExecOutput, Owner};

    /// A running container of a fake whose `exec` answers `output`, recording every argv.
    async fn container(output: ExecOutput) -> (ProbeTarget, Arc<Mutex<Vec<Vec<String>>>>) {
        let fake = FakeContainerizer::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        fake.default_script(Script {
            exec: Some(Arc::new(move |argv: &[String]| {
                record.lock().unwrap().push(argv.to_vec());
                Ok(output.clone())
            })),
            ..Script::default()
        });
        let owner = Owner {
            executor_id: "e".into(),
            task_id: "t".into(),
        };
        let id = fake
            .create(&owner, &ContainerSpec::command(["server"]))
            .await
            .unwrap();
        fake.start(&id).await.unwrap();
        let target = ProbeTarget {
            container_id: id,
            containerizer: Arc::new(fake),
            address: Ipv4Addr::LOCALHOST.into(),
            netns: None,
        };
        (target, seen)
    }

    fn shell(cmd: &str) -> CommandChecker {
        CommandChecker::new(CommandProbe {
            argv: vec![],
            shell: Some(cmd.into()),
        })
    }

    #[tokio::test]
    async fn a_backend_without_exec_is_never_asked() {
        let (target, seen) = container(ExecOutput::default()).await;
        let fake = FakeContainerizer::new();
        fake.set_capabilities(crate::Capabilities::default());
        let target = ProbeTarget {
            containerizer: Arc::new(fake.clone()),
            ..target
        };
        let outcome = shell("true").check(&target, Duration::from_secs(5)).await;
        assert_eq!(
            outcome,
            ProbeOutcome::Unhealthy(
                "command `/bin/sh` cannot run: the fake backend does not support exec".into()
            )
        );
        assert_eq!(fake.calls_to("exec"), 0);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn exit_zero_is_healthy_and_the_shell_form_runs_through_sh() {
        let (target, seen) = container(ExecOutput {
            exit_code: Some(0),
            ..ExecOutput::default()
        })
        .await;
        assert_eq!(
            shell("test -f /ready")
                .check(&target, Duration::from_secs(5))
                .await,
            ProbeOutcome::Healthy
        );
        assert_eq!(*seen.lock().unwrap(), [["/bin/sh", "-c", "test -f /ready"]]);
    }

    #[tokio::test]
    async fn a_failure_gives_the_exit_code_and_trimmed_stderr() {
        let output = ExecOutput {
            exit_code: Some(3),
            stdout: Bytes::from_static(b"ignored"),
            stderr: Bytes::from_static(b"\n  database unreachable\n\n"),
        };
        let (target, _) = container(output).await;
        let checker = CommandChecker::new(CommandProbe {
            argv: vec!["/bin/check".into(), "-q".into()],
            shell: None,
        });
        assert_eq!(
            checker.check(&target, Duration::from_secs(5)).await,
            ProbeOutcome::Unhealthy(
                "command `/bin/check` exited with code 3: database unreachable".into()
            )
        );
    }

    #[tokio::test]
    async fn a_signal_and_a_silent_failure_read_plainly() {
        let (target, _) = container(ExecOutput {
            exit_code: None,
            ..ExecOutput::default()
        })
        .await;
        assert_eq!(
            shell("x").check(&target, Duration::ZERO).await,
            ProbeOutcome::Unhealthy("command `/bin/sh` was killed by a signal".into())
        );
        let (target, _) = container(ExecOutput {
            exit_code: Some(1),
            ..ExecOutput::default()
        })
        .await;
        assert_eq!(
            shell("x").check(&target, Duration::ZERO).await,
            ProbeOutcome::Unhealthy("command `/bin/sh` exited with code 1".into())
        );
    }

    #[tokio::test]
    async fn long_stderr_is_cut() {
        let stderr = "e".repeat(5000);
        let output = ExecOutput {
            exit_code: Some(2),
            stderr: Bytes::from(stderr),
            ..ExecOutput::default()
        };
        let (target, _) = container(output).await;
        let ProbeOutcome::Unhealthy(reason) = shell("x").check(&target, Duration::ZERO).await
        else {
            panic!("exit 2 was healthy");
        };
        assert!(
            reason.ends_with('…') && reason.chars().count() < STDERR_IN_REASON + 64,
            "{reason}"
        );
    }

    #[tokio::test]
    async fn exec_errors_are_unhealthy_with_the_error() {
        let (mut target, _) = container(ExecOutput::default()).await;
        target.container_id = "no-such-container".into();
        let ProbeOutcome::Unhealthy(reason) =
            shell("true").check(&target, Duration::from_secs(5)).await
        else {
            panic!("exec into a missing container was healthy");
        };
        assert!(
            reason.starts_with("command `/bin/sh` could not run: "),
            "{reason}"
        );
        assert!(reason.contains("no-such-container"), "{reason}");
    }
}
