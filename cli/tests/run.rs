//! `hoist run` as a user runs it: the program, its output and its exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{free_port, scrape};

fn hoist(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the hoist program runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A directory with the README's demo as `demo.yaml`, its web server on a port of its own
/// (other tests run it at the same time), and the path of a state directory in it.
fn demo_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let demo = std::fs::read_to_string(repo().join("examples/tasks/demo.yaml"))
        .unwrap()
        .replace("18080", &free_port().to_string());
    std::fs::write(dir.path().join("demo.yaml"), demo).unwrap();
    (dir, state)
}

#[test]
fn the_demo_runs_its_tasks_and_stops_them_after_for() {
    let (dir, state) = demo_dir();
    let output = hoist(
        &[
            "run",
            "demo.yaml",
            "--for",
            "8s",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        dir.path(),
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "job starting",
        "job running",
        "job finished (command_exited): exited with code 0",
        "web running healthy (health_check_status_updated)",
        "web killed (executor_shutdown)",
    ] {
        assert!(stdout.contains(line), "`{line}` missing from:\n{stdout}");
    }
    // Every container was removed after its task ended: the state directory is empty.
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
}

#[test]
fn a_failing_task_exits_1_and_a_bad_file_exits_2_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(
        dir.path().join("fail.yaml"),
        "tasks:\n  - id: oops\n    container: { command: [/bin/sh, -c, 'exit 3'] }\n",
    )
    .unwrap();
    let output = hoist(
        &["run", "fail.yaml", "--state-dir", state.to_str().unwrap()],
        dir.path(),
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("oops failed (command_exited): exited with code 3"),
        "{stdout}"
    );

    std::fs::write(
        dir.path().join("bad.yaml"),
        "tasks:\n  - id: x\n    container: { command: [/bin/true], ports: [{ container_port: 0 }] }\n",
    )
    .unwrap();
    let output = hoist(&["run", "bad.yaml"], dir.path());
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("hoist: "), "{stderr}");
    assert!(
        stderr.contains("tasks[0].container.ports[0].container_port"),
        "{stderr}"
    );

    let output = hoist(&["run", "missing.yaml"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("missing.yaml"));
}

#[test]
fn unknown_backends_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let output = hoist(&["run", "x.yaml", "--backend", "podman"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("`podman` is not a backend"));

    let output = hoist(&["--version"], dir.path());
    assert!(output.status.success());
    assert_eq!(
        text(&output).0.trim(),
        format!("hoist {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_engine_metrics_are_served_while_running_and_events_are_printed() {
    let (dir, state) = demo_dir();
    let metrics_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["run", "demo.yaml", "--for", "60s", "--state-dir"])
        .arg(&state)
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ends the run (gracefully, as Ctrl-C does) even if an assertion fails first.
    struct Interrupt(Option<std::process::Child>);
    impl Interrupt {
        fn stop(&mut self) -> Output {
            let child = self.0.take().unwrap();
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            child.wait_with_output().unwrap()
        }
    }
    impl Drop for Interrupt {
        fn drop(&mut self) {
            if self.0.is_some() {
                let _ = self.stop();
            }
        }
    }
    let mut run = Interrupt(Some(child));
    // The job finishes and the web server runs healthy: both show in the metrics.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (content_type, body) = loop {
        if let Some((content_type, body)) = scrape(metrics_port)
            && body.contains("hoist_tasks{state=\"running\"} 1")
            && body.contains("hoist_health_checks_total{result=\"healthy\"}")
            && body.contains("state=\"finished\"")
        {
            break (content_type, body);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the metrics never showed the demo running: {:?}",
            scrape(metrics_port)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("hoist_task_launches_total 2\n"), "{body}");
    support::promtool_check(&body);
    let output = run.stop();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "metrics on http://127.0.0.1:{metrics_port}/metrics"
        )),
        "{stderr}"
    );
    // Task events, one line each, beside the statuses.
    for line in [
        "job created: container ",
        "web started: container ",
        "web killed (executor_shutdown)",
    ] {
        assert!(stdout.contains(line), "`{line}` missing from:\n{stdout}");
    }
}
