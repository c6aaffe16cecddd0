//! Runtime catalogs: Kubeless catalog files, Laser executor providers and image-mapping
//! overlays, merged into one [`Catalog`] that implements [`RuntimeCatalog`] and can be
//! reloaded at run time.
//!
//! ```
//! use hoist_core::catalog::RuntimeCatalog;
//! use hoist_runtimes::catalog::{Catalog, CatalogSource, ImageMapping};
//!
//! let kubeless = r#"[{"ID": "python", "depName": "requirements.txt", "fileNameSuffix": ".py",
//!   "versions": [{"name": "python311", "version": "3.11", "runtimeImage": "kubeless/python:3.11"}]}]"#;
//! let catalog = Catalog::builder()
//!     .source(CatalogSource::kubeless_text("catalog.json", kubeless))
//!     .source(CatalogSource::laser_vars([
//!         ("EXECUTOR_0_NAME", "jvm-executor"),
//!         ("EXECUTOR_0_RUNTIME", "java;scala"),
//!         ("EXECUTOR_0_IMAGE", "laser/java"),
//!         ("EXECUTOR_0_CMD", "bin/executor"),
//!     ]))
//!     .image_mapping(ImageMapping::parse("local/<runtime>").unwrap())
//!     .build()
//!     .unwrap();
//! assert_eq!(catalog.resolve("scala").unwrap().name, "java");
//! assert_eq!(catalog.resolve("python3.11").unwrap().runtime_phase().unwrap().image, "local/python3.11");
//! ```

mod kubeless;
mod laser;
mod mapping;

use std::path::PathBuf;
use std::sync::Arc;

use hoist_core::catalog::{InMemoryCatalog, PhaseKind, Runtime, RuntimeCatalog};
use hoist_core::{Error, ErrorKind, Result};

pub use kubeless::parse_kubeless;
pub use laser::{ExecutorProvider, parse_providers, providers_from_vars, providers_to_runtimes};
pub use mapping::ImageMapping;

/// Where a catalog's runtimes come from. Files are read again on every [`Catalog::reload`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CatalogSource {
    /// A Kubeless catalog file (JSON or YAML, either schema generation).
    KubelessFile(PathBuf),
    /// Kubeless catalog text, named `origin` in errors.
    KubelessText {
        /// The name used in errors.
        origin: String,
        /// The JSON or YAML text.
        text: String,
    },
    /// A file listing Laser executor providers (JSON or YAML).
    LaserFile(PathBuf),
    /// A snapshot of `EXECUTOR_<n>_*` variables (the caller passes them, for example from
    /// `std::env::vars()`).
    LaserVars(Vec<(String, String)>),
    /// Runtimes built in code.
    Runtimes(Vec<Runtime>),
}

impl CatalogSource {
    /// Kubeless catalog text.
    pub fn kubeless_text(origin: impl Into<String>, text: impl Into<String>) -> Self {
        CatalogSource::KubelessText {
            origin: origin.into(),
            text: text.into(),
        }
    }

    /// A snapshot of variables; only `EXECUTOR_<n>_*` ones are read.
    pub fn laser_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        CatalogSource::LaserVars(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    fn load(&self) -> Result<Vec<Runtime>> {
        match self {
            CatalogSource::KubelessFile(path) => {
                parse_kubeless(&read(path)?, &path.display().to_string())
            }
            CatalogSource::KubelessText { origin, text } => parse_kubeless(text, origin),
            CatalogSource::LaserFile(path) => {
                let origin = path.display().to_string();
                providers_to_runtimes(&parse_providers(&read(path)?, &origin)?, &origin)
            }
            CatalogSource::LaserVars(vars) => providers_to_runtimes(
                &providers_from_vars(vars.iter().cloned())?,
                "EXECUTOR_<n>_* variables",
            ),
            CatalogSource::Runtimes(runtimes) => Ok(runtimes.clone()),
        }
    }

    fn origin(&self) -> String {
        match self {
            CatalogSource::KubelessFile(path) | CatalogSource::LaserFile(path) => {
                path.display().to_string()
            }
            CatalogSource::KubelessText { origin, .. } => origin.clone(),
            CatalogSource::LaserVars(_) => "EXECUTOR_<n>_* variables".into(),
            CatalogSource::Runtimes(_) => "runtimes given in code".into(),
        }
    }
}

/// The lowercase name of a phase, as catalogs spell it.
pub(crate) fn phase_name(kind: PhaseKind) -> &'static str {
    match kind {
        PhaseKind::Installation => "installation",
        PhaseKind::Compilation => "compilation",
        PhaseKind::Runtime => "runtime",
    }
}

fn read(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("cannot read catalog file {}", path.display()),
        )
        .with_context("path", path.display())
        .with_source(e)
    })
}

/// Builds a [`Catalog`].
#[derive(Debug, Default)]
pub struct CatalogBuilder {
    sources: Vec<CatalogSource>,
    mapping: Option<ImageMapping>,
}

impl CatalogBuilder {
    /// Adds a source; runtimes of all sources share one namespace of names and aliases.
    pub fn source(mut self, source: CatalogSource) -> Self {
        self.sources.push(source);
        self
    }

