//! Function specs: what to run (name, `module.func` handler, runtime, source, deps) and how
//! (timeout, env, memory limit).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hoist_core::input::{parse_json, parse_yaml};
use hoist_core::units;
use hoist_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Variables the build plan sets for the runtime; a function's env may not set them.
pub const CONTRACT_VARS: [&str; 6] = [
    "MOD_NAME",
    "FUNC_HANDLER",
    "FUNC_TIMEOUT",
    "FUNC_RUNTIME",
    "FUNC_MEMORY_LIMIT",
    "FUNC_PORT",
];

/// A handler, strictly `module.func`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Handler {
    /// The module (file name without suffix), given to the runtime as `MOD_NAME`.
    pub module: String,
    /// The function, given to the runtime as `FUNC_HANDLER`.
    pub function: String,
}

impl Handler {
    /// Parses `module.func`: exactly one dot, both sides made of letters, digits, `_` and `-`.
    pub fn parse(text: &str) -> Result<Self> {
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        match text.split_once('.') {
            Some((module, function)) if valid(module) && valid(function) => {
                Ok(Handler { module: module.to_owned(), function: function.to_owned() })
            }
            _ => Err(Error::invalid(format!(
                "handler `{text}` must be exactly `module.func` (letters, digits, `_`, `-` on each side of one dot)"
            ))
            .with_context("field", "handler")),
        }
    }
}

impl TryFrom<String> for Handler {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        Handler::parse(&text).map_err(|e| e.message().to_owned())
    }
}

impl From<Handler> for String {
    fn from(handler: Handler) -> String {
        handler.to_string()
    }
}

impl fmt::Display for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.function)
    }
}

/// The function's code. In files: `{text: ...}`, `{base64: ...}`, `{zip: <base64>}` or
/// `{tar: <base64>}` (a tar may be gzipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceContent {
    /// The source file's text.
    Text(String),
    /// The source file, base64-encoded.
    Base64(String),
    /// A zip archive of the function's files.
    Zip(#[serde(with = "base64_bytes")] Vec<u8>),
    /// A tar archive (optionally gzipped) of the function's files.
    Tar(#[serde(with = "base64_bytes")] Vec<u8>),
}

/// The function's code and its optional checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The code.
    #[serde(flatten)]
    pub content: SourceContent,
    /// `sha256:<hex>` of the decoded bytes (the text, the decoded base64, the archive);
    /// verified before anything is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Source {
    /// Source text with no checksum.
    pub fn text(text: impl Into<String>) -> Self {
        Source {
            content: SourceContent::Text(text.into()),
            checksum: None,
        }
    }

    /// The decoded bytes, after checking the checksum when there is one.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        let bytes = match &self.content {
            SourceContent::Text(text) => text.as_bytes().to_vec(),
            SourceContent::Base64(text) => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| {
                    Error::invalid(format!("the function source is not valid base64: {e}"))
                        .with_context("field", "source.base64")
                })?,
            SourceContent::Zip(bytes) | SourceContent::Tar(bytes) => bytes.clone(),
        };
        if let Some(expected) = &self.checksum {
            let hex = expected.strip_prefix("sha256:").ok_or_else(|| {
                Error::invalid(format!("checksum `{expected}` must be `sha256:<hex>`"))
                    .with_context("field", "source.checksum")
            })?;
            let actual = sha256_hex(&bytes);
            if !actual.eq_ignore_ascii_case(hex) {
                return Err(Error::invalid(format!(
                    "the function source does not match its checksum: expected sha256:{hex}, got sha256:{actual}"
                ))
                .with_context("field", "source.checksum"));
            }
        }
        Ok(bytes)
    }
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A function to deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The function's name.
    pub name: String,
    /// `module.func`.
    pub handler: Handler,
    /// The runtime name or alias (`python3.11`).
    pub runtime: String,
    /// The code.
    pub source: Source,
    /// The dependency file's content (`requirements.txt`, `package.json`), written under the
    /// runtime's deps file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps: Option<String>,
    /// The longest a call may take (default 180 s); in files `30s`, `2m`.
    #[serde(default = "FunctionSpec::default_timeout", with = "units::duration")]
    pub timeout: Duration,
    /// Extra environment for the runtime.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Memory limit in bytes; files accept units (`128Mi`).
    #[serde(
        default,
        with = "units::option_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit: Option<u64>,
}

