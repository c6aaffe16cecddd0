//! Health checks: the [`HealthCheck`] spec, the [`HealthChecker`] trait (one probe) and the
//! [`HealthMonitor`] that applies Mesos's policy.
//!
//! The defaults and semantics are Mesos's: delay 15 s; interval 10 s counted from the end of the
//! previous check; timeout 20 s covering the whole probe (0 means none); 3 consecutive failures;
//! a grace period of 10 s that includes the delay and ends at the first success. Failures inside
//! the grace period are neither counted nor reported.
//!
//! The probes that ship here ([`HttpChecker`], [`TcpChecker`], [`CommandChecker`]) reach the
//! container's own port. When the backend runs the container in a network namespace
//! ([`ProbeTarget::netns`]), the probe's socket is made on a short-lived thread that enters the
//! namespace, so the probe reaches the container's loopback exactly as a process inside it would;
//! no tokio worker ever changes namespace.

mod command;
mod deadline;
mod dial;
mod http;
mod monitor;
mod tcp;
#[cfg(feature = "https")]
mod tls;

use std::fmt::Debug;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use command::CommandChecker;
pub use http::HttpChecker;
pub use monitor::{HealthEvent, HealthMonitor};
pub use tcp::TcpChecker;

use crate::container::ContainerId;
use crate::containerizer::Containerizer;
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::units;

/// A health check: one probe and the policy around it.
///
/// In YAML exactly one of `http`, `tcp` or `command` is given, with optional policy fields:
///
/// ```
/// use std::time::Duration;
/// use hoist_core::health::{HealthCheck, Probe};
///
/// let check: HealthCheck = serde_json::from_str(
///     r#"{ "http": { "port": 8080, "path": "/health" }, "interval": "2s" }"#,
/// ).unwrap();
/// assert!(matches!(check.probe, Probe::Http(_)));
/// assert_eq!(check.interval, Duration::from_secs(2));
/// assert_eq!(check.delay, Duration::from_secs(15)); // Mesos's default
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHealthCheck", into = "RawHealthCheck")]
pub struct HealthCheck {
    /// What to probe.
    pub probe: Probe,
    /// Time before the first probe (default 15 s).
    pub delay: Duration,
    /// Time from the end of one probe to the start of the next (default 10 s).
    pub interval: Duration,
    /// Deadline for one whole probe; zero means none (default 20 s).
    pub timeout: Duration,
    /// Failures in a row, outside the grace period, that make the task fail (default 3).
    pub consecutive_failures: u32,
    /// Time from the monitor's start, including the delay, during which failures are ignored;
    /// it ends early at the first success (default 10 s).
    pub grace_period: Duration,
}

