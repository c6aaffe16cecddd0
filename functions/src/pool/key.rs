//! [`FunctionKey`]: which function version a request, an environment or a lease is for.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use hoist_core::Error;

/// One version of one function: what an environment serves and a request needs. Written
/// `name:version` where a string key is needed ([`PlacementRequest::key`]); function names
/// never hold a `:`.
///
/// [`PlacementRequest::key`]: hoist_core::scheduler::PlacementRequest::key
///
/// ```
/// use hoist_functions::pool::FunctionKey;
///
/// let key = FunctionKey::new("hello", 3);
/// assert_eq!(key.to_string(), "hello:3");
/// assert_eq!("hello:3".parse::<FunctionKey>().unwrap(), key);
/// assert!("hello".parse::<FunctionKey>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionKey {
    function: Arc<str>,
    version: u64,
}

impl FunctionKey {
    /// The key of `version` of `function`.
    pub fn new(function: impl Into<Arc<str>>, version: u64) -> Self {
        FunctionKey {
            function: function.into(),
            version,
        }
    }

    /// The function's name.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl fmt::Display for FunctionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.function, self.version)
    }
}

impl FromStr for FunctionKey {
    type Err = Error;

    /// Parses `name:version`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let parsed = text
            .rsplit_once(':')
            .filter(|(name, _)| !name.is_empty() && !name.contains(':'))
            .and_then(|(name, version)| Some((name, version.parse().ok()?)));
        match parsed {
            Some((name, version)) => Ok(FunctionKey::new(name, version)),
            None => Err(Error::invalid_field(
                "key",
                format!("must be `function:version`, not `{text}`"),
            )),
        }
    }
}
