//! The crate in `tests/outside/` uses hoist from outside the workspace, through the facade's
//! public API alone: a hook written with `HookContext<'_>` and passed as an `Arc`, a backend
//! wrapped in `TracingLayer` and `RetryLayer` passing the conformance suite, and
//! `executor.run(spec)` on the process backend. This runs its tests as its own `cargo test`.

use std::path::Path;
use std::process::Command;

#[test]
fn a_crate_outside_the_workspace_uses_the_public_api() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = workspace.join("tests/outside/Cargo.toml");
    // Its own target directory: the workspace's is locked by the build running this test.
    let target = hoist::testing::target_profile_dir()
        .unwrap()
        .parent()
        .unwrap()
        .join("outside");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "--quiet", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
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
