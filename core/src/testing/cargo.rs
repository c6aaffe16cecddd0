//! Building the workspace's own programs from a test, for tests that run an example as a
//! process or mount a binary into a container.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, ErrorKind, Result};

/// The profile directory (`target/debug`) of the running test binary, which cargo puts in
/// `<profile>/deps/`.
pub fn target_profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("{} is not in a cargo target directory", exe.display()),
            )
        })
}

/// Runs `cargo build --quiet <args>` in `dir` (the cargo that runs the tests, from `$CARGO`) and
/// returns `<profile dir>/<artifact>`, the program it built: `"examples/function-executor"`,
/// `"hoist-proxy"`. A no-op build when the test run already built it.
///
/// ```no_run
/// let example = hoist_core::testing::cargo_build(
///     std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
///     &["--example", "local-executor"],
///     "examples/local-executor",
/// )?;
/// # Ok::<(), hoist_core::Error>(())
/// ```
pub fn cargo_build(dir: &Path, args: &[&str], artifact: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--quiet"])
        .args(args)
        .status()?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Backend,
            format!("`cargo build {}` failed: {status}", args.join(" ")),
        ));
    }
    let built = target_profile_dir()?.join(artifact);
    if !built.exists() {
        return Err(Error::not_found("built program", built.display()));
    }
    Ok(built)
}
