//! The contract's Prometheus metrics, with the names, help texts, label and buckets of
//! Kubeless's runtimes, in the text format 0.0.4 or in OpenMetrics.
//!
//! Kubeless serves the text format (prometheus_client's `generate_latest`, prom-client's
//! `register.metrics()`), and `kubeless function top` reads it with client_golang's
//! `expfmt.TextParser` (kubeless/kubeless `pkg/utils/metrics.go`), which rejects OpenMetrics'
//! `# TYPE function_calls counter` over `function_calls_total` samples. So the text format is
//! the default and OpenMetrics is served only to a client whose `Accept` prefers it, as
//! Prometheus's scraper does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::{Conventions, process};

/// The exposition format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// Prometheus's text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

/// The content type of the text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl MetricsFormat {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of any range matching
    /// `text/plain`; the text format otherwise (no header, `*/*`, `application/json, */*`...).
    pub fn negotiate(accept: Option<&str>) -> MetricsFormat {
        let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.unwrap_or("").split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let quality = params
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            MetricsFormat::OpenMetrics
        } else {
            MetricsFormat::Text
        }
    }

    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::Text => TEXT_CONTENT_TYPE,
            MetricsFormat::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// The figures of one `method` label.
#[derive(Debug, Default, Clone)]
struct Series {
    calls: u64,
    failures: u64,
    /// Observations per bucket, not cumulated; the last one is `+Inf`.
    buckets: Vec<u64>,
    sum: f64,
}

/// `function_calls_total`, `function_failures_total` and the `function_duration_seconds`
/// histogram by `method`, plus the `process_*` metrics of the serving process.
///
/// What counts as a failure is the caller's to say: Kubeless counts a function's unhandled
/// exception, not a timeout (`_kubeless.py` returns its 408 instead of raising it; a Node
/// promise that never settles is never counted at all).
#[derive(Debug)]
pub struct ContractMetrics {
    buckets: &'static [f64],
    series: Mutex<BTreeMap<String, Series>>,
}

impl Default for ContractMetrics {
    fn default() -> Self {
        ContractMetrics::new(Conventions::Python.buckets())
    }
}

const CALLS: (&str, &str) = ("function_calls", "Number of calls to user function");
const FAILURES: (&str, &str) = ("function_failures", "Number of exceptions in user function");
const DURATION: (&str, &str) = (
    "function_duration_seconds",
    "Duration of user function in seconds",
);

