//! The OCI runtime hoist drives (runc), the init it puts first in every container (tini), and
//! what the machine must offer for both: found once, when the containerizer is made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_core::{Error, ErrorKind, Result};

/// Where a runc binary is looked for (Debian's package puts it in `/usr/sbin`).
const RUNC_CANDIDATES: [&str; 4] = [
    "/usr/sbin/runc",
    "/usr/bin/runc",
    "/usr/local/sbin/runc",
    "/usr/local/bin/runc",
];

/// Where a statically linked tini is looked for: Debian's `tini` package, then the copy the
/// Docker Engine ships as `docker-init`. It must be static: it runs inside any root file system.
const INIT_CANDIDATES: [&str; 4] = [
    "/usr/bin/tini-static",
    "/usr/local/bin/tini-static",
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
];

/// The namespaces every container gets (and `net` for `network: none`): the kernel must offer
/// each under `/proc/self/ns`.
const NAMESPACES: [&str; 5] = ["pid", "mnt", "ipc", "uts", "net"];

/// How long one runc command (`kill`, `delete`, `state`, `--version`) may take.
pub(crate) const RUNC_DEADLINE: Duration = Duration::from_secs(10);

/// The OCI runtime and the init, checked to be usable on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    runc: PathBuf,
    init: PathBuf,
}

impl Runtime {
    /// runc and a static tini from their usual places, after checking that the machine can run
    /// sandboxed containers at all (root, the namespaces, overlayfs). The
    /// [`ErrorKind::Unavailable`] error names the first thing missing.
    pub fn detect() -> Result<Runtime> {
        let find = |candidates: &[&str], what: &str, package: &str| {
            candidates
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    unavailable(format!(
                        "no {what} found (looked for {}); install Debian's `{package}` package",
                        candidates.join(", ")
                    ))
                })
        };
        let runc = find(&RUNC_CANDIDATES, "runc", "runc")?;
        let init = find(&INIT_CANDIDATES, "static tini", "tini")?;
        Runtime::new(runc, init)
    }

    /// The runc binary at `runc` and the static init at `init`, after the same checks as
    /// [`Runtime::detect`].
    pub fn new(runc: impl Into<PathBuf>, init: impl Into<PathBuf>) -> Result<Runtime> {
        let runtime = Runtime {
            runc: runc.into(),
            init: init.into(),
        };
        runtime.check_machine()?;
        Ok(runtime)
    }

    /// The runc binary.
    pub fn runc(&self) -> &Path {
        &self.runc
    }

    /// The init run as each container's first process.
    pub fn init(&self) -> &Path {
        &self.init
    }

    fn check_machine(&self) -> Result<()> {
        if !nix::unistd::geteuid().is_root() {
            return Err(unavailable(
                "sandboxed containers need root (mounts, namespaces and cgroups); this program runs as a user",
            ));
        }
        for ns in NAMESPACES {
            if !Path::new("/proc/self/ns").join(ns).exists() {
                return Err(unavailable(format!(
                    "the kernel offers no `{ns}` namespace (/proc/self/ns/{ns} is missing)"
                )));
            }
        }
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !filesystems
            .lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
        {
            return Err(unavailable(
                "the kernel has no overlay file system (not in /proc/filesystems); load the `overlay` module",
            ));
        }
        if !self.init.is_file() {
            return Err(unavailable(format!(
                "the init {} does not exist",
                self.init.display()
            )));
        }
        let version = std::process::Command::new(&self.runc)
            .arg("--version")
            .output()
            .map_err(|e| unavailable(format!("could not run {}: {e}", self.runc.display())))?;
        if !version.status.success() {
            return Err(unavailable(format!(
                "{} --version failed: {}",
                self.runc.display(),
                String::from_utf8_lossy(&version.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The argv that runs container `runc_id` in the foreground from the container's folder:
    /// runc's state in `runc/`, the bundle in `bundle/`. runc stays the parent of the container's
    /// init, forwards signals to it and exits with its status.
    pub(crate) fn run_argv(&self, runc_id: &str) -> Vec<String> {
        vec![
            self.runc.display().to_string(),
            "--root".to_owned(),
            crate::bundle::RUNC_ROOT.to_owned(),
            "run".to_owned(),
            "--bundle".to_owned(),
            crate::bundle::BUNDLE.to_owned(),
            runc_id.to_owned(),
        ]
    }

    /// The argv that runs `argv` inside container `runc_id`'s namespaces, from its folder.
    pub(crate) fn exec_argv(&self, runc_id: &str, tty: bool, argv: &[String]) -> Vec<String> {
        let mut out = vec![
            self.runc.display().to_string(),
            "--root".to_owned(),
            crate::bundle::RUNC_ROOT.to_owned(),
            "exec".to_owned(),
        ];
        if tty {
            out.push("--tty".to_owned());
        }
        out.push(runc_id.to_owned());
        out.extend(argv.iter().cloned());
        out
    }

    /// Runs `runc --root <root> <args>` with a deadline; its error output becomes the error.
    pub(crate) async fn command(&self, root: &Path, args: &[&str]) -> Result<String> {
        let mut command = tokio::process::Command::new(&self.runc);
        command
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let what = format!("runc {}", args.join(" "));
        let output = tokio::time::timeout(RUNC_DEADLINE, command.output())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("{what} did not finish within {RUNC_DEADLINE:?}"),
                )
            })?
            .map_err(|e| Error::new(ErrorKind::Backend, format!("could not run {what}: {e}")))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "{what} failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            ))
        }
    }
}

/// An [`ErrorKind::Unavailable`] error for what the machine lacks.
pub(crate) fn unavailable(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unavailable, message).with_context("backend", crate::BACKEND)
}
