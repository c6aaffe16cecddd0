//! Launch latency and throughput on the real Docker Engine: hoist's executor against two
//! baselines measured in the same run, the `docker run -d` CLI and raw Engine API create +
//! start calls on a kept-alive connection.
//!
//! Run with `cargo bench -p hoist-docker --features testing --bench launch` (needs the Engine
//! and Debian's busybox-static). `HOIST_BENCH_CONTAINERS` and `HOIST_BENCH_CONCURRENCY` change
//! the defaults of 50 containers and 10 at a time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hoist_core::layer::LayeredContainerizer;
use hoist_core::{
    ContainerId, ContainerSpec, Containerizer, Executor, ExecutorId, Owner, Result, TaskSpec,
    TaskState,
};
use hoist_docker::testing::{DEBIAN_STATIC_BUSYBOX, build_busybox_image, remove_image};
use hoist_docker::{DockerConfig, DockerContainerizer, create_body};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() {
    let count: usize = env_or("HOIST_BENCH_CONTAINERS", 50);
    let concurrency: usize = env_or("HOIST_BENCH_CONCURRENCY", 10);
    let docker = Arc::new(
        DockerContainerizer::connect(DockerConfig::from_env())
            .await
            .expect("the Docker Engine"),
    );
    let socket = docker
        .config()
        .host_address()
        .strip_prefix("unix://")
        .expect("a unix socket Engine")
        .to_owned();
    let run = format!("hoist-bench-{}", std::process::id());
    let image = format!("hoist-bench-busybox:{}", std::process::id());
    build_busybox_image(
        docker.client(),
        DEBIAN_STATIC_BUSYBOX.as_ref(),
        &image,
        &[],
        Duration::from_secs(120),
    )
    .await
    .expect("building the bench image");
    let bench = Bench {
        docker: docker.clone(),
        socket,
        image: image.clone(),
        run,
        api: docker.api_version().to_owned(),
    };

    println!(
        "Docker Engine API {}, {count} containers, concurrency {concurrency}",
        bench.api
    );
    bench.warm_up().await;
    let mut rows = Vec::new();
    for (mode, width) in [("sequential", 1), ("concurrent", concurrency)] {
        // The three paths take turns, in rounds, so that drift in the machine's load (it is
        // shared) falls on all of them alike.
        let rounds = if width == 1 { 5 } else { 2 };
        let per_round = count.div_ceil(rounds);
        let (mut raw, mut cli, mut hoist) = (
            Measured::default(),
            Measured::default(),
            Measured::default(),
        );
        let mut split = Split::default();
        for round in 0..rounds {
            for turn in 0..3 {
                match (round + turn) % 3 {
                    0 => raw.add(bench.raw(per_round, width).await),
                    1 => cli.add(bench.cli(per_round, width).await),
                    _ => {
                        let (measured, s) = bench.hoist(per_round, width).await;
                        split.add(&s, rounds);
                        hoist.add(measured);
                    }
                }
            }
        }
        rows.push((mode, width, raw, cli, hoist, split));
    }
    remove_image(docker.client(), &image)
        .await
        .expect("removing the bench image");

    println!();
    println!(
        "| mode | baseline or path | mean latency (ms) | p50 (ms) | p95 (ms) | throughput (containers/s) | vs raw API |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (mode, width, raw, cli, hoist, _) in &rows {
        let label = if *width == 1 {
            mode.to_string()
        } else {
            format!("{mode} ({width} at a time)")
        };
        for (name, m) in [
            ("raw Engine API create + start", raw),
            ("`docker run -d`", cli),
            ("hoist executor (launch to running)", hoist),
        ] {
            let ratio = if *width == 1 {
                m.mean_ms() / raw.mean_ms()
            } else {
                raw.throughput() / m.throughput()
            };
            println!(
                "| {label} | {name} | {:.1} | {:.1} | {:.1} | {:.2} | {ratio:.3}× |",
                m.mean_ms(),
                m.percentile_ms(50),
                m.percentile_ms(95),
                m.throughput()
            );
        }
    }
    println!();
    println!("Where hoist's launch time goes (mean per container, ms):");
    println!();
    println!("| mode | create | start | start returned → running status | total |");
    println!("|---|---:|---:|---:|---:|");
    for (mode, _, _, _, hoist, split) in &rows {
        println!(
            "| {mode} | {:.1} | {:.1} | {:.3} | {:.1} |",
            split.create_ms,
            split.start_ms,
            split.first_status_ms,
            hoist.mean_ms()
        );
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    docker: Arc<DockerContainerizer>,
    socket: String,
    image: String,
    run: String,
    api: String,
}

/// Latencies of one mode and its wall time.
#[derive(Default)]
struct Measured {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Measured {
    fn add(&mut self, other: Measured) {
        self.latencies.extend(other.latencies);
        self.wall += other.wall;
    }

    fn mean_ms(&self) -> f64 {
        self.latencies
            .iter()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            * 1000.0
            / self.latencies.len() as f64
    }
    fn percentile_ms(&self, p: usize) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    }
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

#[derive(Default)]
struct Split {
    create_ms: f64,
    start_ms: f64,
    first_status_ms: f64,
}

impl Split {
    /// Adds one of `rounds` equal rounds' means.
    fn add(&mut self, other: &Split, rounds: usize) {
        let n = rounds as f64;
        self.create_ms += other.create_ms / n;
        self.start_ms += other.start_ms / n;
        self.first_status_ms += other.first_status_ms / n;
    }
}

impl Bench {
    fn spec(&self) -> ContainerSpec {
        let mut spec = ContainerSpec::command(["/bin/sleep", "3600"]);
        spec.image = Some(self.image.clone());
        spec
    }

    fn owner(&self, mode: &str, i: usize) -> Owner {
        Owner {
            executor_id: ExecutorId::new(format!("{}-{mode}", self.run)),
            task_id: format!("t{i}").into(),
        }
    }

    /// Runs `one` for every container, `width` at a time; returns each one's latency.
    async fn drive<F, Fut>(&self, count: usize, width: usize, one: F) -> Measured
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Duration> + Send + 'static,
    {
        let gate = Arc::new(Semaphore::new(width));
        let started = Instant::now();
        let mut handles = Vec::with_capacity(count);
        for i in 0..count {
            let permit = gate.clone().acquire_owned().await.unwrap();
            let fut = one(i);
            handles.push(tokio::spawn(async move {
                let took = fut.await;
                drop(permit);
                took
            }));
        }
        let mut latencies = Vec::with_capacity(count);
        for handle in handles {
            latencies.push(handle.await.unwrap());
        }
        Measured {
            latencies,
            wall: started.elapsed(),
        }
    }

    async fn warm_up(&self) {
        let _ = self.raw(5, 1).await;
    }

    async fn raw(&self, count: usize, width: usize) -> Measured {
        let mode = format!("raw{width}");
        let pool: Arc<Mutex<Vec<RawConnection>>> = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..width {
            let conn = RawConnection::open(&self.socket, &self.api).await;
            pool.lock().unwrap().push(conn);
        }
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                serde_json::to_vec(
                    &create_body(&self.owner(&mode, i), &self.spec(), self.docker.config())
                        .unwrap(),
                )
                .unwrap()
            })
            .collect();
        let bodies = Arc::new(bodies);
        let measured = self
            .drive(count, width, |i| {
                let (pool, bodies) = (pool.clone(), bodies.clone());
                async move {
                    let mut conn = pool.lock().unwrap().pop().expect("a free connection");
                    let started = Instant::now();
                    let (status, body) = conn
                        .request("POST", "/containers/create", Some(&bodies[i]))
                        .await;
                    assert_eq!(status, 201, "create: {}", String::from_utf8_lossy(&body));
                    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let id = created["Id"].as_str().unwrap().to_owned();
                    let (status, body) = conn
                        .request("POST", &format!("/containers/{id}/start"), None)
                        .await;
                    assert_eq!(status, 204, "start: {}", String::from_utf8_lossy(&body));
                    let took = started.elapsed();
                    pool.lock().unwrap().push(conn);
                    took
                }
            })
            .await;
        self.clean(&mode).await;
        measured
    }

    async fn cli(&self, count: usize, width: usize) -> Measured {
        let mode = format!("cli{width}");
        let image = self.image.clone();
        let executor = self.owner(&mode, 0).executor_id;
        let measured = self
            .drive(count, width, |i| {
                let (image, executor) = (image.clone(), executor.clone());
                async move {
                    let started = Instant::now();
                    let output = tokio::process::Command::new("docker")
                        .args(["run", "-d", "--init", "--label"])
                        .arg(format!("io.hoist.executor-id={executor}"))
                        .arg("--label")
                        .arg(format!("io.hoist.task-id=t{i}"))
                        .args(["--entrypoint", "/bin/sleep", &image, "3600"])
                        .output()
                        .await
                        .expect("the docker CLI runs");
                    assert!(
                        output.status.success(),
                        "docker run: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    started.elapsed()
                }
            })
            .await;
        self.clean(&mode).await;
        measured
    }

    async fn hoist(&self, count: usize, width: usize) -> (Measured, Split) {
        let mode = format!("hoist{width}");
        let timed = Arc::new(Timed::new(self.docker.clone()));
        let executor_id = self.owner(&mode, 0).executor_id;
        let executor = Executor::builder(timed.clone())
            .executor_id(executor_id)
            .build()
            .unwrap();
        let mut statuses = executor.statuses();
        let launched: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count]));
        let running: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count]));
        let (done_tx, _) = tokio::sync::broadcast::channel::<usize>(count * 2);
        let listener = {
            let (running, done_tx) = (running.clone(), done_tx.clone());
            tokio::spawn(async move {
                while let Some(status) = statuses.recv().await {
                    if status.state == TaskState::Running {
                        let i: usize = status.task_id.as_str()[1..].parse().unwrap();
                        running.lock().unwrap()[i] = Some(Instant::now());
                        let _ = done_tx.send(i);
                    } else if status.state.is_terminal()
                        && status.reason != Some(hoist_core::Reason::ExecutorShutdown)
                    {
                        panic!("a benchmark task ended: {status:?}");
                    }
                }
            })
        };
        let spec = self.spec();
        let measured = self
            .drive(count, width, |i| {
                let (executor, spec, launched, running) = (
                    executor.clone(),
                    spec.clone(),
                    launched.clone(),
                    running.clone(),
                );
                let mut done = done_tx.subscribe();
                async move {
                    let started = Instant::now();
                    launched.lock().unwrap()[i] = Some(started);
                    executor
                        .launch(TaskSpec::new(format!("t{i}"), spec))
                        .unwrap();
                    while running.lock().unwrap()[i].is_none() {
                        let _ = tokio::time::timeout(Duration::from_secs(30), done.recv())
                            .await
                            .expect("running in time");
                    }
                    running.lock().unwrap()[i].unwrap() - started
                }
            })
            .await;
        let split = timed.split(&measured);
        executor.shutdown(Some(Duration::ZERO)).await;
        drop(executor);
        listener.abort();
        self.clean(&mode).await;
        (measured, split)
    }

    /// Removes every container of `mode` (not timed).
    async fn clean(&self, mode: &str) {
        let executor = ExecutorId::new(format!("{}-{mode}", self.run));
        let owned = self.docker.list_owned(&executor).await.unwrap();
        let gate = Arc::new(Semaphore::new(8));
        let mut handles = Vec::new();
        for container in owned {
            let (docker, gate) = (self.docker.clone(), gate.clone());
            handles.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                docker.remove(&container.id, true).await.unwrap();
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    }
}

