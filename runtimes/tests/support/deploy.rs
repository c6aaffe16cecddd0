//! The deploy suite: every example function deployed through a build plan on a real backend,
//! then called over loopback.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use hoist_core::catalog::RuntimeCatalog;
use hoist_core::{
    ContainerId, Containerizer, ExecutorId, LogOptions, NetworkMode, Owner, PortMapping, TaskId,
    Volume,
};
use hoist_runtimes::catalog::{Catalog, CatalogSource};
use hoist_runtimes::function::{FunctionSpec, Source};
use hoist_runtimes::plan::{BuildPlan, Target};

use super::{Reply, examples, free_port, get, sample, send, shims};

/// How the backend sees the host's programs.
pub struct Host {
    /// The backend.
    pub backend: Arc<dyn Containerizer>,
    /// Docker (containers, volumes, mapped ports) or local processes.
    pub docker: Option<DockerHost>,
}

/// What a Docker deployment mounts and runs.
pub struct DockerHost {
    /// The image steps and runtimes run in (a busybox image).
    pub image: String,
}

/// Paths as the host has them.
struct HostPaths {
    python: PathBuf,
    proxy: PathBuf,
    examples_bin: PathBuf,
}

fn host_paths() -> HostPaths {
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    let python = PathBuf::from(String::from_utf8(python.stdout).unwrap().trim());
    let proxy = PathBuf::from(env!("CARGO_BIN_EXE_hoist-proxy"));
    let examples_bin = proxy.parent().unwrap().join("examples");
    HostPaths {
        python,
        proxy,
        examples_bin,
    }
}

/// In containers, host directories are mounted read-only at the same paths, except these.
const DOCKER_PROXY_DIR: &str = "/hoist-bin";
const DOCKER_EXAMPLES_DIR: &str = "/hoist-examples";
const DOCKER_SHIMS_DIR: &str = "/hoist-shims";

