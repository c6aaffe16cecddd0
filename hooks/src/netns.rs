//! The `netns` hook: makes each task's network namespace reachable by `ip netns exec <task id>`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use hoist_core::{Error, ErrorKind, Hook, HookContext, Result, TaskSpec};
use serde::Deserialize;

/// The configuration of [`NetnsHook`] (section `netns:`; every key optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsConfig {
    /// The directory `ip netns` reads (default `/var/run/netns`); created if missing.
    #[serde(default = "NetnsConfig::default_path")]
    pub path: PathBuf,
    /// Where the host's `/proc` is visible to the executor (default `/proc`; `/mnt/proc` when
    /// the executor itself runs in a container with the host's proc mounted there).
    #[serde(default = "NetnsConfig::default_proc_path")]
    pub proc_path: PathBuf,
    /// The hook's priority (default 0).
    #[serde(default)]
    pub priority: i64,
}

impl NetnsConfig {
    fn default_path() -> PathBuf {
        PathBuf::from("/var/run/netns")
    }

    fn default_proc_path() -> PathBuf {
        PathBuf::from("/proc")
    }
}

impl Default for NetnsConfig {
    fn default() -> Self {
        NetnsConfig {
            path: NetnsConfig::default_path(),
            proc_path: NetnsConfig::default_proc_path(),
            priority: 0,
        }
    }
}

/// Links each task's network namespace into the `ip netns` directory under the task's id.
///
/// In post-run it links `<proc_path>/<pid>/ns/net` (the container's main process, from
/// `inspect`) as `<path>/<task id>`, so `ip netns exec <task id> ss -tlnp` runs inside the
/// container's network. In post-stop it removes the link, if it still is the one it made. The
/// link is a symbolic link: it does not keep the namespace alive after the container is gone.
#[derive(Debug, Clone, Default)]
pub struct NetnsHook {
    config: NetnsConfig,
}

/// What the hook made for one task: the link and where it points.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetnsLink {
    link: PathBuf,
    target: PathBuf,
}

impl NetnsHook {
    /// The name it registers under.
    pub const NAME: &'static str = "netns";

    /// A hook with the default configuration.
    pub fn new() -> Self {
        NetnsHook::default()
    }

    /// A hook with `config` (checked by [`Hook::validate`]).
    pub fn with_config(config: NetnsConfig) -> Self {
        NetnsHook { config }
    }

    /// The link a task gets: `<path>/<task id>`. Task ids that cannot be a file name are
    /// rejected.
    pub fn link_path(&self, task: &TaskSpec) -> Result<PathBuf> {
        let id = task.id.as_str();
        if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) || id.len() > 255 {
            return Err(Error::invalid(format!(
                "task id `{id}` cannot name a network namespace link (it must be a file name)"
            ))
            .with_context("task", id));
        }
        Ok(self.config.path.join(id))
    }
}

impl NetnsHook {
    /// Whether `target` reads `<proc_path>/<pid>/ns/net`.
    fn is_namespace_of_a_process(&self, target: &Path) -> bool {
        target
            .strip_prefix(&self.config.proc_path)
            .ok()
            .and_then(|rest| rest.to_str())
            .and_then(|rest| rest.strip_suffix("/ns/net"))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    }
}

async fn remove_if_points_to(link: &Path, target: &Path) -> Result<()> {
    match tokio::fs::read_link(link).await {
        Ok(current) if current == target => match tokio::fs::remove_file(link).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::from(e).with_context("link", link.display())),
        },
        Ok(other) => {
            tracing::warn!(link = %link.display(), points_to = %other.display(), "the link was replaced; leaving it");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).with_context("link", link.display())),
    }
}

#[async_trait]
impl Hook for NetnsHook {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn priority(&self) -> i64 {
        self.config.priority
    }

    fn validate(&self) -> Result<()> {
        if !self.config.path.is_absolute() {
            return Err(Error::invalid_field(
                "netns.path",
                format!(
                    "is `{}`; it must be an absolute path",
                    self.config.path.display()
                ),
            ));
        }
        if !self.config.proc_path.is_absolute() {
            return Err(Error::invalid_field(
                "netns.proc_path",
                format!(
                    "is `{}`; it must be an absolute path",
                    self.config.proc_path.display()
                ),
            ));
        }
        if !self
            .config
            .proc_path
            .join("self")
            .join("ns")
            .join("net")
            .exists()
        {
            return Err(Error::invalid_field(
                "netns.proc_path",
                format!(
                    "is `{}`, which is not a mounted proc file system",
                    self.config.proc_path.display()
                ),
            ));
        }
        if self.config.path.exists() && !self.config.path.is_dir() {
            return Err(Error::invalid_field(
                "netns.path",
                format!(
                    "`{}` exists and is not a directory",
                    self.config.path.display()
                ),
            ));
        }
        Ok(())
    }

    async fn post_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        let link = self.link_path(task)?;
        let id = ctx
            .container_id
            .ok_or_else(|| Error::new(ErrorKind::InvalidState, "post-run without a container"))?;
        let info = ctx.containerizer.inspect(id).await?;
        let pid = info.pid.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the container has no process (it is not running)",
            )
            .with_context("container", id)
        })?;
        let target = self
            .config
            .proc_path
            .join(pid.to_string())
            .join("ns")
            .join("net");
        if !tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Err(Error::not_found("network namespace", target.display())
                .with_context("container", id));
        }
        tokio::fs::create_dir_all(&self.config.path)
            .await
            .map_err(|e| Error::from(e).with_context("directory", self.config.path.display()))?;
        // A symbolic link left by an earlier run of the same task id is replaced; anything else
        // under that name (a namespace made by `ip netns add`) is not ours to touch.
        match tokio::fs::symlink_metadata(&link).await {
            Ok(meta) if meta.file_type().is_symlink() => {
                tracing::info!(link = %link.display(), "replacing a stale network namespace link");
                tokio::fs::remove_file(&link).await?;
            }
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} exists and is not a link this hook made", link.display()),
                )
                .with_context("link", link.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::from(e).with_context("link", link.display())),
        }
        tokio::fs::symlink(&target, &link)
            .await
            .map_err(|e| Error::from(e).with_context("link", link.display()))?;
        tracing::debug!(task = %task.id, link = %link.display(), target = %target.display(), "linked the network namespace");
        ctx.state.insert(NetnsLink { link, target });
        Ok(())
    }

    async fn post_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        match ctx.state.remove::<NetnsLink>() {
            Some(NetnsLink { link, target }) => remove_if_points_to(&link, &target).await,
            // A task re-attached after an executor restart has no state: remove the link an
            // earlier run made, recognised by pointing at a process's namespace under proc_path.
            None => {
                let Ok(link) = self.link_path(task) else {
                    return Ok(());
                };
                match tokio::fs::read_link(&link).await {
                    Ok(target) if self.is_namespace_of_a_process(&target) => {
                        remove_if_points_to(&link, &target).await
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}
