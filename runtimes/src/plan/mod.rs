//! Build plans: from a [`FunctionSpec`] and a [`RuntimeCatalog`], the steps that provision the
//! source, install dependencies, compile, then run the function; rendered for the process
//! backend (a work directory and commands) or for Docker (init containers sharing a volume),
//! and run on any [`Containerizer`].
//!
//! ```
//! use std::time::Duration;
//! use hoist_core::catalog::{InMemoryCatalog, PhaseKind, Runtime, RuntimePhase};
//! use hoist_runtimes::function::{FunctionSpec, Source};
//! use hoist_runtimes::plan::{BuildPlan, Target};
//!
//! let catalog = InMemoryCatalog::new([Runtime {
//!     name: "python3.11".into(),
//!     aliases: vec![],
//!     phases: vec![RuntimePhase {
//!         phase: PhaseKind::Runtime,
//!         image: "local/python:3.11".into(),
//!         command: Some("python3 -m my_runtime".into()),
//!         env: [("PYTHONPATH".to_string(), "$(HOIST_INSTALL_DIR)".to_string())].into(),
//!         secrets: vec![],
//!     }],
//!     deps_file: Some("requirements.txt".into()),
//!     file_suffix: Some(".py".into()),
//!     compiled: false,
//!     probe: None,
//! }])
//! .unwrap();
//! let spec = FunctionSpec::new("hello", "python3.11", "hello.foo", Source::text("def foo(e, c): return 'hi'"));
//! let plan = BuildPlan::new(&spec, &catalog).unwrap();
//! let work = tempfile::tempdir().unwrap();
//! let rendering = plan.render(&Target::process(work.path()), 8080).unwrap();
//! assert!(rendering.steps.is_empty());
//! assert_eq!(rendering.runtime.env["MOD_NAME"], "hello");
//! assert_eq!(rendering.runtime.env["PYTHONPATH"], work.path().display().to_string());
//! ```

mod provision;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use hoist_core::catalog::{PhaseKind, Runtime, RuntimeCatalog};
use hoist_core::{
    ContainerId, ContainerSpec, Containerizer, ContainerizerExt, Error, ErrorKind, LogOptions,
    Owner, Result, Volume,
};

use crate::function::{FunctionSpec, Handler};

/// Unpacks a zip archive of `function`'s code into `dir`, keeping the files' permission bits
/// and refusing entries that escape `dir`.
pub fn unzip(bytes: &[u8], dir: &Path, function: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("cannot create {}", dir.display()),
        )
        .with_source(e)
    })?;
    provision::unzip(bytes, dir, function)
}

/// Where the work directory is mounted inside Docker containers.
pub const DOCKER_WORK_DIR: &str = "/hoist";

/// How a plan is rendered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Target {
    /// Local processes running in `work_dir`.
    Process {
        /// The function's work directory on the host.
        work_dir: PathBuf,
    },
    /// Docker containers sharing `work_dir`, mounted at [`DOCKER_WORK_DIR`]. They run as the
    /// owner of `work_dir` (`uid:gid`), so the files they write there stay the owner's.
    Docker {
        /// The function's work directory on the host.
        work_dir: PathBuf,
    },
    /// The containers of one pod sharing a volume at `mount`: the steps' containers become its
    /// init containers. Nothing of the host is mounted; the backend fills the shared volume
    /// with the provisioned `work_dir` first (hoist's facade does, in `hoist::pod_build`).
    Pod {
        /// The function's work directory on the host, where its source is provisioned.
        work_dir: PathBuf,
        /// Where the pod's shared volume is mounted in every container.
        mount: PathBuf,
    },
}

impl Target {
    /// The process rendering, in `work_dir`.
    pub fn process(work_dir: impl Into<PathBuf>) -> Self {
        Target::Process {
            work_dir: work_dir.into(),
        }
    }