impl HealthCheck {
    /// A check of `probe` with Mesos's default policy.
    pub fn new(probe: Probe) -> Self {
        HealthCheck {
            probe,
            delay: Duration::from_secs(15),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
            consecutive_failures: 3,
            grace_period: Duration::from_secs(10),
        }
    }

    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        if self.consecutive_failures == 0 {
            return Err(Error::invalid_field(
                format!("{at}.consecutive_failures"),
                "must be at least 1",
            ));
        }
        match &self.probe {
            Probe::Http(http) => {
                if http.port == 0 {
                    return Err(Error::invalid_field(
                        format!("{at}.http.port"),
                        "must be between 1 and 65535",
                    ));
                }
                if !http.path.starts_with('/') {
                    return Err(Error::invalid_field(
                        format!("{at}.http.path"),
                        "must start with `/`",
                    ));
                }
                if http
                    .path
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(Error::invalid_field(
                        format!("{at}.http.path"),
                        "must not hold spaces or control characters (percent-encode them)",
                    ));
                }
                if let Some(bad) = http.statuses.iter().find(|s| !(100..=599).contains(*s)) {
                    return Err(Error::invalid_field(
                        format!("{at}.http.statuses"),
                        format!("has {bad}, not an HTTP status"),
                    ));
                }
            }
            Probe::Tcp(tcp) => {
                if tcp.port == 0 {
                    return Err(Error::invalid_field(
                        format!("{at}.tcp.port"),
                        "must be between 1 and 65535",
                    ));
                }
            }
            Probe::Command(cmd) => {
                if cmd.argv().is_empty() {
                    return Err(Error::invalid_field(
                        format!("{at}.command"),
                        "needs `argv` or `shell`",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// An HTTP(S) GET.
    Http(HttpProbe),
    /// A TCP connect.
    Tcp(TcpProbe),
    /// A command run inside the container (through `Containerizer::exec`).
    Command(CommandProbe),
}

/// An HTTP(S) probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// `http` or `https` (certificates are not verified, as Mesos does).
    #[serde(default)]
    pub scheme: Scheme,
    /// The container's own port.
    pub port: u16,
    /// The path to GET (default `/`).
    #[serde(default = "HttpProbe::default_path")]
    pub path: String,
    /// Statuses that count as healthy; empty means 200–399.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
}

impl HttpProbe {
    fn default_path() -> String {
        "/".to_owned()
    }

    /// Whether `status` counts as healthy.
    pub fn accepts(&self, status: u16) -> bool {
        if self.statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.statuses.contains(&status)
        }
    }
}

/// The scheme of an HTTP probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

/// A TCP probe: healthy when a connection is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// The container's own port.
    pub port: u16,
}

/// A command probe: healthy when the command exits 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandProbe {
    /// The program and its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// A shell command, run as `/bin/sh -c <shell>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

impl CommandProbe {
    /// The argv to exec: `argv`, or `/bin/sh -c <shell>`.
    pub fn argv(&self) -> Vec<String> {
        match &self.shell {
            Some(shell) => vec!["/bin/sh".into(), "-c".into(), shell.clone()],
            None => self.argv.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<HttpProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<CommandProbe>,
    #[serde(
        default,
        with = "units::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    delay: Option<Duration>,
    #[serde(
        default,
        with = "units::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    interval: Option<Duration>,
    #[serde(
        default,
        with = "units::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<u32>,
    #[serde(
        default,
        with = "units::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    grace_period: Option<Duration>,
}

impl TryFrom<RawHealthCheck> for HealthCheck {
    type Error = String;

    fn try_from(raw: RawHealthCheck) -> Result<Self, String> {
        let probe = match (raw.http, raw.tcp, raw.command) {
            (Some(http), None, None) => Probe::Http(http),
            (None, Some(tcp), None) => Probe::Tcp(tcp),
            (None, None, Some(command)) => Probe::Command(command),
            _ => {
                return Err(
                    "a health check needs exactly one of `http`, `tcp` or `command`".into(),
                );
            }
        };
        let mut check = HealthCheck::new(probe);
        check.delay = raw.delay.unwrap_or(check.delay);
        check.interval = raw.interval.unwrap_or(check.interval);
        check.timeout = raw.timeout.unwrap_or(check.timeout);
        check.consecutive_failures = raw
            .consecutive_failures
            .unwrap_or(check.consecutive_failures);
        check.grace_period = raw.grace_period.unwrap_or(check.grace_period);
        Ok(check)
    }
}

impl From<HealthCheck> for RawHealthCheck {
    fn from(check: HealthCheck) -> Self {
        let (http, tcp, command) = match check.probe {
            Probe::Http(p) => (Some(p), None, None),
            Probe::Tcp(p) => (None, Some(p), None),
            Probe::Command(p) => (None, None, Some(p)),
        };
        RawHealthCheck {
            http,
            tcp,
            command,
            delay: Some(check.delay),
            interval: Some(check.interval),
            timeout: Some(check.timeout),
            consecutive_failures: Some(check.consecutive_failures),
            grace_period: Some(check.grace_period),
        }
    }
}

/// The checker for a probe spec: the engine's default way to turn a [`Probe`] into a
/// [`HealthChecker`].
///
/// ```
/// use hoist_core::health::{Probe, TcpProbe, checker_for};
///
/// let checker = checker_for(&Probe::Tcp(TcpProbe { port: 8080 }));
/// assert!(format!("{checker:?}").contains("8080"));
/// ```
pub fn checker_for(probe: &Probe) -> Arc<dyn HealthChecker> {
    match probe {
        Probe::Http(http) => Arc::new(HttpChecker::new(http.clone())),
        Probe::Tcp(tcp) => Arc::new(TcpChecker::new(tcp.port)),
        Probe::Command(cmd) => Arc::new(CommandChecker::new(cmd.clone())),
    }
}

/// Where a probe goes: the container, the address its own ports answer on, and its network
/// namespace when the backend runs one.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The container.
    pub container_id: ContainerId,
    /// Its containerizer (command probes exec through it).
    pub containerizer: Arc<dyn Containerizer>,
    /// The address the container's own ports answer on from the host (loopback for host
    /// networking and processes, the bridge address otherwise).
    pub address: IpAddr,
    /// A network namespace (a path such as `/var/run/netns/<name>` or `/proc/<pid>/ns/net`) to
    /// enter to reach the container's loopback, when set. HTTP and TCP probes then connect to
    /// the loopback address (of `address`'s family) inside that namespace.
    pub netns: Option<PathBuf>,
}

/// The verdict of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The probe passed.
    Healthy,
    /// The probe failed, with a reason a person can read (`"HTTP 503"`, `"connection refused"`).
    Unhealthy(String),
}

/// Runs one probe of a container. The policy (timing, thresholds) is the [`HealthMonitor`]'s.
///
/// ```
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use hoist_core::health::{HealthChecker, ProbeOutcome, ProbeTarget};
///
/// /// Healthy when a file exists on the host.
/// #[derive(Debug)]
/// struct FileExists(std::path::PathBuf);
///
/// #[async_trait]
/// impl HealthChecker for FileExists {
///     async fn check(&self, _: &ProbeTarget, _: Duration) -> ProbeOutcome {
///         if self.0.exists() {
///             ProbeOutcome::Healthy
///         } else {
///             ProbeOutcome::Unhealthy(format!("{} is missing", self.0.display()))
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait HealthChecker: Send + Sync + Debug + 'static {
    /// Probes `target` once. `timeout` bounds the whole probe (zero means none): the probe
    /// must end by then, unhealthy if it did not finish. The checkers in this module do; wrap
    /// one that does not in [`ProbeTimeoutLayer`] (the executor wraps every checker its
    /// `health_checkers` factory makes).
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome;
}

