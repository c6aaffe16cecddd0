//! The contract's settings, read from `FUNC_*` variables.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::{Error, Result};

use super::Conventions;
use super::log::{LogSink, stdout_sink};

/// What the contract server needs to know: port, timeout and the context it gives calls.
#[derive(Clone)]
pub struct ContractConfig {
    /// `FUNC_PORT` (default 8080).
    pub port: u16,
    /// `FUNC_HOST`: the address to listen on (default `0.0.0.0`).
    pub host: std::net::IpAddr,
    /// `FUNC_TIMEOUT` in seconds (default 180).
    pub timeout: Duration,
    /// The function's name for the context (`FUNC_HANDLER`, default `function`).
    pub function_name: String,
    /// `FUNC_RUNTIME`.
    pub runtime: String,
    /// `FUNC_MEMORY_LIMIT`, as given (empty when unset).
    pub memory_limit: String,
    /// Whose metric labels, buckets and log lines to reproduce (Python's by default).
    pub conventions: Conventions,
    /// Where request log lines go (stdout by default).
    pub log: LogSink,
}

impl std::fmt::Debug for ContractConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractConfig")
            .field("port", &self.port)
            .field("host", &self.host)
            .field("timeout", &self.timeout)
            .field("function_name", &self.function_name)
            .field("runtime", &self.runtime)
            .field("memory_limit", &self.memory_limit)
            .field("conventions", &self.conventions)
            .finish_non_exhaustive()
    }
}

impl Default for ContractConfig {
    fn default() -> Self {
        ContractConfig {
            port: 8080,
            host: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            timeout: Duration::from_secs(180),
            function_name: "function".into(),
            runtime: String::new(),
            memory_limit: String::new(),
            conventions: Conventions::default(),
            log: stdout_sink(),
        }
    }
}

impl ContractConfig {
    /// Reads `FUNC_PORT`, `FUNC_HOST`, `FUNC_TIMEOUT`, `FUNC_HANDLER`, `FUNC_RUNTIME` and
    /// `FUNC_MEMORY_LIMIT` from `vars` (pass `std::env::vars()` in a binary); a malformed value
    /// is an error naming the variable.
    pub fn from_vars<K: AsRef<str>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut config = ContractConfig::default();
        for (key, value) in vars {
            let value: String = value.into();
            match key.as_ref() {
                "FUNC_PORT" => {
                    config.port =
                        value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| {
                                Error::invalid(format!(
                                    "FUNC_PORT `{value}` is not a port (1-65535)"
                                ))
                                .with_context("variable", "FUNC_PORT")
                            })?;
                }
                "FUNC_TIMEOUT" => {
                    let secs: f64 = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "FUNC_TIMEOUT `{value}` is not a positive number of seconds"
                            ))
                            .with_context("variable", "FUNC_TIMEOUT")
                        })?;
                    config.timeout = Duration::from_secs_f64(secs);
                }
                "FUNC_HOST" => {
                    config.host = value.trim().parse().map_err(|_| {
                        Error::invalid(format!("FUNC_HOST `{value}` is not an IP address"))
                            .with_context("variable", "FUNC_HOST")
                    })?;
                }
                "FUNC_HANDLER" if !value.is_empty() => config.function_name = value,
                "FUNC_RUNTIME" => config.runtime = value,
                "FUNC_MEMORY_LIMIT" => config.memory_limit = value,
                _ => {}
            }
        }
        Ok(config)
    }

    /// Replaces where request logs go.
    pub fn with_log(mut self, log: impl Fn(&super::RequestLog) + Send + Sync + 'static) -> Self {
        self.log = Arc::new(log);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_read_and_bad_ones_named() {
        let config = ContractConfig::from_vars([
            ("FUNC_PORT", "9000"),
            ("FUNC_TIMEOUT", "3"),
            ("FUNC_HANDLER", "foo"),
            ("FUNC_RUNTIME", "rust1"),
            ("FUNC_MEMORY_LIMIT", "134217728"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(
            (config.port, config.timeout),
            (9000, Duration::from_secs(3))
        );
        assert_eq!(config.function_name, "foo");
        assert_eq!(config.memory_limit, "134217728");
        let err = ContractConfig::from_vars([("FUNC_TIMEOUT", "soon")]).unwrap_err();
        assert!(err.to_string().contains("FUNC_TIMEOUT `soon`"), "{err}");
        assert!(ContractConfig::from_vars([("FUNC_PORT", "0")]).is_err());
    }
}
