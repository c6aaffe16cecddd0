//! The crate in `tests/outside/` uses hoist from outside the workspace, through the facade's
//! public API alone: a hook written with `HookContext<'_>` and passed as an `Arc`, a backend
//! wrapped in `TracingLayer` and `RetryLayer` passing the conformance suite, and
//! `executor.run(spec)` on the process backend. This runs its tests as its own `cargo test`.
//!
//! The crate is copied under the target directory with its path dependency made absolute and
//! the workspace's lock file beside it: the versions it resolves are the ones the workspace
//! builds with, so it needs no lock file of its own to keep in step, and the source tree is
//! never written to.

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn a_crate_outside_the_workspace_uses_the_public_api() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = workspace.join("tests/outside");
    let build = hoist::testing::target_profile_dir()
        .unwrap()
        .parent()
        .unwrap()
        .join("outside");
    let crate_dir = build.join("crate");
    let _ = fs::remove_dir_all(&crate_dir);
    copy_dir(&source, &crate_dir);
    let manifest = fs::read_to_string(source.join("Cargo.toml")).unwrap();
    let facade = format!("path = {:?}", workspace.display().to_string());
    assert!(manifest.contains("path = \"../..\""), "{manifest}");
    fs::write(
        crate_dir.join("Cargo.toml"),
        manifest.replace("path = \"../..\"", &facade),
    )
    .unwrap();
    fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        // Its own target directory: the workspace's is locked by the build running this test.
        .env("CARGO_TARGET_DIR", build.join("target"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo test of the outside crate failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 passed"), "{stdout}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "Cargo.lock" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