/// Bounds each probe of the checker it wraps by the probe's own timeout: a probe still running
/// then is unhealthy ("the probe timed out after 20s"). For checkers that do not keep their
/// timeout themselves.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use hoist_core::health::{HealthChecker, ProbeOutcome, ProbeTarget, ProbeTimeoutLayer};
/// use hoist_core::layer::Layer;
///
/// #[derive(Debug)]
/// struct Stuck;
///
/// #[async_trait]
/// impl HealthChecker for Stuck {
///     async fn check(&self, _: &ProbeTarget, _: Duration) -> ProbeOutcome {
///         std::future::pending().await
///     }
/// }
///
/// let bounded = ProbeTimeoutLayer.layer(Arc::new(Stuck) as Arc<dyn HealthChecker>);
/// # let target = ProbeTarget {
/// #     container_id: "c".into(),
/// #     containerizer: Arc::new(hoist_core::testing::FakeContainerizer::new()),
/// #     address: std::net::Ipv4Addr::LOCALHOST.into(),
/// #     netns: None,
/// # };
/// let outcome = bounded.check(&target, Duration::from_secs(2)).await;
/// assert_eq!(outcome, ProbeOutcome::Unhealthy("the probe timed out after 2s".into()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeTimeoutLayer;

impl Layer<Arc<dyn HealthChecker>> for ProbeTimeoutLayer {
    type Service = Arc<dyn HealthChecker>;