impl ContractMetrics {
    /// Metrics whose histogram has these bucket bounds (ascending, `+Inf` implied).
    pub fn new(buckets: &'static [f64]) -> Self {
        ContractMetrics {
            buckets,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one call of HTTP `method` that took `seconds`, labelled as `conventions` say.
    pub fn record(&self, conventions: &Conventions, method: &str, seconds: f64, failed: bool) {
        let bucket = self
            .buckets
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.buckets.len());
        let label = conventions.method_label(method);
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if !all.contains_key(label.as_ref()) {
            let fresh = Series {
                buckets: vec![0; self.buckets.len() + 1],
                ..Series::default()
            };
            all.insert(label.clone().into_owned(), fresh);
        }
        let Some(series) = all.get_mut(label.as_ref()) else {
            return;
        };
        series.calls += 1;
        series.failures += u64::from(failed);
        series.buckets[bucket] += 1;
        series.sum += seconds;
    }

    /// The metrics in the text format 0.0.4.
    pub fn encode(&self) -> String {
        self.encode_as(MetricsFormat::Text)
    }

    /// The metrics in `format`.
    pub fn encode_as(&self, format: MetricsFormat) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        if let Some(sample) = process::sample() {
            for (name, kind, help, value) in process::metrics(&sample) {
                let sample_name = family(&mut out, format, name, kind, help);
                line(&mut out, &sample_name, &[], value);
            }
        }
        for (name, help, value) in [
            (
                CALLS.0,
                CALLS.1,
                (|s: &Series| s.calls) as fn(&Series) -> u64,
            ),
            (FAILURES.0, FAILURES.1, |s: &Series| s.failures),
        ] {
            let sample_name = family(&mut out, format, name, "counter", help);
            for (label, s) in &series {
                line(
                    &mut out,
                    &sample_name,
                    &[("method", label)],
                    value(s) as f64,
                );
            }
        }
        family(&mut out, format, DURATION.0, "histogram", DURATION.1);
        for (label, s) in &series {
            let mut cumulated = 0;
            for (i, count) in s.buckets.iter().enumerate() {
                cumulated += count;
                // Bounds as prometheus_client writes them (`1.0`, `0.005`); `+Inf` last.
                let le = match self.buckets.get(i) {
                    Some(bound) => format!("{bound:?}"),
                    None => "+Inf".to_owned(),
                };
                let name = format!("{}_bucket", DURATION.0);
                let labels = [("method", label.as_str()), ("le", le.as_str())];
                line(&mut out, &name, &labels, cumulated as f64);
            }
            let labels = [("method", label.as_str())];
            line(
                &mut out,
                &format!("{}_count", DURATION.0),
                &labels,
                s.calls as f64,
            );
            line(&mut out, &format!("{}_sum", DURATION.0), &labels, s.sum);
        }
        if format == MetricsFormat::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines and returns the name its samples take. A
/// counter `x` is the family `x_total` in the text format and `x` in OpenMetrics; its samples
/// are `x_total` in both.
fn family(out: &mut String, format: MetricsFormat, name: &str, kind: &str, help: &str) -> String {
    let (family, sample) = match (kind, format) {
        ("counter", MetricsFormat::Text) => (format!("{name}_total"), format!("{name}_total")),
        ("counter", MetricsFormat::OpenMetrics) => (name.to_owned(), format!("{name}_total")),
        _ => (name.to_owned(), name.to_owned()),
    };
    let _ = writeln!(out, "# HELP {family} {help}");
    let _ = writeln!(out, "# TYPE {family} {kind}");
    sample
}

fn line(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"");
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_families_as_their_samples() {
        let metrics = ContractMetrics::default();
        metrics.record(&Conventions::Python, "GET", 0.07, false);
        metrics.record(&Conventions::Python, "GET", 12.0, true);
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE function_calls_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP function_calls_total Number of calls to user function\n"));
        assert!(
            text.contains("function_calls_total{method=\"GET\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("function_failures_total{method=\"GET\"} 1\n"));
        assert!(text.contains("function_duration_seconds_bucket{method=\"GET\",le=\"0.05\"} 0\n"));
        assert!(text.contains("function_duration_seconds_bucket{method=\"GET\",le=\"0.075\"} 1\n"));
        assert!(text.contains("function_duration_seconds_bucket{method=\"GET\",le=\"10.0\"} 1\n"));
        assert!(text.contains("function_duration_seconds_bucket{method=\"GET\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("function_duration_seconds_sum{method=\"GET\"} 12.07\n"));
        assert!(!text.contains("# EOF"));
        #[cfg(target_os = "linux")]
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let node = Conventions::Node { module: "m".into() };
        let metrics = ContractMetrics::new(node.buckets());
        metrics.record(&node, "GET", 0.001, false);
        let text = metrics.encode_as(MetricsFormat::OpenMetrics);
        assert!(
            text.contains(
                "# TYPE function_calls counter\nfunction_calls_total{method=\"m-GET\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("le=\"0.075\""), "Node's buckets: {text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn accept_headers_choose_the_format() {
        use MetricsFormat::*;
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(MetricsFormat::negotiate(Some(prometheus)), OpenMetrics);
        assert_eq!(MetricsFormat::negotiate(None), Text);
        assert_eq!(MetricsFormat::negotiate(Some("*/*")), Text);
        assert_eq!(
            MetricsFormat::negotiate(Some("application/json, */*")),
            Text
        );
        assert_eq!(
            MetricsFormat::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Text
        );
        assert_eq!(
            MetricsFormat::negotiate(Some("application/openmetrics-text; version=1.0.0")),
            OpenMetrics
        );
    }
}
