//! The deploy suite: every example function deployed through a build plan on a real backend,
//! then called over loopback.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use hoist_core::catalog::{PhaseKind, RuntimeCatalog};
use hoist_core::{
    ContainerId, Containerizer, ExecutorId, LogOptions, NetworkMode, Owner, PortMapping, TaskId,
    Volume,
};
use hoist_runtimes::catalog::{Catalog, CatalogSource};
use hoist_runtimes::function::{FunctionSpec, Source, SourceContent, sha256_hex};
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
    /// The Rust toolchain (`rustc --print sysroot`): `bin/cargo`, `bin/rustc` and their libraries.
    rust_sysroot: PathBuf,
}

/// The host's paths, found once per test process (it runs `python3` and `rustc`).
fn host_paths() -> &'static HostPaths {
    static PATHS: std::sync::OnceLock<HostPaths> = std::sync::OnceLock::new();
    PATHS.get_or_init(find_host_paths)
}

fn find_host_paths() -> HostPaths {
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    let python = PathBuf::from(String::from_utf8(python.stdout).unwrap().trim());
    let proxy = PathBuf::from(env!("CARGO_BIN_EXE_hoist-proxy"));
    let examples_bin = proxy.parent().unwrap().join("examples");
    let sysroot = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let rust_sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
    assert!(
        rust_sysroot.join("bin/cargo").exists(),
        "no cargo in the Rust toolchain at {}",
        rust_sysroot.display()
    );
    HostPaths {
        python,
        proxy,
        examples_bin,
        rust_sysroot,
    }
}

/// In containers, host directories are mounted read-only at the same paths, except these.
const DOCKER_PROXY_DIR: &str = "/hoist-bin";
const DOCKER_EXAMPLES_DIR: &str = "/hoist-examples";
const DOCKER_SHIMS_DIR: &str = "/hoist-shims";

/// The catalog: Python, Node, prebuilt Rust and Rust compiled by Cargo, behind hoist-proxy where
/// needed.
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
    let cargo = paths.rust_sysroot.join("bin/cargo");
    let cargo = cargo.display();
    let rustc = paths.rust_sysroot.join("bin/rustc");
    // Cargo, rustc and the linker write only inside the work directory.
    let cargo_env = format!(
        r#"{{HOME: "$(HOIST_INSTALL_DIR)/.home", CARGO_HOME: "$(HOIST_INSTALL_DIR)/.cargo", CARGO_TARGET_DIR: "$(HOIST_INSTALL_DIR)/target", TMPDIR: "$(HOIST_INSTALL_DIR)/.tmp", RUSTC: "{}"}}"#,
        rustc.display()
    );
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
- ID: rust-cargo
  compiled: true
  depName: Cargo.toml
  versions:
    - name: cargo1
      version: "1"
      images:
        - phase: installation
          image: {image}
          command: mkdir -p .tmp && {cargo} vendor --offline --respect-source-config --config 'source.crates-io.replace-with="local"' --config 'source.local.directory="../pkgs/crates"' vendor
          env: {cargo_env}
        - phase: compilation
          image: {image}
          command: mkdir -p .tmp && {cargo} build --offline --release --config 'source.crates-io.replace-with="vendored"' --config 'source.vendored.directory="vendor"'
          env: {cargo_env}
        - phase: runtime
          image: {image}
          command: exec {proxy}
          env: {{FUNC_PROCESS: "exec $(HOIST_INSTALL_DIR)/target/release/$MOD_NAME"}}
"#
    );
    Catalog::builder()
        .source(CatalogSource::kubeless_text("test catalog", text))
        .build()
        .unwrap()
}