    /// The Docker rendering, sharing `work_dir` as a volume.
    pub fn docker(work_dir: impl Into<PathBuf>) -> Self {
        Target::Docker {
            work_dir: work_dir.into(),
        }
    }

    /// The containers of one pod sharing a volume mounted at `mount`.
    pub fn pod(work_dir: impl Into<PathBuf>, mount: impl Into<PathBuf>) -> Self {
        Target::Pod {
            work_dir: work_dir.into(),
            mount: mount.into(),
        }
    }

    /// The work directory on the host.
    pub fn work_dir(&self) -> &Path {
        match self {
            Target::Process { work_dir }
            | Target::Docker { work_dir }
            | Target::Pod { work_dir, .. } => work_dir,
        }
    }

    fn inner_dir(&self) -> String {
        match self {
            Target::Process { work_dir } => work_dir.display().to_string(),
            Target::Docker { .. } => DOCKER_WORK_DIR.into(),
            Target::Pod { mount, .. } => mount.display().to_string(),
        }
    }
}

/// One build step (installation or compilation) as a container to run to completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Which phase.
    pub phase: PhaseKind,
    /// The container that runs it.
    pub container: ContainerSpec,
}

/// A plan rendered for a [`Target`]: the steps to run in order, then the runtime container.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendering {
    /// Installation and compilation steps still needed (an unchanged deps file skips the
    /// installation).
    pub steps: Vec<Step>,
    /// The container that serves the function.
    pub runtime: ContainerSpec,
}

/// What it takes to build and serve one function.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    spec: FunctionSpec,
    handler: Handler,
    runtime: Arc<Runtime>,
}

impl BuildPlan {
    /// Resolves the spec's runtime in `catalog` and checks the spec against it.
    pub fn new(spec: &FunctionSpec, catalog: &dyn RuntimeCatalog) -> Result<Self> {
        spec.validate()?;
        let handler = spec.module_handler()?;
        let runtime = catalog
            .resolve(&spec.runtime)
            .map_err(|e| e.with_context("function", &spec.name))?;
        runtime.runtime_phase()?;
        // A compiled runtime may resolve the deps file in its compilation phase, as Kubeless's
        // Go runtime does with `Gopkg.toml`.
        if spec.deps.is_some()
            && runtime.phase(PhaseKind::Installation).is_none()
            && runtime.phase(PhaseKind::Compilation).is_none()
        {
            return Err(Error::invalid(format!(
                "function `{}` has deps, but runtime `{}` has no installation or compilation phase",
                spec.name, runtime.name
            ))
            .with_context("function", &spec.name));
        }
        if runtime.compiled && runtime.phase(PhaseKind::Compilation).is_none() {
            return Err(Error::invalid(format!(
                "runtime `{}` is compiled but has no compilation phase",
                runtime.name
            ))
            .with_context("runtime", &runtime.name));
        }
        Ok(BuildPlan {
            spec: spec.clone(),
            handler,
            runtime,
        })
    }

