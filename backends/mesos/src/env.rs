//! [`AgentEnv`]: what the agent tells an executor through its environment.
//!
//! The library never reads the process environment on its own: a binary calls
//! [`AgentEnv::from_env`], tests call [`AgentEnv::from_vars`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use hoist_core::{Error, ErrorKind, Result};

use crate::wire::{ExecutorId, FrameworkId};

/// The executor's settings from the `MESOS_*` variables the agent sets.
///
/// ```
/// use std::time::Duration;
/// use hoist_mesos::AgentEnv;
///
/// let env = AgentEnv::from_vars([
///     ("MESOS_FRAMEWORK_ID", "fw-1"),
///     ("MESOS_EXECUTOR_ID", "exec-1"),
///     ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
///     ("MESOS_CHECKPOINT", "1"),
///     ("MESOS_RECOVERY_TIMEOUT", "15mins"),
///     ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"),
/// ]).unwrap();
/// assert!(env.checkpoint);
/// assert_eq!(env.recovery_timeout, Duration::from_secs(900));
///
/// let err = AgentEnv::from_vars([("MESOS_FRAMEWORK_ID", "fw-1")]).unwrap_err();
/// assert!(err.to_string().contains("MESOS_EXECUTOR_ID"));
/// ```
#[derive(Clone, PartialEq)]
pub struct AgentEnv {
    /// `MESOS_FRAMEWORK_ID`.
    pub framework_id: FrameworkId,
    /// `MESOS_EXECUTOR_ID`.
    pub executor_id: ExecutorId,
    /// `MESOS_AGENT_ENDPOINT`: the agent's `host:port`.
    pub agent_endpoint: String,
    /// `MESOS_CHECKPOINT`: whether the framework checkpoints, so the executor should survive an
    /// agent restart (`"1"` or `"0"`; `"true"`/`"false"` are read too).
    pub checkpoint: bool,
    /// `MESOS_RECOVERY_TIMEOUT`: how long to keep trying to resubscribe (default 15 minutes).
    pub recovery_timeout: Duration,
    /// `MESOS_SUBSCRIPTION_BACKOFF_MAX`: the longest random wait between attempts (default 2 s).
    pub subscription_backoff_max: Duration,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`: the time SHUTDOWN allows (default 5 s).
    pub shutdown_grace_period: Duration,
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`: the bearer token for calls, when auth is on.
    pub authentication_token: Option<String>,
    /// `MESOS_SANDBOX`: the sandbox directory.
    pub sandbox: Option<PathBuf>,
}

impl std::fmt::Debug for AgentEnv {
    /// Shows every setting but the token, which is a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEnv")
            .field("framework_id", &self.framework_id)
            .field("executor_id", &self.executor_id)
            .field("agent_endpoint", &self.agent_endpoint)
            .field("checkpoint", &self.checkpoint)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("subscription_backoff_max", &self.subscription_backoff_max)
            .field("shutdown_grace_period", &self.shutdown_grace_period)
            .field(
                "authentication_token",
                &self.authentication_token.as_ref().map(|_| "<redacted>"),
            )
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl AgentEnv {
    /// Settings for a local agent at `endpoint`, with the agent's defaults.
    pub fn new(framework_id: &str, executor_id: &str, endpoint: impl Into<String>) -> Self {
        AgentEnv {
            framework_id: FrameworkId::new(framework_id),
            executor_id: ExecutorId::new(executor_id),
            agent_endpoint: endpoint.into(),
            checkpoint: false,
            recovery_timeout: Duration::from_secs(15 * 60),
            subscription_backoff_max: Duration::from_secs(2),
            shutdown_grace_period: Duration::from_secs(5),
            authentication_token: None,
            sandbox: None,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        AgentEnv::from_vars(std::env::vars())
    }

    /// Reads the settings from `(name, value)` pairs; errors name the variable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let required = |name: &'static str| -> Result<String> {
            match vars.get(name) {
                Some(v) if !v.trim().is_empty() => Ok(v.clone()),
                Some(_) => Err(var_error(name, "is empty")),
                None => Err(var_error(
                    name,
                    "is not set; is this process started by a Mesos agent?",
                )),
            }
        };
        let duration = |name: &'static str, default: Duration| -> Result<Duration> {
            match vars.get(name) {
                None => Ok(default),
                Some(v) => parse_duration(v).map_err(|e| var_error(name, &e)),
            }
        };
        let mut env = AgentEnv::new(
            &required("MESOS_FRAMEWORK_ID")?,
            &required("MESOS_EXECUTOR_ID")?,
            required("MESOS_AGENT_ENDPOINT")?,
        );
        validate_endpoint(&env.agent_endpoint)
            .map_err(|e| var_error("MESOS_AGENT_ENDPOINT", &e))?;
        env.checkpoint = match vars.get("MESOS_CHECKPOINT").map(|v| v.trim()) {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(var_error(
                    "MESOS_CHECKPOINT",
                    &format!("is `{other}`; expected `1` or `0`"),
                ));
            }
        };
        env.recovery_timeout = duration("MESOS_RECOVERY_TIMEOUT", env.recovery_timeout)?;
        env.subscription_backoff_max = duration(
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
            env.subscription_backoff_max,
        )?;
        env.shutdown_grace_period = duration(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            env.shutdown_grace_period,
        )?;
        env.authentication_token = vars
            .get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
            .filter(|t| !t.is_empty())
            .cloned();
        env.sandbox = vars.get("MESOS_SANDBOX").map(PathBuf::from);
        Ok(env)
    }
}