/// Writes the local packages the deps functions install: a Python wheel, a Node package and a
/// Rust crate in a Cargo directory source (`crates/`, each crate with its checksums).
fn write_packages(dir: &Path) {
    let krate = dir.join("crates/hoist-greeting-1.0.0");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let crate_files = [
        (
            "Cargo.toml",
            "[package]\nname = \"hoist-greeting\"\nversion = \"1.0.0\"\nedition = \"2021\"\n",
        ),
        (
            "src/lib.rs",
            "/// The greeting.\npub fn greet(name: &str) -> String {\n    format!(\"hello {name} from hoist-greeting\")\n}\n",
        ),
    ];
    let mut sums = serde_json::Map::new();
    for (name, content) in crate_files {
        std::fs::write(krate.join(name), content).unwrap();
        sums.insert(name.into(), sha256_hex(content.as_bytes()).into());
    }
    std::fs::write(
        krate.join(".cargo-checksum.json"),
        serde_json::json!({"files": sums, "package": null}).to_string(),
    )
    .unwrap();

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
    /// The file under `examples/functions/<language>/`, or a Cargo project folder there (sent
    /// as a tar of its `src/`, with its `Cargo.toml` as the deps file).
    pub file: &'static str,
    /// `module.func`.
    pub handler: &'static str,
    /// The deps file's content.
    pub deps: Option<String>,
    /// The runtime, when not the language's.
    pub runtime: Option<&'static str>,
}