    /// The function spec.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// The resolved runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Provisions the source (and deps file) into the target's work directory and renders the
    /// remaining steps and the runtime container, which listens on `port`.
    pub fn render(&self, target: &Target, port: u16) -> Result<Rendering> {
        let dir = target.work_dir();
        provision::write_source(
            &self.spec,
            &self.handler.module,
            self.runtime.file_suffix.as_deref().unwrap_or(""),
            self.runtime.deps_file.as_deref(),
            dir,
        )?;
        let user = match target {
            Target::Docker { .. } => Some(owner_of(dir)?),
            // Pods keep their security context; their volume is not the host's directory.
            Target::Process { .. } | Target::Pod { .. } => None,
        };
        let inner = target.inner_dir();
        let mut base_env = BTreeMap::new();
        for key in ["HOIST_INSTALL_DIR", "KUBELESS_INSTALL_VOLUME"] {
            base_env.insert(key.to_owned(), inner.clone());
        }
        if let Some(deps_file) = &self.runtime.deps_file {
            for key in ["HOIST_DEPS_FILE", "KUBELESS_DEPS_FILE"] {
                base_env.insert(key.to_owned(), format!("{inner}/{deps_file}"));
            }
        }
        for key in ["HOIST_FUNC_NAME", "KUBELESS_FUNC_NAME"] {
            base_env.insert(key.to_owned(), self.spec.name.clone());
        }

        let mut steps = Vec::new();
        for phase in &self.runtime.phases {
            let needed = match phase.phase {
                PhaseKind::Installation => {
                    matches!(&self.spec.deps, Some(deps) if provision::deps_changed(dir, deps))
                }
                PhaseKind::Compilation => true,
                PhaseKind::Runtime => false,
            };
            if !needed {
                continue;
            }
            let command = phase.command.as_deref().ok_or_else(|| {
                Error::invalid(format!(
                    "runtime `{}` has a {} image but no command for it",
                    self.runtime.name,
                    crate::catalog::phase_name(phase.phase)
                ))
                .with_context("runtime", &self.runtime.name)
            })?;
            let mut env = base_env.clone();
            env.extend(substitute(&phase.env, &base_env));
            steps.push(Step {
                phase: phase.phase,
                container: self.container(
                    target,
                    &phase.image,
                    Some(command),
                    env,
                    user.as_deref(),
                ),
            });
        }

        let phase = self.runtime.runtime_phase()?;
        let mut env = base_env.clone();
        env.extend(substitute(&phase.env, &base_env));
        env.extend(self.spec.env.clone());
        env.insert("MOD_NAME".into(), self.handler.module.clone());
        env.insert("FUNC_HANDLER".into(), self.handler.function.clone());
        env.insert(
            "FUNC_TIMEOUT".into(),
            self.spec.timeout.as_secs().max(1).to_string(),
        );
        env.insert("FUNC_RUNTIME".into(), self.runtime.name.clone());
        env.insert(
            "FUNC_MEMORY_LIMIT".into(),
            self.spec.memory_bytes().to_string(),
        );
        env.insert("FUNC_PORT".into(), port.to_string());
        if matches!(target, Target::Process { .. }) && phase.command.is_none() {
            return Err(Error::invalid(format!(
                "runtime `{}` has no runtime command; the process backend needs one",
                self.runtime.name
            ))
            .with_context("runtime", &self.runtime.name));
        }
        let command = phase.command.as_deref();
        let mut runtime = self.container(target, &phase.image, command, env, user.as_deref());
        if matches!(target, Target::Docker { .. } | Target::Pod { .. }) {
            // Processes have no memory limit without cgroups: they get FUNC_MEMORY_LIMIT only.
            runtime.resources.memory = Some(self.spec.memory_bytes());
        }
        Ok(Rendering { steps, runtime })
    }

    fn container(
        &self,
        target: &Target,
        image: &str,
        command: Option<&str>,
        env: BTreeMap<String, String>,
        user: Option<&str>,
    ) -> ContainerSpec {
        let mut spec = ContainerSpec {
            command: command
                .map(|c| vec!["sh".into(), "-c".into(), c.into()])
                .unwrap_or_default(),
            env,
            working_dir: Some(PathBuf::from(target.inner_dir())),
            user: user.map(str::to_owned),
            ..ContainerSpec::default()
        };
        spec.labels
            .insert("hoist-function".into(), self.spec.name.clone());
        match target {
            Target::Process { .. } => {}
            Target::Pod { .. } => spec.image = Some(image.to_owned()),
            Target::Docker { work_dir } => {
                spec.image = Some(image.to_owned());
                spec.volumes.push(Volume {
                    host_path: work_dir.clone(),
                    container_path: PathBuf::from(DOCKER_WORK_DIR),
                    read_only: false,
                });
            }
        }
        spec
    }