/// The catalog: Python, Node and prebuilt Rust runtimes, behind hoist-proxy where needed.
fn catalog(host: &Host, paths: &HostPaths) -> Catalog {
    let (proxy, examples_bin, shim_dir, image) = match &host.docker {
        Some(docker) => (
            format!("{DOCKER_PROXY_DIR}/hoist-proxy"),
            DOCKER_EXAMPLES_DIR.to_owned(),
            DOCKER_SHIMS_DIR.to_owned(),
            docker.image.clone(),
        ),
        None => (
            paths.proxy.display().to_string(),
            paths.examples_bin.display().to_string(),
            shims().display().to_string(),
            "none".to_owned(),
        ),
    };
    let python = paths.python.display();
    let text = format!(
        r#"
- ID: python
  depName: requirements.txt
  fileNameSuffix: .py
  versions:
    - name: python311
      version: "3.11"
      images:
        - phase: installation
          image: {image}
          command: {python} -m pip install --no-index --find-links ../pkgs --target site-packages -r requirements.txt
          env: {{HOME: "$(HOIST_INSTALL_DIR)/.home", PIP_NO_CACHE_DIR: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1"}}
        - phase: runtime
          image: {image}
          command: exec {proxy}
          env:
            FUNC_PROCESS: exec {python} {shim_dir}/python/hoist_runtime.py
            PYTHONPATH: $(HOIST_INSTALL_DIR)/site-packages
- ID: nodejs
  depName: package.json
  fileNameSuffix: .js
  versions:
    - name: node20
      version: "20"
      images:
        - phase: installation
          image: {image}
          command: npm install --offline --no-audit --no-fund --install-links
          env: {{HOME: "$(HOIST_INSTALL_DIR)/.home", npm_config_cache: "$(HOIST_INSTALL_DIR)/.npm"}}
        - phase: runtime
          image: {image}
          command: exec {proxy}
          env: {{FUNC_PROCESS: "exec node {shim_dir}/node/hoist_runtime.js"}}
- ID: rust
  fileNameSuffix: .rs
  versions:
    - name: rust1
      version: "1"
      images:
        - phase: runtime
          image: {image}
          command: exec {examples_bin}/function-$MOD_NAME
"#
    );
    Catalog::builder()
        .source(CatalogSource::kubeless_text("test catalog", text))
        .build()
        .unwrap()
}

/// Writes the local packages the deps functions install: a Python wheel and a Node package.
fn write_packages(dir: &Path) {
    std::fs::create_dir_all(dir.join("hoist-greeting")).unwrap();
    std::fs::write(
        dir.join("hoist-greeting/package.json"),
        r#"{"name": "hoist-greeting", "version": "1.0.0", "main": "index.js"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("hoist-greeting/index.js"),
        "exports.greet = (name) => `hello ${name} from hoist-greeting`;\n",
    )
    .unwrap();
    let wheel = std::fs::File::create(dir.join("hoist_greeting-1.0-py3-none-any.whl")).unwrap();
    let mut zip = zip::ZipWriter::new(wheel);
    let options = zip::write::SimpleFileOptions::default();
    let files = [
        (
            "hoist_greeting/__init__.py",
            "def greet(name):\n    return f'hello {name} from hoist-greeting'\n",
        ),
        (
            "hoist_greeting-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: hoist-greeting\nVersion: 1.0\n",
        ),
        (
            "hoist_greeting-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: hoist-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
    ];
    let mut record = String::new();
    for (name, content) in files {
        zip.start_file(name, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
        record.push_str(&format!("{name},,\n"));
    }
    record.push_str("hoist_greeting-1.0.dist-info/RECORD,,\n");
    zip.start_file("hoist_greeting-1.0.dist-info/RECORD", options)
        .unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
}

/// One example function.
pub struct Example {
    /// `get`, `post`, `deps` or `endless`.
    pub kind: &'static str,
    /// The file under `examples/functions/<language>/`.
    pub file: &'static str,
    /// `module.func`.
    pub handler: &'static str,
    /// The deps file's content.
    pub deps: Option<&'static str>,
}

/// The four examples of a language.
pub fn examples_of(language: &str) -> Vec<Example> {
    let example = |kind, file, handler, deps| Example {
        kind,
        file,
        handler,
        deps,
    };
    match language {
        "python" => vec![
            example("get", "helloget.py", "helloget.foo", None),
            example("post", "hellowithdata.py", "hellowithdata.handler", None),
            example(
                "deps",
                "hellowithdeps.py",
                "hellowithdeps.handler",
                Some("hoist-greeting\n"),
            ),
            example("endless", "endless.py", "endless.forever", None),
        ],
        "nodejs" => vec![
            example("get", "helloget.js", "helloget.foo", None),
            example("post", "hellowithdata.js", "hellowithdata.handler", None),
            example(
                "deps",
                "hellowithdeps.js",
                "hellowithdeps.handler",
                Some(
                    r#"{"name": "fn", "version": "1.0.0", "dependencies": {"hoist-greeting": "file:../pkgs/hoist-greeting"}}"#,
                ),
            ),
            example("endless", "endless.js", "endless.forever", None),
        ],
        _ => vec![
            example("get", "get.rs", "get.main", None),
            example("post", "post.rs", "post.main", None),
            example("endless", "endless.rs", "endless.main", None),
        ],
    }
}

/// A deployed function.
struct Deployed {
    id: ContainerId,
    url: String,
    _dir: tempfile::TempDir,
}

async fn deploy(
    host: &Host,
    catalog: &Catalog,
    language: &str,
    runtime: &str,
    example: &Example,
) -> Deployed {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let pkgs = dir.path().join("pkgs");
    write_packages(&pkgs);
    let folder = if language == "nodejs" {
        "node"
    } else {
        language
    };
    let text = std::fs::read_to_string(examples().join(folder).join(example.file)).unwrap();
    let name = format!("{}-{language}", example.kind);
    let mut spec = FunctionSpec::new(&name, example.handler, runtime, Source::text(text)).unwrap();
    spec.deps = example.deps.map(Into::into);
    spec.timeout = Duration::from_secs(if example.kind == "endless" { 2 } else { 30 });
    spec.memory_limit = Some(256 << 20);
    let port = if host.docker.is_some() {
        8080
    } else {
        free_port()
    };
    if host.docker.is_none() {
        spec.env.insert("FUNC_HOST".into(), "127.0.0.1".into());
        spec.env
            .insert("FUNC_UPSTREAM_PORT".into(), free_port().to_string());
    }
    let plan = BuildPlan::new(&spec, catalog).unwrap();
    assert_eq!(plan.runtime().name, runtime);
    let target = match host.docker {
        Some(_) => Target::docker(&work),
        None => Target::process(&work),
    };
    let mut rendering = plan.render(&target, port).unwrap();
    assert_eq!(
        rendering.steps.len(),
        usize::from(example.deps.is_some()),
        "{name}: steps"
    );
    if host.docker.is_some() {
        let paths = host_paths();
        let ro = |host_path: &Path, container_path: &str| Volume {
            host_path: host_path.to_owned(),
            container_path: container_path.into(),
            read_only: true,
        };
        let mut volumes = vec![
            ro(Path::new("/usr"), "/usr"),
            ro(Path::new("/usr/lib"), "/lib"),
            ro(Path::new("/usr/lib64"), "/lib64"),
            ro(&pkgs, "/pkgs"),
            ro(paths.proxy.parent().unwrap(), DOCKER_PROXY_DIR),
            ro(&paths.examples_bin, DOCKER_EXAMPLES_DIR),
            ro(&shims(), DOCKER_SHIMS_DIR),
        ];
        if let Some(root) = paths.python.ancestors().find(|p| p.ends_with(".pyenv")) {
            volumes.push(ro(root, &root.display().to_string()));
        }
        for container in rendering
            .steps
            .iter_mut()
            .map(|s| &mut s.container)
            .chain([&mut rendering.runtime])
        {
            container.volumes.extend(volumes.iter().cloned());
            container.network = Some(NetworkMode::Bridge);
        }
        rendering.runtime.ports = vec![PortMapping {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            ..PortMapping::tcp(8080, None)
        }];
    }
    let owner = Owner {
        executor_id: ExecutorId::new("hoist-runtimes-tests"),
        task_id: TaskId::new(format!("{name}-{}-{}", std::process::id(), free_port())),
    };
    let id = plan
        .deploy(
            host.backend.as_ref(),
            &owner,
            &target,
            &rendering,
            Duration::from_secs(120),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let url = match host.docker {
        Some(_) => {
            let info = host.backend.inspect(&id).await.unwrap();
            let mapped = info
                .ports
                .iter()
                .find(|p| p.container_port == 8080)
                .and_then(|p| p.host_port);
            format!(
                "http://127.0.0.1:{}",
                mapped.expect("port 8080 is published")
            )
        }
        None => format!("http://127.0.0.1:{port}"),
    };
    let deployed = Deployed { id, url, _dir: dir };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = tokio::time::timeout(Duration::from_secs(2), probe(&deployed.url)).await;
        if matches!(ready, Ok(true)) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let logs = logs_of(host, &deployed.id).await;
            remove(host, &deployed).await;
            panic!("{name} did not answer /healthz within 60 s; its output:\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    deployed
}

async fn probe(url: &str) -> bool {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let Ok(uri) = format!("{url}/healthz").parse::<hyper::Uri>() else {
        return false;
    };
    matches!(client.get(uri).await, Ok(r) if r.status() == 200)
}

async fn logs_of(host: &Host, id: &ContainerId) -> String {
    let Ok(mut chunks) = host
        .backend
        .logs(
            id,
            LogOptions {
                follow: false,
                tail: None,
            },
        )
        .await
    else {
        return String::new();
    };
    let mut text = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(chunk)) = chunks.next().await {
            text.extend_from_slice(&chunk.data);
        }
    })
    .await;
    String::from_utf8_lossy(&text).into_owned()
}

async fn remove(host: &Host, deployed: &Deployed) {
    host.backend
        .stop(&deployed.id, Duration::from_secs(5))
        .await
        .unwrap();
    host.backend.remove(&deployed.id, true).await.unwrap();
}

/// Deploys every example of `language` on `host` and checks outputs, logged event fields,
/// the 408 of the endless one, and the metrics.
pub async fn run_examples(host: &Host, language: &str, runtime: &str) {
    let paths = host_paths();
    let catalog = catalog(host, &paths);
    assert!(catalog.resolve(runtime).is_ok());
    if language == "rust" {
        for binary in ["function-get", "function-post", "function-endless"] {
            assert!(
                paths.examples_bin.join(binary).exists(),
                "{} is missing: build the examples (`cargo build -p hoist-runtimes --examples`)",
                paths.examples_bin.join(binary).display()
            );
        }
    }
    for example in examples_of(language) {
        let deployed = deploy(host, &catalog, language, runtime, &example).await;
        let checked = check(host, &deployed, language, &example).await;
        remove(host, &deployed).await;
        if let Err(message) = checked {
            panic!(
                "{} {language} on {}: {message}",
                example.kind,
                host.backend.name()
            );
        }
    }
    let left = host
        .backend
        .list_owned(&ExecutorId::new("hoist-runtimes-tests"))
        .await
        .unwrap();
    let ours: Vec<_> = left
        .iter()
        .filter(|c| {
            c.owner
                .task_id
                .as_str()
                .ends_with(&format!("-{}", std::process::id()))
        })
        .collect();
    assert!(ours.is_empty(), "containers left behind: {ours:?}");
}

async fn check(
    host: &Host,
    deployed: &Deployed,
    language: &str,
    example: &Example,
) -> Result<(), String> {
    let url = &deployed.url;
    let expect = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    match example.kind {
        "get" => {
            for _ in 0..2 {
                let reply = get(&format!("{url}/")).await;
                expect(
                    reply.status == 200 && reply.body.contains("hello world"),
                    format!("GET answered {reply:?}"),
                )?;
            }
            let metrics = get(&format!("{url}/metrics")).await.body;
            let calls = sample(&metrics, "function_calls_total{method=\"GET\"}");
            expect(
                calls == Some(2.0),
                format!("metrics count {calls:?} GET calls:\n{metrics}"),
            )?;
            let count = sample(&metrics, "function_duration_seconds_count{method=\"GET\"}");
            expect(
                count == Some(2.0),
                format!("histogram count {count:?}:\n{metrics}"),
            )?;
        }
        "post" => {
            let headers = [
                ("content-type", "application/json"),
                ("event-id", "Xk3nQ9pLm2a"),
                ("event-type", "application/json"),
                ("event-time", "2026-11-22T18:00:00Z"),
                ("event-namespace", "cli.kubeless.io"),
            ];
            let reply: Reply = send(
                "POST",
                &format!("{url}/"),
                &headers,
                r#"{"it-s":"alive"}"#,
                Duration::from_secs(30),
            )
            .await;
            expect(reply.status == 200, format!("POST answered {reply:?}"))?;
            let data: serde_json::Value =
                serde_json::from_str(&reply.body).map_err(|e| format!("{e}: {reply:?}"))?;
            expect(
                data == serde_json::json!({"it-s": "alive"}),
                format!("POST echoed {data}"),
            )?;
            let wanted = [
                "Xk3nQ9pLm2a",
                "2026-11-22T18:00:00Z",
                "cli.kubeless.io",
                "application/json",
                "alive",
            ];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let logs = logs_of(host, &deployed.id).await;
                if wanted.iter().all(|w| logs.contains(w)) {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(format!(
                        "the logs lack an event field of {wanted:?}:\n{logs}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        "deps" => {
            let reply = get(&format!("{url}/")).await;
            expect(
                reply.status == 200 && reply.body.contains("hello deps from hoist-greeting"),
                format!("the deps function answered {reply:?}"),
            )?;
        }
        _ => {
            let reply = send("GET", &format!("{url}/"), &[], "", Duration::from_secs(30)).await;
            expect(
                reply.status == 408,
                format!("the endless function answered {reply:?}"),
            )?;
            let metrics = get(&format!("{url}/metrics")).await.body;
            let failures = sample(&metrics, "function_failures_total{method=\"GET\"}");
            expect(
                failures == Some(1.0),
                format!("metrics count {failures:?} failures:\n{metrics}"),
            )?;
        }
    }
    let _ = language;
    Ok(())
}

/// A deps file naming a package that is not there: the deploy fails with pip's output.
pub async fn failed_install(host: &Host) {
    let catalog = catalog(host, &host_paths());
    let dir = tempfile::tempdir().unwrap();
    write_packages(&dir.path().join("pkgs"));
    let work = dir.path().join("work");
    let mut spec = FunctionSpec::new(
        "broken",
        "helloget.foo",
        "python3.11",
        Source::text("x = 1\n"),
    )
    .unwrap();
    spec.deps = Some("no-such-package-anywhere\n".into());
    let plan = BuildPlan::new(&spec, &catalog).unwrap();
    let target = Target::process(&work);
    let rendering = plan.render(&target, free_port()).unwrap();
    let owner = Owner {
        executor_id: ExecutorId::new("hoist-runtimes-tests"),
        task_id: TaskId::new(format!("broken-{}", std::process::id())),
    };
    let err = plan
        .deploy(
            host.backend.as_ref(),
            &owner,
            &target,
            &rendering,
            Duration::from_secs(120),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the installation of function `broken` failed"),
        "{text}"
    );
    assert!(
        text.contains("no-such-package-anywhere"),
        "pip's output is in the error: {text}"
    );
    assert!(
        !work.join(".hoist-deps.sha256").exists(),
        "a failed install is not recorded"
    );
}
