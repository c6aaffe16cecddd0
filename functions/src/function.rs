//! What a function is: [`FunctionSpec`], with validation that names the bad field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hoist_core::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// The default function timeout, as on AWS Lambda.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The default memory size in MiB, as on AWS Lambda.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// The longest timeout a function may have (15 minutes, as on AWS Lambda).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);

/// A function: its name, runtime, handler, code and limits.
///
/// ```
/// use hoist_functions::FunctionSpec;
///
/// let spec: FunctionSpec = serde_json::from_str(r#"{
///     "name": "hello", "runtime": "python3", "handler": "app.handler", "code": "/srv/hello",
///     "timeout": 5, "memory": 256
/// }"#).unwrap();
/// spec.validate().unwrap();
/// assert_eq!(spec.timeout.as_secs(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The name: 1 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// The runtime (`python3`, `provided`...), looked up in the runtime mapping.
    pub runtime: String,
    /// The handler, in the runtime's own form (`module.function` for Python).
    pub handler: String,
    /// The directory holding the function's code.
    pub code: PathBuf,
    /// Environment variables for the function (they come after the ones hoist sets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How long one invocation may run, in whole seconds in JSON (default 3, at most 900).
    #[serde(default = "default_timeout", with = "seconds")]
    pub timeout: Duration,
    /// Memory in MiB (default 128, between 128 and 10240).
    #[serde(default = "default_memory")]
    pub memory: u32,
    /// Labels put on the function's environments (container or pod labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Concurrency reserved for this function: at most this many invocations run at once, and
    /// they do not count against the unreserved part of the global limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<usize>,
    /// How many invocations one environment serves at once (default 1).
    #[serde(default = "default_per_environment")]
    pub per_environment_concurrency: usize,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_memory() -> u32 {
    DEFAULT_MEMORY_MB
}

fn default_per_environment() -> usize {
    1
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

fn field_error(field: &str, problem: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("`{field}` {problem}")).with_context("field", field)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('=') && !key.contains('\0')
}

impl FunctionSpec {
    /// A function with the default timeout, memory and concurrency.
    pub fn new(
        name: impl Into<String>,
        runtime: impl Into<String>,
        handler: impl Into<String>,
        code: impl Into<PathBuf>,
    ) -> Self {
        FunctionSpec {
            name: name.into(),
            runtime: runtime.into(),
            handler: handler.into(),
            code: code.into(),
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY_MB,
            labels: BTreeMap::new(),
            reserved_concurrency: None,
            per_environment_concurrency: 1,
        }
    }

    /// Parses and validates a function from JSON; errors name the bad field.
    pub fn from_json(text: &str) -> hoist_core::Result<Self> {
        let spec: FunctionSpec = hoist_core::input::parse_json(text, "function")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the fields serde cannot; the error's `field` context names the bad one.
    pub fn validate(&self) -> hoist_core::Result<()> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(field_error(
                "name",
                format!(
                    "must be 1 to 64 letters, digits, `-` or `_`, not `{}`",
                    self.name
                ),
            ));
        }
        if self.runtime.trim().is_empty() {
            return Err(field_error("runtime", "must not be empty"));
        }
        if self.handler.trim().is_empty() {
            return Err(field_error("handler", "must not be empty"));
        }
        if self.code.as_os_str().is_empty() {
            return Err(field_error(
                "code",
                "must name the directory holding the code",
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(field_error(
                "timeout",
                format!(
                    "must be between 1 and 900 seconds, not {}",
                    self.timeout.as_secs()
                ),
            ));
        }
        if !(128..=10240).contains(&self.memory) {
            return Err(field_error(
                "memory",
                format!("must be between 128 and 10240 MiB, not {}", self.memory),
            ));
        }
        if let Some(key) = self.env.keys().find(|k| !valid_key(k)) {
            return Err(field_error(
                "env",
                format!("has an invalid variable name `{key}`"),
            ));
        }
        if let Some(key) = self.labels.keys().find(|k| !valid_key(k)) {
            return Err(field_error(
                "labels",
                format!("has an invalid label name `{key}`"),
            ));
        }
        if self.reserved_concurrency == Some(0) {
            return Err(field_error("reserved_concurrency", "must be at least 1"));
        }
        if self.per_environment_concurrency == 0 {
            return Err(field_error(
                "per_environment_concurrency",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(spec: &FunctionSpec) -> String {
        let err = spec.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        err.context_value("field").unwrap().to_owned()
    }

    #[test]
    fn validation_names_the_bad_field() {
        let ok = FunctionSpec::new("hello", "python3", "app.handler", "/srv/hello");
        ok.validate().unwrap();
        let mut bad = ok.clone();
        bad.name = "no spaces".into();
        assert_eq!(field_of(&bad), "name");
        let mut bad = ok.clone();
        bad.handler = " ".into();
        assert_eq!(field_of(&bad), "handler");
        let mut bad = ok.clone();
        bad.timeout = Duration::from_secs(901);
        assert_eq!(field_of(&bad), "timeout");
        let mut bad = ok.clone();
        bad.memory = 64;
        assert_eq!(field_of(&bad), "memory");
        let mut bad = ok.clone();
        bad.env.insert("A=B".into(), "x".into());
        assert_eq!(field_of(&bad), "env");
        let mut bad = ok;
        bad.reserved_concurrency = Some(0);
        assert_eq!(field_of(&bad), "reserved_concurrency");
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = FunctionSpec::from_json(
            r#"{"name":"f","runtime":"p","handler":"h","code":"/c","memory":"lots"}"#,
        )
        .unwrap_err();
        assert_eq!(err.context_value("field"), Some("memory"), "{err}");
        let err = FunctionSpec::from_json(
            r#"{"name":"f","runtime":"p","handler":"h","code":"/c","colour":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