    /// Overlays an image mapping on every source's runtime images.
    pub fn image_mapping(mut self, mapping: ImageMapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// Loads every source. Clashing names or aliases across sources are an error naming the
    /// runtimes and their sources.
    pub fn build(self) -> Result<Catalog> {
        let catalog = Catalog {
            sources: self.sources,
            mapping: self.mapping,
            index: InMemoryCatalog::default(),
        };
        catalog.reload()?;
        Ok(catalog)
    }
}

/// A catalog merged from [`CatalogSource`]s, with an optional [`ImageMapping`].
///
/// [`Catalog::reload`] reads the sources again and swaps the runtimes atomically; a launch
/// that resolves its runtime after the reload gets the new ones. A failed reload leaves the
/// catalog as it was.
#[derive(Debug)]
pub struct Catalog {
    sources: Vec<CatalogSource>,
    mapping: Option<ImageMapping>,
    index: InMemoryCatalog,
}

impl Catalog {
    /// A builder with no sources.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// Reads every source again and replaces the runtimes, or returns the error and keeps the
    /// current ones.
    pub fn reload(&self) -> Result<()> {
        let mut runtimes = Vec::new();
        let mut origins: Vec<(String, String)> = Vec::new();
        for source in &self.sources {
            let loaded = source.load()?;
            let origin = source.origin();
            for runtime in &loaded {
                for key in std::iter::once(&runtime.name).chain(&runtime.aliases) {
                    if let Some((_, other)) = origins.iter().find(|(k, _)| k == key) {
                        let message = if *other == origin {
                            format!("runtime `{key}` is defined twice in {origin}")
                        } else {
                            format!("runtime `{key}` is defined by both {other} and {origin}")
                        };
                        return Err(Error::new(ErrorKind::AlreadyExists, message)
                            .with_context("runtime", key));
                    }
                    origins.push((key.clone(), origin.clone()));
                }
            }
            runtimes.extend(loaded);
        }
        if let Some(mapping) = &self.mapping {
            mapping.apply(&mut runtimes)?;
        }
        self.index.replace(runtimes)
    }
}

impl RuntimeCatalog for Catalog {
    fn resolve(&self, name: &str) -> Result<Arc<Runtime>> {
        self.index.resolve(name)
    }

    fn runtimes(&self) -> Vec<Arc<Runtime>> {
        self.index.runtimes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_picks_up_new_runtimes_and_keeps_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.yaml");
        let v1 = "- ID: nodejs\n  versions:\n    - {name: node20, version: '20', images: [{phase: runtime, image: node:20}]}\n";
        std::fs::write(&path, v1).unwrap();
        let catalog = Catalog::builder()
            .source(CatalogSource::KubelessFile(path.clone()))
            .build()
            .unwrap();
        assert!(catalog.resolve("nodejs22").is_err());
        std::fs::write(&path, format!("{v1}    - {{name: node22, version: '22', images: [{{phase: runtime, image: node:22}}]}}\n")).unwrap();
        catalog.reload().unwrap();
        assert_eq!(
            catalog
                .resolve("nodejs22")
                .unwrap()
                .runtime_phase()
                .unwrap()
                .image,
            "node:22"
        );
        std::fs::write(
            &path,
            "- ID: nodejs\n  versions: [{name: broken, version: '1'}]\n",
        )
        .unwrap();
        let err = catalog.reload().unwrap_err();
        assert!(err.to_string().contains("has no runtime image"), "{err}");
        assert_eq!(catalog.runtimes().len(), 2);
    }

    #[test]
    fn provider_files_load_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.yaml");
        let v1 = "- {NAME: python-executor, RUNTIME: python3.11;python, IMAGE: laser/python, CMD: bin/executor}\n";
        std::fs::write(&path, v1).unwrap();
        let catalog = Catalog::builder()
            .source(CatalogSource::LaserFile(path.clone()))
            .build()
            .unwrap();
        let runtime = catalog.resolve("python").unwrap();
        assert_eq!(runtime.name, "python3.11");
        assert_eq!(
            runtime.runtime_phase().unwrap().command.as_deref(),
            Some("bin/executor")
        );
        std::fs::write(
            &path,
            format!("{v1}- {{NAME: jvm-executor, RUNTIME: java;scala, IMAGE: laser/java, CMD: bin/java}}\n"),
        )
        .unwrap();
        catalog.reload().unwrap();
        assert_eq!(catalog.resolve("scala").unwrap().name, "java");
        std::fs::remove_file(&path).unwrap();
        let err = catalog.reload().unwrap_err();
        assert!(
            err.to_string().contains("cannot read catalog file")
                && err.to_string().contains("providers.yaml"),
            "{err}"
        );
        assert_eq!(catalog.resolve("scala").unwrap().name, "java");
    }

    #[test]
    fn a_name_defined_twice_in_one_source_is_named() {
        let text = "- ID: node\n  versions:\n    - {name: a, version: '20', runtimeImage: node:20}\n    - {name: b, version: '20', runtimeImage: node:20-slim}\n";
        let err = Catalog::builder()
            .source(CatalogSource::kubeless_text("catalog.yaml", text))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(
            err.to_string()
                .contains("runtime `node20` is defined twice in catalog.yaml"),
            "{err}"
        );
    }

    #[test]
    fn names_clashing_across_sources_name_both_sources() {
        let kubeless =
            r#"[{"ID":"java","versions":[{"name":"j","version":"","runtimeImage":"k/java"}]}]"#;
        let err = Catalog::builder()
            .source(CatalogSource::kubeless_text("kubeless.json", kubeless))
            .source(CatalogSource::laser_vars([
                ("EXECUTOR_0_NAME", "jvm"),
                ("EXECUTOR_0_RUNTIME", "scala;java"),
                ("EXECUTOR_0_IMAGE", "i"),
                ("EXECUTOR_0_CMD", "c"),
            ]))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(
            err.to_string()
                .contains("`java` is defined by both kubeless.json and EXECUTOR_<n>_* variables"),
            "{err}"
        );
    }
}
