//! Where Kubeless's Python and Node runtimes differ in what their tooling sees, which one a
//! contract server follows.

/// The Kubeless runtime whose metric labels, histogram buckets and request-log style a contract
/// server reproduces, so that `kubeless function top`, a Prometheus server and log greps see
/// the same thing as before a move to hoist.
///
/// The shims announce theirs to hoist-proxy in their `/healthz` answer (header
/// [`CONVENTIONS_HEADER`]); the Rust contract server and any other process follow
/// [`Conventions::Python`], Kubeless's default runtime.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Conventions {
    /// kubeless/runtimes `stable/python/_kubeless.py`: `method` is the HTTP method, the
    /// histogram has prometheus_client's default buckets, the request log is
    /// wsgi-request-logger's `ApacheFormatter` (missing referer and agent are `""`, the path has
    /// no query string, the line ends with the response time as `seconds/microseconds`).
    #[default]
    Python,
    /// kubeless/runtimes `stable/nodejs/kubeless.js` and `lib/helper.js`: `method` is
    /// `<MOD_NAME>-<METHOD>`, the histogram has prom-client's default buckets, the request log
    /// is morgan's `combined` (missing values are `"-"`, the URL keeps its query string).
    Node {
        /// The function's module (`MOD_NAME`).
        module: String,
    },
}

/// The `/healthz` response header in which a shim names its conventions: `python`, or
/// `node; module=<MOD_NAME>`.
pub const CONVENTIONS_HEADER: &str = "hoist-conventions";

/// prometheus_client's `Histogram.DEFAULT_BUCKETS` (the Python runtime's histogram).
const PYTHON_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// prom-client's default buckets (the Node runtime's histogram; also client_golang's
/// `DefBuckets`, which Kubeless's Go runtime and function proxy use).
const NODE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Conventions {
    /// The `method` label of a call with HTTP `method`.
    pub fn method_label<'a>(&self, method: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Conventions::Python => method.into(),
            Conventions::Node { module } => format!("{module}-{method}").into(),
        }
    }

    /// The upper bounds of `function_duration_seconds`' buckets (`+Inf` not included).
    pub fn buckets(&self) -> &'static [f64] {
        match self {
            Conventions::Python => &PYTHON_BUCKETS,
            Conventions::Node { .. } => &NODE_BUCKETS,
        }
    }

    /// Reads a [`CONVENTIONS_HEADER`] value: `python`, or `node; module=<name>`.
    pub fn from_header(value: &str) -> Option<Conventions> {
        let mut parts = value.split(';').map(str::trim);
        match parts.next()? {
            "python" => Some(Conventions::Python),
            "node" => {
                let module = parts
                    .find_map(|p| p.strip_prefix("module="))
                    .filter(|m| !m.is_empty())?;
                Some(Conventions::Node {
                    module: module.to_owned(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_buckets_and_the_header() {
        let node = Conventions::from_header("node; module=hello").unwrap();
        assert_eq!(node.method_label("POST"), "hello-POST");
        assert_eq!(node.buckets().len(), 11);
        let python = Conventions::from_header("python").unwrap();
        assert_eq!(python.method_label("GET"), "GET");
        assert_eq!(python.buckets()[4], 0.075);
        assert_eq!(
            Conventions::from_header("node"),
            None,
            "node needs its module"
        );
        assert_eq!(Conventions::from_header("ruby"), None);
    }
}
