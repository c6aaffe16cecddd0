//! The [`RuntimeCatalog`] trait: which images and phases run a function of a given runtime.
//!
//! Core defines the runtime model and a small [`InMemoryCatalog`]; hoist-runtimes reads Kubeless
//! catalogs, Laser executor providers and image-mapping overlays into the same model.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::health::HealthCheck;

/// A runtime name split into ID and version: `python3.11` is `python` + `3.11`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuntimeName {
    /// Leading letters, `_` and `-` (`python`, `dotnetcore`).
    pub id: String,
    /// Trailing digits and dots (`3.11`); may be empty.
    pub version: String,
}

impl RuntimeName {
    /// Parses `python3.11` as `python` + `3.11`, as Kubeless does. Errors name the input.
    pub fn parse(name: &str) -> Result<Self> {
        let split = name
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_' || c == '-'))
            .unwrap_or(name.len());
        let (id, version) = name.split_at(split);
        if id.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{name}` is not a runtime name (letters, then a version such as `python3.11`)"
                ),
            )
            .with_context("runtime", name));
        }
        Ok(RuntimeName {
            id: id.to_owned(),
            version: version.to_owned(),
        })
    }
}

impl fmt::Display for RuntimeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.id, self.version)
    }
}

/// The phase of a build plan an image serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    /// Installs the function's dependencies.
    Installation,
    /// Compiles the function.
    Compilation,
    /// Serves the function.
    Runtime,
}

/// One phase of a runtime: its image, command and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimePhase {
    /// Which phase.
    pub phase: PhaseKind,
    /// The image that runs it.
    pub image: String,
    /// The command, run with `sh -c` (installation and compilation), or the runtime's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Environment for this phase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of secrets (image pull secrets or mounted secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// Everything needed to build and serve functions of one runtime version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// The canonical name (`python3.11`).
    pub name: String,
    /// Other names that resolve to this runtime (`java;scala` gives `scala`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Phases in order: installation, compilation, runtime. A runtime phase is required.
    pub phases: Vec<RuntimePhase>,
    /// The dependency file name (`requirements.txt`, `package.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps_file: Option<String>,
    /// The source file suffix (`.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_suffix: Option<String>,
    /// Whether functions must be compiled.
    #[serde(default)]
    pub compiled: bool,
    /// The runtime's health probe, when it overrides the default `GET /healthz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<HealthCheck>,
}

impl Runtime {
    /// The phase of `kind`, if the runtime has one.
    pub fn phase(&self, kind: PhaseKind) -> Option<&RuntimePhase> {
        self.phases.iter().find(|p| p.phase == kind)
    }

    /// The runtime phase (every valid runtime has one).
    pub fn runtime_phase(&self) -> Result<&RuntimePhase> {
        self.phase(PhaseKind::Runtime).ok_or_else(|| {
            Error::invalid(format!("runtime `{}` has no runtime image", self.name))
                .with_context("runtime", &self.name)
        })
    }
}

/// Resolves runtime names (or aliases) to [`Runtime`]s.
///
/// ```
/// use hoist_core::catalog::{InMemoryCatalog, PhaseKind, Runtime, RuntimeCatalog, RuntimePhase};
///
/// let catalog = InMemoryCatalog::new([Runtime {
///     name: "python3.11".into(),
///     aliases: vec!["python3".into()],
///     phases: vec![RuntimePhase {
///         phase: PhaseKind::Runtime,
///         image: "example/python:3.11".into(),
///         command: None,
///         env: Default::default(),
///         secrets: vec![],
///     }],
///     deps_file: Some("requirements.txt".into()),
///     file_suffix: Some(".py".into()),
///     compiled: false,
///     probe: None,
/// }])
/// .unwrap();
/// assert_eq!(catalog.resolve("python3").unwrap().name, "python3.11");
/// assert!(catalog.resolve("cobol85").is_err());
/// ```
pub trait RuntimeCatalog: Send + Sync + fmt::Debug + 'static {
    /// The runtime called `name` (or with that alias). Unknown names are
    /// [`ErrorKind::NotFound`], naming the runtime.
    fn resolve(&self, name: &str) -> Result<Arc<Runtime>>;

    /// Every runtime, by canonical name.
    fn runtimes(&self) -> Vec<Arc<Runtime>>;
}