    /// Runs the rendering's steps in order on `containerizer`, each for at most
    /// `step_timeout`, removing each container afterwards. A failing step ends with an error
    /// holding its output; a successful installation is recorded so that an unchanged deps
    /// file is not installed again.
    pub async fn build(
        &self,
        containerizer: &dyn Containerizer,
        owner: &Owner,
        target: &Target,
        rendering: &Rendering,
        step_timeout: Duration,
    ) -> Result<()> {
        for step in &rendering.steps {
            run_step(containerizer, owner, &self.spec.name, step, step_timeout).await?;
            if let (PhaseKind::Installation, Some(deps)) = (step.phase, &self.spec.deps) {
                provision::mark_deps_installed(target.work_dir(), deps)?;
            }
        }
        Ok(())
    }

    /// Builds the function (see [`BuildPlan::build`]), then creates and starts its runtime
    /// container and returns its id. A container that fails to start is removed.
    pub async fn deploy(
        &self,
        containerizer: &dyn Containerizer,
        owner: &Owner,
        target: &Target,
        rendering: &Rendering,
        step_timeout: Duration,
    ) -> Result<ContainerId> {
        self.build(containerizer, owner, target, rendering, step_timeout)
            .await?;
        let id = containerizer.create(owner, &rendering.runtime).await?;
        if let Err(e) = containerizer.start(&id).await {
            let _ = containerizer.remove(&id, true).await;
            return Err(e.with_context("function", &self.spec.name));
        }
        Ok(id)
    }
}

/// `uid:gid` of the owner of `dir`. The containers sharing a function's work directory run as
/// its owner, so what an installation or compilation writes there stays the owner's, who can
/// then update and remove it (a container's root would leave files the owner cannot delete).
fn owner_of(dir: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(dir).map_err(|e| {
        Error::from(e)
            .with_operation("render")
            .with_context("path", dir.display())
    })?;
    Ok(format!("{}:{}", metadata.uid(), metadata.gid()))
}

/// Replaces `$(NAME)` (Kubernetes' syntax, as Kubeless catalogs use) with values of `vars`.
fn substitute(
    env: &BTreeMap<String, String>,
    vars: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    env.iter()
        .map(|(key, value)| {
            let value = vars.iter().fold(value.clone(), |v, (name, with)| {
                v.replace(&format!("$({name})"), with)
            });
            (key.clone(), value)
        })
        .collect()
}

async fn run_step(
    containerizer: &dyn Containerizer,
    owner: &Owner,
    function: &str,
    step: &Step,
    timeout: Duration,
) -> Result<()> {
    let id = containerizer.create(owner, &step.container).await?;
    let result = async {
        containerizer.start(&id).await?;
        containerizer.wait_timeout(&id, timeout).await
    }
    .await;
    let output = match &result {
        Ok(status) if status.success() => String::new(),
        _ => output_of(containerizer, &id).await,
    };
    let removed = containerizer.remove(&id, true).await;
    let word = crate::catalog::phase_name(step.phase);
    let status = result.map_err(|e| {
        Error::new(
            e.kind(),
            format!(
                "the {word} of function `{function}` did not finish: {}\n{output}",
                e.message()
            ),
        )
        .with_context("function", function)
        .with_context("phase", word)
    })?;
    removed?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the {word} of function `{function}` failed ({status}):\n{output}"),
        )
        .with_context("function", function)
        .with_context("phase", word));
    }
    Ok(())
}

/// The last lines of a step's output, for the error.
async fn output_of(containerizer: &dyn Containerizer, id: &ContainerId) -> String {
    let options = LogOptions {
        follow: false,
        tail: Some(200),
    };
    let Ok(mut chunks) = containerizer.logs(id, options).await else {
        return String::new();
    };
    let mut text = Vec::new();
    let collect = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            text.extend_from_slice(&chunk.data);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), collect).await;
    String::from_utf8_lossy(&text).trim_end().to_owned()
}

#[cfg(test)]
mod tests;
