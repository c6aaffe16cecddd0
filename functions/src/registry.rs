//! The [`Registry`] of functions: create, update, delete, list. Every create or update makes a
//! new version, so that environments of an older version are never reused for a newer one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use hoist_core::{Error, ErrorKind};

use hoist_runtimes::function::FunctionSpec;

use crate::pool::FunctionKey;

/// One version of a function, as the registry hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionVersion {
    /// The function.
    pub spec: FunctionSpec,
    /// The version, counting from 1 per function name.
    pub version: u64,
}

impl FunctionVersion {
    /// The pool key of this version.
    pub fn key(&self) -> FunctionKey {
        FunctionKey::new(self.spec.name.as_str(), self.version)
    }
}

/// The functions known to an executor.
///
/// ```
/// use hoist_functions::{FunctionSpec, Registry};
///
/// let registry = Registry::new();
/// let v1 = registry.create(FunctionSpec::new("hello", "python3", "app.handler", "/srv")).unwrap();
/// assert_eq!(v1.key().to_string(), "hello:1");
/// assert!(registry.create(FunctionSpec::new("hello", "python3", "app.handler", "/srv")).is_err());
/// let v2 = registry.update(FunctionSpec::new("hello", "python3", "app.other", "/srv")).unwrap();
/// assert_eq!(v2.version, 2);
/// let kept = registry.retain(FunctionSpec::new("hello", "python3", "app.kept", "/srv")).unwrap();
/// assert_eq!(registry.get("hello").unwrap().version, 2, "retaining does not replace");
/// assert_eq!(registry.version("hello", kept.version).unwrap().spec.handler, "app.kept");
/// registry.delete("hello").unwrap();
/// assert!(registry.list().is_empty());
/// assert!(registry.version("hello", kept.version).is_none());
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    functions: RwLock<BTreeMap<String, Arc<FunctionVersion>>>,
    /// Versions kept invocable beside the current one ([`Registry::retain`]), by name.
    retained: RwLock<BTreeMap<String, BTreeMap<u64, Arc<FunctionVersion>>>>,
    /// The last version given to each name, kept across deletes so keys are never reused.
    versions: RwLock<BTreeMap<String, u64>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    fn next_version(&self, name: &str) -> u64 {
        let mut versions = self.versions.write().unwrap_or_else(|e| e.into_inner());
        let v = versions.entry(name.to_owned()).or_insert(0);
        *v += 1;
        *v
    }

    /// Adds a function; a name already registered is [`ErrorKind::AlreadyExists`], an invalid
    /// spec [`ErrorKind::InvalidInput`] naming the field.
    pub fn create(&self, spec: FunctionSpec) -> hoist_core::Result<Arc<FunctionVersion>> {
        spec.validate()?;
        let mut functions = self.functions.write().unwrap_or_else(|e| e.into_inner());
        if functions.contains_key(&spec.name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("function {} already exists", spec.name),
            )
            .with_operation("create")
            .with_context("function", &spec.name));
        }
        let version = Arc::new(FunctionVersion {
            version: self.next_version(&spec.name),
            spec,
        });
        functions.insert(version.spec.name.clone(), version.clone());
        Ok(version)
    }

    /// Replaces a function with a new version; an unknown name is [`ErrorKind::NotFound`].
    pub fn update(&self, spec: FunctionSpec) -> hoist_core::Result<Arc<FunctionVersion>> {
        spec.validate()?;
        let mut functions = self.functions.write().unwrap_or_else(|e| e.into_inner());
        if !functions.contains_key(&spec.name) {
            return Err(Error::not_found("function", &spec.name).with_operation("update"));
        }
        let version = Arc::new(FunctionVersion {
            version: self.next_version(&spec.name),
            spec,
        });
        functions.insert(version.spec.name.clone(), version.clone());
        Ok(version)
    }

    /// Removes a function, with its retained versions, and returns its current version.
    pub fn delete(&self, name: &str) -> hoist_core::Result<Arc<FunctionVersion>> {
        self.retained
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| Error::not_found("function", name).with_operation("delete"))
    }

    /// Keeps `spec` invocable as a version of its own, beside the current one and without
    /// replacing it (a published version); it stays until [`Registry::release`] or
    /// [`Registry::delete`].
    pub fn retain(&self, spec: FunctionSpec) -> hoist_core::Result<Arc<FunctionVersion>> {
        spec.validate()?;
        let version = Arc::new(FunctionVersion {
            version: self.next_version(&spec.name),
            spec,
        });
        self.retained
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(version.spec.name.clone())
            .or_default()
            .insert(version.version, version.clone());
        Ok(version)
    }

    /// Forgets a retained version; returns it if it was there.
    pub fn release(&self, name: &str, version: u64) -> Option<Arc<FunctionVersion>> {
        let mut retained = self.retained.write().unwrap_or_else(|e| e.into_inner());
        let versions = retained.get_mut(name)?;
        let released = versions.remove(&version);
        if versions.is_empty() {
            retained.remove(name);
        }
        released
    }

    /// Version `version` of a function: the current one or a retained one.
    pub fn version(&self, name: &str, version: u64) -> Option<Arc<FunctionVersion>> {
        self.get(name)
            .filter(|current| current.version == version)
            .or_else(|| {
                self.retained
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(name)?
                    .get(&version)
                    .cloned()
            })
    }

    /// The current version of a function.
    pub fn get(&self, name: &str) -> Option<Arc<FunctionVersion>> {
        self.functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every version: each function's current one and its retained ones.
    pub fn all_versions(&self) -> Vec<Arc<FunctionVersion>> {
        let mut versions = self.list();
        let retained = self.retained.read().unwrap_or_else(|e| e.into_inner());
        versions.extend(retained.values().flat_map(|v| v.values().cloned()));
        versions
    }

    /// Every function, by name.
    pub fn list(&self) -> Vec<Arc<FunctionVersion>> {
        self.functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