/// A catalog held in memory, replaceable at run time with [`InMemoryCatalog::replace`].
#[derive(Debug, Default)]
pub struct InMemoryCatalog {
    index: RwLock<BTreeMap<String, Arc<Runtime>>>,
}

impl InMemoryCatalog {
    /// A catalog of `runtimes`; clashing names or aliases, and runtimes without a runtime
    /// phase, are an error naming both entries.
    pub fn new(runtimes: impl IntoIterator<Item = Runtime>) -> Result<Self> {
        let catalog = InMemoryCatalog::default();
        catalog.replace(runtimes)?;
        Ok(catalog)
    }

    /// Replaces every runtime at once; on error the catalog is left as it was.
    pub fn replace(&self, runtimes: impl IntoIterator<Item = Runtime>) -> Result<()> {
        let index = build_index(runtimes)?;
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(())
    }
}

/// Indexes runtimes by name and alias, rejecting clashes and runtimes without a runtime phase.
pub fn build_index(
    runtimes: impl IntoIterator<Item = Runtime>,
) -> Result<BTreeMap<String, Arc<Runtime>>> {
    let mut index: BTreeMap<String, Arc<Runtime>> = BTreeMap::new();
    for runtime in runtimes {
        runtime.runtime_phase()?;
        let runtime = Arc::new(runtime);
        for key in std::iter::once(&runtime.name).chain(&runtime.aliases) {
            if let Some(other) = index.get(key) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "runtime name `{key}` is claimed by both `{}` and `{}`",
                        other.name, runtime.name
                    ),
                )
                .with_context("runtime", key));
            }
            index.insert(key.clone(), runtime.clone());
        }
    }
    Ok(index)
}

impl RuntimeCatalog for InMemoryCatalog {
    fn resolve(&self, name: &str) -> Result<Arc<Runtime>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.get(name).cloned().ok_or_else(|| {
            let known: Vec<_> = index
                .values()
                .map(|r| r.name.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no runtime `{name}` in the catalog (known: {})",
                    known.join(", ")
                ),
            )
            .with_context("runtime", name)
        })
    }

    fn runtimes(&self) -> Vec<Arc<Runtime>> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::BTreeMap::new();
        for runtime in index.values() {
            seen.entry(runtime.name.clone())
                .or_insert_with(|| runtime.clone());
        }
        seen.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(name: &str, aliases: &[&str]) -> Runtime {
        Runtime {
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            phases: vec![RuntimePhase {
                phase: PhaseKind::Runtime,
                image: format!("img/{name}"),
                command: None,
                env: BTreeMap::new(),
                secrets: vec![],
            }],
            deps_file: None,
            file_suffix: None,
            compiled: false,
            probe: None,
        }
    }

    #[test]
    fn runtime_names_split_like_kubeless() {
        let name = RuntimeName::parse("python3.11").unwrap();
        assert_eq!(
            (name.id.as_str(), name.version.as_str()),
            ("python", "3.11")
        );
        assert_eq!(
            RuntimeName::parse("dotnetcore2.0").unwrap().id,
            "dotnetcore"
        );
        assert_eq!(RuntimeName::parse("go").unwrap().version, "");
        assert!(RuntimeName::parse("3.11").is_err());
        assert!(RuntimeName::parse("python3x").is_err());
    }

    #[test]
    fn clashing_aliases_name_both_runtimes() {
        let err =
            InMemoryCatalog::new([runtime("java11", &["java"]), runtime("scala2", &["java"])])
                .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("`java11` and `scala2`"), "{err}");
    }

    #[test]
    fn replace_swaps_runtimes_and_keeps_old_on_error() {
        let catalog = InMemoryCatalog::new([runtime("node20", &[])]).unwrap();
        catalog.replace([runtime("node22", &["node"])]).unwrap();
        assert!(catalog.resolve("node20").is_err());
        assert_eq!(catalog.resolve("node").unwrap().name, "node22");
        let mut broken = runtime("ruby3", &[]);
        broken.phases.clear();
        assert!(catalog.replace([broken]).is_err());
        assert_eq!(catalog.runtimes().len(), 1);
        let err = catalog.resolve("cobol").unwrap_err();
        assert!(err.to_string().contains("known: node22"), "{err}");
    }
}