    fn layer(&self, inner: Arc<dyn HealthChecker>) -> Arc<dyn HealthChecker> {
        Arc::new(ProbeTimeout(inner))
    }
}

/// A checker bounded by its probes' timeouts; made by [`ProbeTimeoutLayer`].
#[derive(Debug)]
struct ProbeTimeout(Arc<dyn HealthChecker>);

#[async_trait]
impl HealthChecker for ProbeTimeout {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        let probe = self.0.check(target, timeout);
        if timeout.is_zero() {
            return probe.await;
        }
        match tokio::time::timeout(timeout, probe).await {
            Ok(outcome) => outcome,
            Err(_) => ProbeOutcome::Unhealthy(format!(
                "the probe timed out after {}",
                deadline::fmt_duration(timeout)
            )),
        }
    }
}

/// `text` cut to `max_chars` characters (with `…` when cut), to quote in a probe's reason.
fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A target for tests: a container of a fake containerizer, at `address`, in `netns`.
#[cfg(all(test, feature = "testing"))]
fn test_target(address: IpAddr, netns: Option<PathBuf>) -> ProbeTarget {
    ProbeTarget {
        container_id: "c1".into(),
        containerizer: Arc::new(crate::testing::FakeContainerizer::new()),
        address,
        netns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_probe_is_required() {
        let err = serde_json::from_str::<HealthCheck>(r#"{"http":{"port":1},"tcp":{"port":2}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        let err = serde_json::from_str::<HealthCheck>(r#"{"interval":"1s"}"#).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }

    #[test]
    fn defaults_are_mesos_defaults_and_round_trip() {
        let check: HealthCheck = serde_json::from_str(r#"{"tcp":{"port":80}}"#).unwrap();
        assert_eq!(check, HealthCheck::new(Probe::Tcp(TcpProbe { port: 80 })));
        assert_eq!(check.delay, Duration::from_secs(15));
        assert_eq!(check.interval, Duration::from_secs(10));
        assert_eq!(check.timeout, Duration::from_secs(20));
        assert_eq!(check.consecutive_failures, 3);
        assert_eq!(check.grace_period, Duration::from_secs(10));
        let json = serde_json::to_string(&check).unwrap();
        assert_eq!(serde_json::from_str::<HealthCheck>(&json).unwrap(), check);
    }

    #[test]
    fn http_statuses() {
        let mut probe = HttpProbe {
            scheme: Scheme::Http,
            port: 80,
            path: "/".into(),
            statuses: vec![],
        };
        assert!(probe.accepts(200) && probe.accepts(302) && !probe.accepts(404));
        probe.statuses = vec![503];
        assert!(probe.accepts(503) && !probe.accepts(200));
    }

    #[test]
    fn http_path_must_be_a_plain_request_target() {
        let mut check = HealthCheck::new(Probe::Http(HttpProbe {
            scheme: Scheme::Http,
            port: 80,
            path: "/health HTTP/1.1\r\nX: y".into(),
            statuses: vec![],
        }));
        let err = check.validate("health_check").unwrap_err();
        assert!(err.to_string().contains("health_check.http.path"), "{err}");
        check.probe = Probe::Http(HttpProbe {
            scheme: Scheme::Https,
            port: 443,
            path: "/health?x=%20y".into(),
            statuses: vec![204],
        });
        check.validate("health_check").unwrap();
    }

    #[test]
    fn command_probe_argv() {
        let shell = CommandProbe {
            argv: vec![],
            shell: Some("test -f /ok".into()),
        };
        assert_eq!(shell.argv(), ["/bin/sh", "-c", "test -f /ok"]);
    }
}
