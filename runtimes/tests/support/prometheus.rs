//! The real readers of `/metrics`: Prometheus's `promtool` (Debian's `prometheus` package) and
//! the parsers of Python's `prometheus_client` (in the tests' venv).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `command` with `text` on its stdin and returns its output.
fn with_stdin(command: &mut Command, text: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `promtool check metrics` on `text`; panics with its report unless it passes.
pub fn promtool_check(text: &str) {
    assert!(
        Command::new("promtool").arg("--version").output().is_ok(),
        "cannot run promtool: install Debian's `prometheus` package"
    );
    let output = with_stdin(Command::new("promtool").args(["check", "metrics"]), text);
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\non:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET /metrics` of `running`: served in the text format, passing promtool, as parsed by
/// prometheus_client's text parser.
pub async fn checked_samples(running: &super::proxied::Running) -> Vec<Sample> {
    let reply = super::get(&running.at("/metrics")).await;
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    promtool_check(&reply.body);
    python_samples(&reply.body, false)
}

/// The Python of the tests' venv (`functions/tests/setup-python.sh`): `HOIST_LAMBDA_VENV`,
/// else `target/lambda-venv`.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("HOIST_LAMBDA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test binary>
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().join("lambda-venv")
        });
    let python = venv.join("bin").join("python");
    assert!(
        python.exists(),
        "no Python venv at {}: run functions/tests/setup-python.sh",
        venv.display()
    );
    python
}

/// One parsed sample: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

const PARSE: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps(samples))
"#;

/// Parses `text` with prometheus_client's text parser (`openmetrics`: its OpenMetrics
/// parser, which rejects anything not OpenMetrics); panics with the parser's error.
pub fn python_samples(text: &str, openmetrics: bool) -> Vec<Sample> {
    let output = with_stdin(
        Command::new(venv_python()).args([
            "-c",
            PARSE,
            if openmetrics { "openmetrics" } else { "text" },
        ]),
        text,
    );
    assert!(
        output.status.success(),
        "prometheus_client could not parse the metrics:\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of sample `name` whose `method` label is `method`.
pub fn value(samples: &[Sample], name: &str, method: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| {
            n == name && labels.get("method").map(String::as_str) == Some(method)
        })
        .map(|(_, _, v)| *v)
}
