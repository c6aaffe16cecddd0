//! Function specs: what to run (name, runtime, handler, code, deps) and how (timeout, memory,
//! env, labels, concurrency), one type for the function executor and the build plans.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hoist_core::input::{parse_json, parse_yaml};
use hoist_core::units;
use hoist_core::{Error, Result};
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

/// The default timeout of one call (3 s, as on AWS Lambda; Kubeless's CLI passes 180 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest timeout a function may have (15 minutes, as on AWS Lambda).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// The default memory size in MiB, as on AWS Lambda.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// The longest name a function may have (AWS's function names are at most 64 characters; a
/// front door may add a version, as `name.3`).
pub const MAX_NAME_LEN: usize = 140;
/// The memory sizes a function may have, in MiB (AWS Lambda's range).
pub const MEMORY_MB_RANGE: std::ops::RangeInclusive<u32> = 128..=10240;

/// Where a function's code is: a directory on the host, served as it is, or a source (text,
/// base64, zip or tar) that a build plan writes into a work directory.
///
/// In files: a string is a directory (`code: /srv/hello`), a map a [`Source`]
/// (`code: {text: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Code {
    /// A directory holding the function's files.
    Directory(PathBuf),
    /// The function's files as a source to provision.
    Source(Source),
}

impl Code {
    /// The directory, when the code is one.
    pub fn directory(&self) -> Option<&Path> {
        match self {
            Code::Directory(dir) => Some(dir),
            Code::Source(_) => None,
        }
    }
}

impl From<Source> for Code {
    fn from(source: Source) -> Self {
        Code::Source(source)
    }
}

impl From<PathBuf> for Code {
    fn from(dir: PathBuf) -> Self {
        Code::Directory(dir)
    }
}

impl From<&Path> for Code {
    fn from(dir: &Path) -> Self {
        Code::Directory(dir.to_path_buf())
    }
}

impl From<&PathBuf> for Code {
    fn from(dir: &PathBuf) -> Self {
        Code::Directory(dir.clone())
    }
}