/// The four examples of a language.
pub fn examples_of(language: &str) -> Vec<Example> {
    let example = |kind, file, handler, deps: Option<&str>| Example {
        kind,
        file,
        handler,
        deps: deps.map(Into::into),
        runtime: None,
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
            Example {
                deps: Some(
                    std::fs::read_to_string(examples().join("rust/hellowithdeps/Cargo.toml"))
                        .unwrap(),
                ),
                runtime: Some("rust-cargo1"),
                ..example("deps", "hellowithdeps", "hellowithdeps.main", None)
            },
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
    let path = examples().join(folder).join(example.file);
    let source = if path.is_dir() {
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_dir_all("src", path.join("src")).unwrap();
        let bytes = tar.into_inner().unwrap();
        Source {
            checksum: Some(format!("sha256:{}", sha256_hex(&bytes))),
            content: SourceContent::Tar(bytes),
        }
    } else {
        Source::text(std::fs::read_to_string(&path).unwrap())
    };
    let runtime = example.runtime.unwrap_or(runtime);
    let name = format!("{}-{language}", example.kind);
    let mut spec = FunctionSpec::new(&name, runtime, example.handler, source);
    spec.deps = example.deps.clone();
    spec.timeout = Duration::from_secs(if example.kind == "endless" { 2 } else { 30 });
    spec.memory = 256;
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
    let phases: Vec<_> = rendering.steps.iter().map(|s| s.phase).collect();
    let mut expected = Vec::new();
    if example.deps.is_some() {
        expected.push(PhaseKind::Installation);
    }
    if plan.runtime().compiled {
        expected.push(PhaseKind::Compilation);
    }
    assert_eq!(phases, expected, "{name}: steps");
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
            ro(
                &paths.rust_sysroot,
                &paths.rust_sysroot.display().to_string(),
            ),
        ];
        // Debian's `cc` (rustc's linker) is a link through /etc/alternatives.
        let alternatives = Path::new("/etc/alternatives");
        if alternatives.is_dir() {
            volumes.push(ro(alternatives, "/etc/alternatives"));
        }
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
    if example.deps.is_some() {
        let again = plan.render(&target, port).unwrap();
        assert!(
            again
                .steps
                .iter()
                .all(|s| s.phase != PhaseKind::Installation),
            "{name}: an unchanged deps file is not installed again"
        );
    }
    if plan.runtime().compiled {
        for built in ["vendor/hoist-greeting", "target/release/hellowithdeps"] {
            assert!(
                work.join(built).exists(),
                "{name}: no {built} in the work directory"
            );
        }
    }
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
    let catalog = catalog(host, paths);
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

/// Checks that the function's `/metrics` holds each `(sample, value)`.
async fn expect_samples(url: &str, wanted: &[(&str, f64)]) -> Result<(), String> {
    let metrics = get(&format!("{url}/metrics")).await.body;
    for &(name, value) in wanted {
        let found = sample(&metrics, name);
        if found != Some(value) {
            return Err(format!(
                "metrics give {name} = {found:?}, not {value}:\n{metrics}"
            ));
        }
    }
    Ok(())
}

async fn check(
    host: &Host,
    deployed: &Deployed,
    language: &str,
    example: &Example,
) -> Result<(), String> {
    let url = &deployed.url;
    let expect = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    // The `method` label: Kubeless's Node runtime prefixes the module's name.
    let module = example.handler.split('.').next().unwrap_or_default();
    let get_label = match language {
        "node" | "nodejs" => format!("{module}-GET"),
        _ => "GET".to_owned(),
    };
    let series = |name: &str| format!("{name}{{method=\"{get_label}\"}}");
    match example.kind {
        "get" => {
            for _ in 0..2 {
                let reply = get(&format!("{url}/")).await;
                expect(
                    reply.status == 200 && reply.body.contains("hello world"),
                    format!("GET answered {reply:?}"),
                )?;
            }
            expect_samples(
                url,
                &[
                    (&series("function_calls_total"), 2.0),
                    (&series("function_duration_seconds_count"), 2.0),
                ],
            )
            .await?;
        }
        "post" => {
            let reply: Reply = send(
                "POST",
                &format!("{url}/"),
                &super::KUBELESS_CALL_HEADERS,
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
            expect_samples(url, &[(&series("function_calls_total"), 1.0)]).await?;
        }
        _ => {
            let reply = send("GET", &format!("{url}/"), &[], "", Duration::from_secs(30)).await;
            expect(
                reply.status == 408,
                format!("the endless function answered {reply:?}"),
            )?;
            // A timeout is a call, not a failure, as in Kubeless.
            expect_samples(
                url,
                &[
                    (&series("function_calls_total"), 1.0),
                    (&series("function_failures_total"), 0.0),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// A deps file naming a package that is not there: the deploy fails with pip's output.
pub async fn failed_install(host: &Host) {
    let mut spec = FunctionSpec::new(
        "broken",
        "python3.11",
        "helloget.foo",
        Source::text("x = 1\n"),
    );
    spec.deps = Some("no-such-package-anywhere\n".into());
    let (text, dir) = failed_deploy(host, &spec).await;
    let work = dir.path().join("work");
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

/// A Cargo project that does not compile: the deploy fails with rustc's output, after the
/// installation (which succeeded and is recorded).
pub async fn failed_compile(host: &Host) {
    let mut tar = tar::Builder::new(Vec::new());
    let main = b"fn main() {\n    let port: u16 = \"not a number\";\n}\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(main.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "src/main.rs", &main[..])
        .unwrap();
    let source = Source {
        content: SourceContent::Tar(tar.into_inner().unwrap()),
        checksum: None,
    };
    let mut spec = FunctionSpec::new("broken-rust", "rust-cargo1", "hellowithdeps.main", source);
    spec.deps =
        Some(std::fs::read_to_string(examples().join("rust/hellowithdeps/Cargo.toml")).unwrap());
    let (text, dir) = failed_deploy(host, &spec).await;
    let work = dir.path().join("work");
    assert!(
        text.contains("the compilation of function `broken-rust` failed"),
        "{text}"
    );
    assert!(
        text.contains("mismatched types") && text.contains("src/main.rs"),
        "rustc's output is in the error: {text}"
    );
    assert!(
        work.join(".hoist-deps.sha256").exists(),
        "the installation before it is recorded"
    );
}

/// Deploys `spec` on processes, expecting a failed step; returns the error text and the
/// temporary directory holding the work directory `work/`.
async fn failed_deploy(host: &Host, spec: &FunctionSpec) -> (String, tempfile::TempDir) {
    let catalog = catalog(host, host_paths());
    let dir = tempfile::tempdir().unwrap();
    write_packages(&dir.path().join("pkgs"));
    let work = dir.path().join("work");
    let plan = BuildPlan::new(spec, &catalog).unwrap();
    let target = Target::process(&work);
    let rendering = plan.render(&target, free_port()).unwrap();
    let owner = Owner {
        executor_id: ExecutorId::new("hoist-runtimes-tests"),
        task_id: TaskId::new(format!("{}-{}", spec.name, std::process::id())),
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
    let left = host
        .backend
        .list_owned(&owner.executor_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.owner == owner)
        .count();
    assert_eq!(
        left, 0,
        "{}: the failed step's container is removed",
        spec.name
    );
    (err.to_string(), dir)
}
