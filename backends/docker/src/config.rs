//! [`DockerConfig`]: where the Engine is and how the backend behaves.

use std::time::Duration;

/// The socket the Docker CLI uses when `DOCKER_HOST` is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How [`crate::DockerContainerizer`] reaches the Engine and runs containers.
///
/// ```
/// use std::time::Duration;
/// use hoist_docker::DockerConfig;
///
/// let config = DockerConfig::new()
///     .host("unix:///run/docker.sock")
///     .request_timeout(Duration::from_secs(10))
///     .default_image("busybox:1.36");
/// assert_eq!(config.host_address(), "unix:///run/docker.sock");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    pub(crate) host: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) pull_timeout: Duration,
    pub(crate) kill_timeout: Duration,
    pub(crate) follow_logs_timeout: Duration,
    pub(crate) default_image: Option<String>,
    pub(crate) init: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig::new()
    }
}

impl DockerConfig {
    /// The local socket (`unix:///var/run/docker.sock`) and the defaults below.
    pub fn new() -> Self {
        DockerConfig {
            host: DEFAULT_HOST.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            pull_timeout: Duration::from_secs(600),
            kill_timeout: Duration::from_secs(30),
            follow_logs_timeout: Duration::from_secs(24 * 3600),
            default_image: None,
            init: true,
        }
    }

    /// Like the Docker CLI: the address in `DOCKER_HOST` when it is set, else the local socket.
    /// This is the one place the backend reads the environment, and only when called.
    pub fn from_env() -> Self {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.trim().is_empty() => DockerConfig::new().host(host.trim()),
            _ => DockerConfig::new(),
        }
    }

    /// The Engine's address: `unix:///path`, `tcp://host:port` or `http://host:port`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The address this configuration connects to.
    pub fn host_address(&self) -> &str {
        &self.host
    }

    /// The deadline for reaching the Engine and negotiating the API version (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The deadline for one Engine request's answer, and for reading logs without `follow`
    /// (default 60 s). Whole-second precision, as the Engine client counts it.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The deadline for pulling one image (default 10 min).
    pub fn pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// How long `stop` waits for the container to exit after KILL before it reports a
    /// timeout (default 30 s).
    pub fn kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    /// How long a followed log stream may last before it ends with a timeout error
    /// (default 24 h). The stream ends on its own when the container exits.
    pub fn follow_logs_timeout(mut self, timeout: Duration) -> Self {
        self.follow_logs_timeout = timeout;
        self
    }

    /// The image for container specs that name none (by default such specs are rejected).
    pub fn default_image(mut self, image: impl Into<String>) -> Self {
        self.default_image = Some(image.into());
        self
    }

    /// Whether containers run under the Engine's init process (`docker run --init`, default
    /// on), which forwards TERM to the command and reaps zombies. Without it a command running
    /// as pid 1 ignores TERM unless it handles it, so `stop` always waits out the grace.
    pub fn init(mut self, init: bool) -> Self {
        self.init = init;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_the_local_socket_and_init() {
        let config = DockerConfig::new();
        assert_eq!(config.host_address(), DEFAULT_HOST);
        assert!(config.init);
        assert_eq!(config.default_image, None);
        let config = config.host("tcp://127.0.0.1:2375").init(false);
        assert_eq!(config.host_address(), "tcp://127.0.0.1:2375");
        assert!(!config.init);
    }
}