/// One HTTP/1.1 connection to the Engine's socket, kept alive across requests.
struct RawConnection {
    stream: BufReader<UnixStream>,
    prefix: String,
}

impl RawConnection {
    async fn open(socket: &str, api: &str) -> Self {
        let stream = UnixStream::connect(socket)
            .await
            .expect("the Engine socket");
        RawConnection {
            stream: BufReader::new(stream),
            prefix: format!("/v{api}"),
        }
    }

    async fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.prefix,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await.unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..size]);
            }
        } else {
            out.resize(length, 0);
            self.stream.read_exact(&mut out).await.unwrap();
        }
        (status, out)
    }
}

/// Forwards to the Docker containerizer, timing create and start.
#[derive(Debug)]
struct Timed {
    inner: Arc<DockerContainerizer>,
    creates: Mutex<Vec<Duration>>,
    starts: Mutex<Vec<(Duration, Instant)>>,
}

impl Timed {
    fn new(inner: Arc<DockerContainerizer>) -> Self {
        Timed {
            inner,
            creates: Mutex::new(Vec::new()),
            starts: Mutex::new(Vec::new()),
        }
    }

    fn split(&self, measured: &Measured) -> Split {
        let creates = self.creates.lock().unwrap();
        let starts = self.starts.lock().unwrap();
        let n = creates.len().max(1) as f64;
        let create_ms = creates.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / n;
        let start_ms = starts.iter().map(|(d, _)| d.as_secs_f64()).sum::<f64>() * 1000.0 / n;
        Split {
            create_ms,
            start_ms,
            first_status_ms: (measured.mean_ms() - create_ms - start_ms).max(0.0),
        }
    }
}

#[async_trait]
impl LayeredContainerizer for Timed {
    type Inner = DockerContainerizer;
    fn inner(&self) -> &DockerContainerizer {
        &self.inner
    }
    async fn create(&self, owner: &Owner, spec: &ContainerSpec) -> Result<ContainerId> {
        let started = Instant::now();
        let id = self.inner.create(owner, spec).await;
        self.creates.lock().unwrap().push(started.elapsed());
        id
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.start(id).await;
        self.starts
            .lock()
            .unwrap()
            .push((started.elapsed(), Instant::now()));
        result
    }
}