impl From<&str> for Code {
    /// A directory.
    fn from(dir: &str) -> Self {
        Code::Directory(dir.into())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a directory or a source map ({text: ...}, {base64: ...}, {zip: ...}, {tar: ...})")
            }
            fn visit_str<E: serde::de::Error>(self, dir: &str) -> std::result::Result<Code, E> {
                Ok(Code::Directory(dir.into()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Code, A::Error> {
                Source::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Code::Source)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A function: its name, runtime, handler, code and limits. One type for every front door:
/// the function executor serves it from a directory, a build plan provisions its source.
///
/// ```
/// use hoist_runtimes::function::{Code, FunctionSpec, Source};
///
/// let served = FunctionSpec::new("hello", "python3.12", "app.handler", "/srv/hello");
/// served.validate().unwrap();
/// let built = FunctionSpec::new("hello", "python3.11", "hello.foo", Source::text("def foo(e, c): return 1"));
/// assert!(matches!(built.code, Code::Source(_)));
/// let parsed = FunctionSpec::from_json(r#"{"name": "f", "runtime": "provided", "handler": "bootstrap", "code": "/srv/f", "timeout": 5, "memory": 256}"#).unwrap();
/// assert_eq!(parsed.timeout.as_secs(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The name: 1 to 140 letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// The runtime name or alias (`python3.12`, `provided`).
    pub runtime: String,
    /// The handler, in the runtime's own form (`module.func` for Kubeless runtimes and
    /// Python, `bootstrap` for custom runtimes); see [`FunctionSpec::module_handler`].
    pub handler: String,
    /// The code (files also say `source`).
    #[serde(alias = "source")]
    pub code: Code,
    /// The dependency file's content (`requirements.txt`, `package.json`), written under the
    /// runtime's deps file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps: Option<String>,
    /// Environment variables for the function (they come after the ones hoist sets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// How long one call may run (default 3 s, at most 900 s); in files seconds or `30s`, `2m`.
    #[serde(default = "default_timeout", with = "units::duration")]
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

fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('=') && !key.contains('\0')
}

impl FunctionSpec {
    /// A function with the default timeout, memory and concurrency, and no deps, env or labels.
    pub fn new(
        name: impl Into<String>,
        runtime: impl Into<String>,
        handler: impl Into<String>,
        code: impl Into<Code>,
    ) -> Self {
        FunctionSpec {
            name: name.into(),
            runtime: runtime.into(),
            handler: handler.into(),
            code: code.into(),
            deps: None,
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY_MB,
            labels: BTreeMap::new(),
            reserved_concurrency: None,
            per_environment_concurrency: 1,
        }
    }

    /// Parses and validates a spec from YAML; errors name the bad field.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let spec: FunctionSpec = parse_yaml(text, "function spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a spec from JSON; errors name the bad field.
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: FunctionSpec = parse_json(text, "function spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// The handler as `module.func`, as Kubeless runtimes need it (`MOD_NAME`, `FUNC_HANDLER`).
    pub fn module_handler(&self) -> Result<Handler> {
        Handler::parse(&self.handler).map_err(|e| e.with_context("function", &self.name))
    }

    /// The memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory) * 1024 * 1024
    }

    /// Checks the fields serde cannot; the error's `field` context names the bad one.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, problem: String| {
            Error::invalid_field(field, problem).with_context("function", &self.name)
        };
        let name_ok = (1..=MAX_NAME_LEN).contains(&self.name.len())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(invalid(
                "name",
                format!(
                    "must be 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`, not `{}`",
                    self.name
                ),
            ));
        }
        if self.runtime.trim().is_empty() {
            return Err(invalid("runtime", "must not be empty".into()));
        }
        if self.handler.trim().is_empty() {
            return Err(invalid("handler", "must not be empty".into()));
        }
        if matches!(&self.code, Code::Directory(dir) if dir.as_os_str().is_empty()) {
            return Err(invalid(
                "code",
                "must name the directory holding the code".into(),
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(invalid(
                "timeout",
                format!("must be between 1 and 900 seconds, not {:?}", self.timeout),
            ));
        }
        if !MEMORY_MB_RANGE.contains(&self.memory) {
            return Err(invalid(
                "memory",
                format!("must be between 128 and 10240 MiB, not {}", self.memory),
            ));
        }
        for key in self.env.keys() {
            if CONTRACT_VARS.contains(&key.as_str()) {
                return Err(invalid(
                    "env",
                    format!("`{key}` is set by the runtime contract and cannot be overridden"),
                ));
            }
            if !valid_key(key) {
                return Err(invalid(
                    "env",
                    format!("has an invalid variable name `{key}`"),
                ));
            }
        }
        if let Some(key) = self.labels.keys().find(|k| !valid_key(k)) {
            return Err(invalid(
                "labels",
                format!("has an invalid label name `{key}`"),
            ));
        }
        if self.reserved_concurrency == Some(0) {
            return Err(invalid("reserved_concurrency", "must be at least 1".into()));
        }
        if self.per_environment_concurrency == 0 {
            return Err(invalid(
                "per_environment_concurrency",
                "must be at least 1".into(),
            ));
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
            "name: get-python\nhandler: helloget.foo\nruntime: python3.11\nsource: {text: 'def foo(e, c): return 1'}\nmemory: 256\ntimeout: 2m\n",
        )
        .unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(120));
        assert_eq!(spec.memory_bytes(), 256 << 20);
        assert_eq!(
            spec.code,
            Code::Source(Source::text("def foo(e, c): return 1"))
        );
        let dir = FunctionSpec::from_yaml(
            "name: f\nhandler: bootstrap\nruntime: provided\ncode: /srv/f\n",
        )
        .unwrap();
        assert_eq!(dir.code.directory(), Some(Path::new("/srv/f")));
        assert_eq!(
            (dir.timeout, dir.memory),
            (DEFAULT_TIMEOUT, DEFAULT_MEMORY_MB)
        );
        let err = dir.module_handler().unwrap_err();
        assert!(
            err.to_string()
                .contains("`bootstrap` must be exactly `module.func`"),
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
        let err = FunctionSpec::from_yaml("name: f\nhandler: a.b\nruntime: go\ncode: {rar: x}\n")
            .unwrap_err();
        assert_eq!(err.context_value("field"), Some("code"), "{err}");
    }

    fn field_of(spec: &FunctionSpec) -> String {
        let err = spec.validate().unwrap_err();
        assert_eq!(err.kind(), hoist_core::ErrorKind::InvalidInput);
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
