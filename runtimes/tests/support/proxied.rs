//! A function served by hoist-proxy in front of a shim, as real processes on loopback.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_runtimes::contract::ContractConfig;
use hoist_runtimes::proxy::{Proxy, ProxyConfig};
use tokio::net::TcpListener;

use super::{free_port, shims};

/// A function to serve: language, folder, `module.handler`, timeout, environment.
pub struct Function {
    language: &'static str,
    dir: PathBuf,
    module: String,
    handler: String,
    timeout: String,
    env: Vec<(String, String)>,
    interpreter: Option<PathBuf>,
}

impl Function {
    /// `module.handler` of `dir`, served by the Python shim with `python3`.
    pub fn python(dir: impl AsRef<Path>, module: &str, handler: &str) -> Function {
        Function::new("python", dir, module, handler)
    }

    /// `module.handler` of `dir`, served by the Node shim.
    pub fn node(dir: impl AsRef<Path>, module: &str, handler: &str) -> Function {
        Function::new("node", dir, module, handler)
    }

    fn new(language: &'static str, dir: impl AsRef<Path>, module: &str, handler: &str) -> Self {
        Function {
            language,
            dir: dir.as_ref().to_owned(),
            module: module.into(),
            handler: handler.into(),
            timeout: "10".into(),
            env: Vec::new(),
            interpreter: None,
        }
    }

    /// The call timeout, in seconds (`FUNC_TIMEOUT`; 10 by default).
    pub fn timeout(mut self, seconds: &str) -> Self {
        self.timeout = seconds.into();
        self
    }

    /// An environment variable of the function's process.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The interpreter that runs the shim (`python3` or `node` by default).
    pub fn interpreter(mut self, path: impl Into<PathBuf>) -> Self {
        self.interpreter = Some(path.into());
        self
    }

    /// Starts hoist-proxy and the shim, and serves on a loopback port.
    pub async fn start(self) -> Running {
        let output = tempfile::NamedTempFile::new().unwrap();
        let (default, shim) = match self.language {
            "python" => ("python3", shims().join("python/hoist_runtime.py")),
            _ => ("node", shims().join("node/hoist_runtime.js")),
        };
        let interpreter = self
            .interpreter
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| default.to_owned());
        let mut config = ProxyConfig::from_vars([
            (
                "FUNC_PROCESS",
                // Without the variable whatever the machine sets: the shim must set it.
                format!(
                    "cd {} && exec env -u PYTHONUNBUFFERED {interpreter} {} >>{} 2>&1",
                    self.dir.display(),
                    shim.display(),
                    output.path().display()
                ),
            ),
            ("FUNC_TIMEOUT", self.timeout),
            ("FUNC_UPSTREAM_PORT", free_port().to_string()),
            ("FUNC_START_TIMEOUT", "20".to_owned()),
        ])
        .unwrap();
        config.env = vec![
            ("MOD_NAME".into(), self.module),
            ("FUNC_HANDLER".into(), self.handler),
        ];
        config.env.extend(self.env);
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        config.contract = ContractConfig {
            log: Arc::new(move |entry| sink.lock().unwrap().push(entry.to_string())),
            ..config.contract
        };
        let proxy = match Proxy::start(config).await {
            Ok(proxy) => proxy,
            Err(e) => panic!(
                "the shim did not start: {e}\n{}",
                std::fs::read_to_string(output.path()).unwrap_or_default()
            ),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, signal) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(proxy.serve_with_shutdown(listener, async {
            let _ = signal.await;
        }));
        Running {
            url,
            logs,
            output,
            shutdown,
            server,
        }
    }
}

/// A served function.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
    output: tempfile::NamedTempFile,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<hoist_core::Result<()>>,
}

impl Running {
    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The request log lines so far.
    pub fn request_log(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// What the function's process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    /// Waits up to 10 s for the process's output to hold every one of `wanted`.
    pub async fn expect_output(&self, wanted: &[&str]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let output = self.output();
            if wanted.iter().all(|w| output.contains(w)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the function's output lacks one of {wanted:?}:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the proxy and the process.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