impl FunctionSpec {
    /// A spec with the default timeout and no deps, env or memory limit.
    pub fn new(
        name: impl Into<String>,
        handler: &str,
        runtime: impl Into<String>,
        source: Source,
    ) -> Result<Self> {
        let spec = FunctionSpec {
            name: name.into(),
            handler: Handler::parse(handler)?,
            runtime: runtime.into(),
            source,
            deps: None,
            timeout: FunctionSpec::default_timeout(),
            env: BTreeMap::new(),
            memory_limit: None,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Kubeless's default call timeout, 180 s.
    pub fn default_timeout() -> Duration {
        Duration::from_secs(180)
    }

    /// Parses and validates a spec from YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let spec: FunctionSpec = parse_yaml(text, "function spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a spec from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: FunctionSpec = parse_json(text, "function spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the name, timeout, memory limit and env.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("function `{}`: {message}", self.name),
            )
            .with_context("field", field)
            .with_context("function", &self.name)
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(
                "name",
                "the name must be letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "the timeout must be positive".into()));
        }
        if self.memory_limit == Some(0) {
            return Err(invalid(
                "memory_limit",
                "the memory limit must be positive".into(),
            ));
        }
        for key in self.env.keys() {
            if CONTRACT_VARS.contains(&key.as_str()) {
                return Err(invalid(
                    "env",
                    format!("`{key}` is set by the runtime contract and cannot be overridden"),
                ));
            }
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(invalid("env", format!("`{key}` is not a variable name")));
            }
        }
        Ok(())
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("not valid base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_exactly_module_dot_func() {
        let handler = Handler::parse("hello.foo").unwrap();
        assert_eq!(
            (handler.module.as_str(), handler.function.as_str()),
            ("hello", "foo")
        );
        for bad in ["hello", "a.b.c", ".foo", "hello.", "a b.c", "../x.y"] {
            let err = Handler::parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn spec_files_parse_with_defaults_and_reject_bad_fields() {
        let spec = FunctionSpec::from_yaml(
            "name: get-python\nhandler: helloget.foo\nruntime: python3.11\nsource: {text: 'def foo(e, c): return 1'}\nmemory_limit: 128Mi\n",
        )
        .unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(180));
        assert_eq!(spec.memory_limit, Some(128 << 20));
        let err =
            FunctionSpec::from_yaml("name: f\nhandler: nodot\nruntime: go\nsource: {text: x}\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("`nodot` must be exactly `module.func`"),
            "{err}"
        );
        let err = FunctionSpec::from_yaml(
            "name: f\nhandler: a.b\nruntime: go\nsource: {text: x}\nenv: {FUNC_PORT: '1'}\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("`FUNC_PORT` is set by the runtime contract"),
            "{err}"
        );
        let err = FunctionSpec::from_yaml(
            "name: f\nhandler: a.b\nruntime: go\nsource: {text: x}\nretries: 3\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `retries`"), "{err}");
    }

    #[test]
    fn checksums_are_verified_on_decoded_bytes() {
        let good = sha256_hex(b"print(1)");
        let source = Source {
            content: SourceContent::Base64(
                base64::engine::general_purpose::STANDARD.encode("print(1)"),
            ),
            checksum: Some(format!("sha256:{good}")),
        };
        assert_eq!(source.bytes().unwrap(), b"print(1)");
        let bad = Source {
            checksum: Some(format!("sha256:{}", sha256_hex(b"other"))),
            ..source.clone()
        };
        let err = bad.bytes().unwrap_err();
        assert!(
            err.to_string().contains("does not match its checksum"),
            "{err}"
        );
        let malformed = Source {
            checksum: Some("md5:abc".into()),
            ..source
        };
        assert!(
            malformed
                .bytes()
                .unwrap_err()
                .to_string()
                .contains("sha256:<hex>")
        );
    }
}
