//! The real readers of `/metrics`: Prometheus's `promtool` (Debian's `prometheus` package) and
//! the parsers of Python's `prometheus_client` (in the tests' venv).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text`; panics with its report unless it passes.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian's `prometheus` package")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\non:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
    let mut child = Command::new(venv_python())
        .args([
            "-c",
            PARSE,
            if openmetrics { "openmetrics" } else { "text" },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
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