fn var_error(name: &'static str, problem: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("environment variable {name} {problem}"),
    )
    .with_context("variable", name)
}

fn validate_endpoint(endpoint: &str) -> std::result::Result<(), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("is `{endpoint}`; expected `host:port`"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "is `{endpoint}`; expected `host:port` with a port from 1 to 65535"
        ));
    }
    Ok(())
}

/// Parses a duration in stout's syntax, as the agent writes it: a decimal number (fractions
/// allowed) and one of `ns`, `us`, `ms`, `secs`, `mins`, `hrs`, `days`, `weeks`.
///
/// ```
/// use std::time::Duration;
/// use hoist_mesos::env::parse_duration;
///
/// assert_eq!(parse_duration("2secs").unwrap(), Duration::from_secs(2));
/// assert_eq!(parse_duration("1.5mins").unwrap(), Duration::from_secs(90));
/// assert!(parse_duration("2s").unwrap_err().contains("unit"));
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit (expected e.g. `2secs`, `15mins`)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (expected e.g. `2secs`, `15mins`)"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "secs" => 1.0,
        "mins" => 60.0,
        "hrs" => 3600.0,
        "days" => 86_400.0,
        "weeks" => 604_800.0,
        other => {
            return Err(format!(
                "`{text}` has an unknown unit `{other}` (use ns, us, ms, secs, mins, hrs, days or weeks)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("MESOS_FRAMEWORK_ID", "fw"),
            ("MESOS_EXECUTOR_ID", "ex"),
            ("MESOS_AGENT_ENDPOINT", "10.0.0.1:5051"),
        ]
    }

    #[test]
    fn defaults_are_the_agent_defaults() {
        let env = AgentEnv::from_vars(base()).unwrap();
        assert!(!env.checkpoint);
        assert_eq!(env.recovery_timeout, Duration::from_secs(900));
        assert_eq!(env.subscription_backoff_max, Duration::from_secs(2));
        assert_eq!(env.shutdown_grace_period, Duration::from_secs(5));
        assert_eq!(env.authentication_token, None);
    }

    #[test]
    fn every_variable_is_read() {
        let mut vars = base();
        vars.extend([
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_RECOVERY_TIMEOUT", "1.5hrs"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "500ms"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "1weeks"),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "jwt"),
            ("MESOS_SANDBOX", "/mnt/mesos/sandbox"),
        ]);
        let env = AgentEnv::from_vars(vars).unwrap();
        assert!(env.checkpoint);
        assert_eq!(env.recovery_timeout, Duration::from_secs(5400));
        assert_eq!(env.subscription_backoff_max, Duration::from_millis(500));
        assert_eq!(env.shutdown_grace_period, Duration::from_secs(604_800));
        assert_eq!(env.authentication_token.as_deref(), Some("jwt"));
        let shown = format!("{env:?}");
        assert!(
            !shown.contains("jwt") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert_eq!(env.sandbox, Some(PathBuf::from("/mnt/mesos/sandbox")));
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("MESOS_CHECKPOINT", "yes"),
            ("MESOS_RECOVERY_TIMEOUT", "15m"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "soon"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5"),
            ("MESOS_AGENT_ENDPOINT", "localhost"),
            ("MESOS_EXECUTOR_ID", ""),
        ] {
            let mut vars = base();
            vars.retain(|(k, _)| *k != name);
            vars.push((name, value));
            let err = AgentEnv::from_vars(vars).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(name), "{err}");
            assert_eq!(err.context_value("variable"), Some(name));
        }
    }

    #[test]
    fn stout_durations() {
        assert_eq!(parse_duration("10ns").unwrap(), Duration::from_nanos(10));
        assert_eq!(parse_duration("3us").unwrap(), Duration::from_micros(3));
        assert_eq!(
            parse_duration("0.5days").unwrap(),
            Duration::from_secs(43_200)
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("secs").is_err());
        assert!(parse_duration("1.2.3secs").is_err());
    }
}
