//! Engine overhead: 10,000 concurrent task lifecycles (launch, running, kill, killed) with five
//! hooks on the fake containerizer. Reports lifecycles per second and memory per idle task,
//! against a baseline of the same containerizer calls made directly, in the same run.
//!
//! A third measurement runs the engine with a Prometheus registry and an event subscriber, to
//! show what metrics and events cost.
//!
//! Run with: `cargo bench --bench engine --features testing`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hoist::testing::FakeContainerizer;
use hoist::{
    ContainerSpec, Containerizer, Executor, Hook, HookContext, Owner, Result, TaskSpec, TaskState,
};

/// Counts live heap bytes, so memory per task is measured exactly rather than through RSS.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TASKS: usize = 10_000;
const ROUNDS: usize = 5;

/// A hook doing what small real hooks do: read the spec and keep a little per-task state.
#[derive(Debug)]
struct Small(&'static str);

#[async_trait]
impl Hook for Small {
    fn name(&self) -> &str {
        self.0
    }
    async fn pre_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        ctx.state.insert(task.container.argv().len());
        Ok(())
    }
    async fn pre_stop(&self, ctx: &mut HookContext<'_>, _: &TaskSpec) -> Result<()> {
        ctx.state.remove::<usize>();
        Ok(())
    }
}

fn spec(i: usize) -> TaskSpec {
    TaskSpec::new(format!("task-{i}"), ContainerSpec::command(["server"]))
}

struct Round {
    lifecycles_per_sec: f64,
    bytes_per_idle_task: f64,
}

/// What a round adds to the engine.
#[derive(Clone, Copy, PartialEq)]
enum Watching {
    Nothing,
    /// A Prometheus registry.
    Metrics,
    /// A registry and an event subscriber draining every event, as a program serving
    /// `/metrics` and printing events would.
    MetricsAndEvents,
}

async fn engine_round(watching: Watching) -> Round {
    let fake = Arc::new(FakeContainerizer::without_recording());
    let mut registry = prometheus_client::registry::Registry::default();
    let mut builder = Executor::builder(fake)
        .hook(Small("a"))
        .hook(Small("b"))
        .hook(Small("c"))
        .hook(Small("d"))
        .hook(Small("e"))
        .status_capacity(4 * TASKS);
    if watching != Watching::Nothing {
        builder = builder.metrics(&mut registry);
    }
    let executor = builder.build().unwrap();
    let drain = (watching == Watching::MetricsAndEvents).then(|| {
        let mut events = executor.events();
        tokio::spawn(async move {
            let mut seen = 0u64;
            while events.recv().await.is_some() {
                seen += 1;
            }
            // What a slow subscriber skipped was sent all the same.
            seen + events.missed()
        })
    });
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|i| executor.launch(spec(i)).unwrap())
        .collect();
    for handle in &handles {
        let status = handle.wait_for(|s| s.state == TaskState::Running).await;
        assert_eq!(status.state, TaskState::Running);
    }
    // Let every supervisor settle into its idle wait before measuring.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let idle = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    for handle in &handles {
        handle.kill(None);
    }
    for handle in &handles {
        assert_eq!(handle.wait().await.state, TaskState::Killed);
    }
    let elapsed = start.elapsed() - Duration::from_millis(50);
    if let Some(drain) = drain {
        drop(executor);
        let seen = drain.await.unwrap();
        // Every task's hook phases (5 hooks × 5 phases), created and started.
        assert!(seen >= TASKS as u64 * 27, "only {seen} events were sent");
    }
    Round {
        lifecycles_per_sec: TASKS as f64 / elapsed.as_secs_f64(),
        bytes_per_idle_task: idle as f64 / TASKS as f64,
    }
}

/// The same containerizer calls, made directly: one tokio task per container creates, starts
/// and waits for it; then every container is stopped and removed. Returns lifecycles/s and heap bytes per
/// idle container (the fake's own cost, which the engine's figure includes too).
async fn baseline_round() -> (f64, f64) {
    let fake = Arc::new(FakeContainerizer::without_recording());
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waits = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let fake = fake.clone();
        let started_tx = started_tx.clone();
        waits.push(tokio::spawn(async move {
            let owner = Owner {
                executor_id: "bench".into(),
                task_id: spec(i).id,
            };
            let id = fake.create(&owner, &spec(i).container).await.unwrap();
            fake.start(&id).await.unwrap();
            started_tx.send(id.clone()).unwrap();
            fake.wait(&id).await.unwrap();
        }));
    }
    let mut ids = Vec::with_capacity(TASKS);
    while ids.len() < TASKS {
        ids.push(started_rx.recv().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let idle = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let mut stops = Vec::with_capacity(TASKS);
    for id in ids {
        let fake = fake.clone();
        stops.push(tokio::spawn(async move {
            fake.stop(&id, Duration::from_secs(3)).await.unwrap();
            fake.remove(&id, true).await.unwrap();
        }));
    }
    for h in stops.into_iter().chain(waits) {
        h.await.unwrap();
    }
    let elapsed = start.elapsed() - Duration::from_millis(50);
    (
        TASKS as f64 / elapsed.as_secs_f64(),
        idle as f64 / TASKS as f64,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Warm-up.
        engine_round(Watching::Nothing).await;
        engine_round(Watching::MetricsAndEvents).await;
        baseline_round().await;
        let mut engine = Vec::new();
        let mut metrics = Vec::new();
        let mut observed = Vec::new();
        let mut memory = Vec::new();
        let mut baseline = Vec::new();
        let mut baseline_memory = Vec::new();
        for _ in 0..ROUNDS {
            let round = engine_round(Watching::Nothing).await;
            engine.push(round.lifecycles_per_sec);
            memory.push(round.bytes_per_idle_task);
            metrics.push(engine_round(Watching::Metrics).await.lifecycles_per_sec);
            observed.push(
                engine_round(Watching::MetricsAndEvents)
                    .await
                    .lifecycles_per_sec,
            );
            let (rate, bytes) = baseline_round().await;
            baseline.push(rate);
            baseline_memory.push(bytes);
        }
        let (engine, memory, baseline) = (median(engine), median(memory), median(baseline));
        let (metrics, observed) = (median(metrics), median(observed));
        let baseline_memory = median(baseline_memory);
        println!(
            "{TASKS} concurrent lifecycles, 5 hooks, fake containerizer, median of {ROUNDS} rounds"
        );
        println!("| measure | value |");
        println!("|---|---|");
        println!("| engine lifecycles/s (launch → running → kill → killed) | {engine:.0} |");
        println!(
            "| baseline lifecycles/s (direct create, start, wait, stop, remove) | {baseline:.0} |"
        );
        println!("| engine / baseline | {:.2} |", engine / baseline);
        println!("| engine with a metrics registry, lifecycles/s | {metrics:.0} |");
        println!("| with metrics / without | {:.2} |", metrics / engine);
        println!(
            "| engine with a registry and an event subscriber, lifecycles/s | {observed:.0} |"
        );
        println!(
            "| with metrics and events / without | {:.2} |",
            observed / engine
        );
        println!(
            "| heap per idle running task, engine + fake | {:.0} bytes ({:.2} KiB) |",
            memory,
            memory / 1024.0
        );
        println!("| heap per idle container, fake alone (baseline) | {baseline_memory:.0} bytes |");
        println!(
            "| engine's own heap per idle task | {:.0} bytes ({:.2} KiB) |",
            memory - baseline_memory,
            (memory - baseline_memory) / 1024.0
        );
    });
}
