//! Health monitor scale: 10,000 tasks with TCP checks every second against local listeners, and
//! the CPU the monitors use, next to bare `TcpStream::connect` loops on 1 s timers as a baseline.
//!
//! ```text
//! cargo bench --bench health --features testing
//! ```
//!
//! The listeners run in a child process (this binary, re-run with `--serve`), so the CPU time
//! measured (`getrusage`, user + system) is the probing side's alone. Environment knobs:
//! `HOIST_BENCH_TASKS` (10000), `HOIST_BENCH_LISTENERS` (200), `HOIST_BENCH_SECONDS` (20).

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use hoist::ContainerId;
use hoist::health::{
    HealthCheck, HealthChecker, HealthMonitor, Probe, ProbeOutcome, ProbeTarget, TcpChecker,
    TcpProbe,
};
use hoist::testing::FakeContainerizer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Time for every task to start (they are spread over the first second) and settle.
const SETTLE: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve(
            args.get(2)
                .context("--serve needs a listener count")?
                .parse()?,
        );
    }
    let tasks: usize = knob("HOIST_BENCH_TASKS", 10_000)?;
    let listeners: usize = knob("HOIST_BENCH_LISTENERS", 200)?;
    let window = Duration::from_secs(knob("HOIST_BENCH_SECONDS", 20)?);
    let nofile = raise_nofile_limit()?;

    let mut server = Command::new(std::env::current_exe()?)
        .args(["--serve", &listeners.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the listener process")?;
    let mut ports = BufReader::new(server.stdout.take().context("no stdout")?).lines();
    let addrs: Vec<SocketAddr> = (0..listeners)
        .map(|_| -> anyhow::Result<SocketAddr> {
            let port = ports
                .next()
                .context("the listener process ended early")??
                .parse()?;
            Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
        })
        .collect::<anyhow::Result<_>>()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (bare, monitors) = runtime.block_on(async {
        let bare = measure(tasks, window, |i, counts| {
            bare_loop(addrs[i % addrs.len()], counts)
        })
        .await;
        let containerizer = Arc::new(FakeContainerizer::without_recording());
        let monitors = measure(tasks, window, |i, counts| {
            let port = addrs[i % addrs.len()].port();
            let mut check = HealthCheck::new(Probe::Tcp(TcpProbe { port }));
            check.delay = Duration::ZERO;
            check.interval = Duration::from_secs(1);
            let target = ProbeTarget {
                container_id: ContainerId::new(format!("c{i}")),
                containerizer: containerizer.clone(),
                address: Ipv4Addr::LOCALHOST.into(),
                netns: None,
            };
            let checker = Arc::new(Counting {
                inner: TcpChecker::new(port),
                counts,
            });
            let monitor = HealthMonitor::new(check, checker, target);
            async move {
                let (events, _receiver) = mpsc::channel(4);
                monitor.run(events).await;
            }
        })
        .await;
        (bare, monitors)
    });
    drop(server.stdin.take()); // the listener process exits when its stdin closes
    server.wait()?;

    println!(
        "health monitor scale: {tasks} tasks, TCP checks every 1 s, {listeners} listeners in another process, \
         {}s window, RLIMIT_NOFILE {nofile}, {} cores\n",
        window.as_secs(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "| run | probes/s | failed probes | CPU, % of one core | CPU per probe | % of one core at {tasks} probes/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, figures) in [
        ("bare `TcpStream::connect` loops on 1 s timers", &bare),
        ("`HealthMonitor` + `TcpChecker`", &monitors),
    ] {
        println!(
            "| {name} | {:.0} | {} | {:.1} % | {:.1} µs | {:.1} % |",
            figures.probes_per_second(),
            figures.failed,
            figures.cpu_percent(),
            figures.cpu_per_probe().as_secs_f64() * 1e6,
            figures.cpu_per_probe().as_secs_f64() * tasks as f64 * 100.0,
        );
    }
    println!(
        "\nratios, monitors / bare loops: CPU {:.2}, CPU per probe {:.2}",
        monitors.cpu_percent() / bare.cpu_percent(),
        monitors.cpu_per_probe().as_secs_f64() / bare.cpu_per_probe().as_secs_f64()
    );
    if bare.failed > 0 || monitors.failed > 0 {
        bail!("some probes failed: the figures do not measure healthy checks");
    }
    Ok(())
}

/// What a run measured over its window.
struct Figures {
    cpu: Duration,
    wall: Duration,
    probes: u64,
    failed: u64,
}

impl Figures {
    fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    /// CPU time per passed probe: what a probe costs even when the machine is too busy for
    /// every task to probe each second.
    fn cpu_per_probe(&self) -> Duration {
        self.cpu / u32::try_from(self.probes.max(1)).unwrap_or(u32::MAX)
    }

    fn probes_per_second(&self) -> f64 {
        self.probes as f64 / self.wall.as_secs_f64()
    }
}

/// Probes that passed and failed.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn record(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Starts `tasks` tasks made by `make`, spread over the first second, lets them settle, then
/// measures CPU time and probes over `window`; stops them all before returning.
async fn measure<F, Fut>(tasks: usize, window: Duration, make: F) -> Figures
where
    F: Fn(usize, Arc<Counts>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cancel = CancellationToken::new();
    let counts = Arc::new(Counts::default());
    let mut set = JoinSet::new();
    let start = Instant::now();
    for i in 0..tasks {
        let at = start + Duration::from_secs(1).mul_f64(i as f64 / tasks as f64);
        let task = make(i, counts.clone());
        let cancel = cancel.clone();
        set.spawn(async move {
            cancel
                .run_until_cancelled(async move {
                    tokio::time::sleep_until(at).await;
                    task.await;
                })
                .await;
        });
    }
    tokio::time::sleep(SETTLE).await;
    let (cpu0, (ok0, failed0), t0) = (cpu_time(), counts.total(), Instant::now());
    tokio::time::sleep(window).await;
    let (cpu1, (ok1, failed1), t1) = (cpu_time(), counts.total(), Instant::now());
    cancel.cancel();
    while set.join_next().await.is_some() {}
    Figures {
        cpu: cpu1 - cpu0,
        wall: t1 - t0,
        probes: ok1 - ok0,
        failed: failed1 - failed0,
    }
}

/// The baseline: connect, close, sleep 1 s, again.
async fn bare_loop(addr: SocketAddr, counts: Arc<Counts>) {
    loop {
        counts.record(TcpStream::connect(addr).await.is_ok());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A checker that counts the outcomes of the checker it wraps.
#[derive(Debug)]
struct Counting {
    inner: TcpChecker,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counts").finish_non_exhaustive()
    }
}

#[async_trait]
impl HealthChecker for Counting {
    async fn check(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        let outcome = self.inner.check(target, timeout).await;
        self.counts.record(outcome == ProbeOutcome::Healthy);
        outcome
    }
}

/// Process CPU time so far, user + system.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Raises the soft open-files limit to the hard one; returns it.
fn raise_nofile_limit() -> anyhow::Result<u64> {
    // SAFETY: getrlimit and setrlimit read and write the struct they are given.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
        Ok(limit.rlim_cur as u64)
    }
}

/// A knob from the environment, or its default.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// The listener process: `count` listeners on loopback that accept and close at once; prints
/// their ports, one a line, and exits when its stdin closes.
fn serve(count: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut stdout = std::io::stdout().lock();
        for _ in 0..count {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            writeln!(stdout, "{}", listener.local_addr()?.port())?;
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
            });
        }
        stdout.flush()?;
        drop(stdout);
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
        Ok(())
    })
}
