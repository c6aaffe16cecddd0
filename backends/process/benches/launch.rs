//! Process backend benchmark: launch latency (create + start until running) and full
//! lifecycles per second (create, start, wait, remove of `/bin/true`), against a direct
//! `tokio::process::Command::spawn` + wait measured in the same run.
//!
//! `cargo bench -p hoist-process --bench launch` (set `HOIST_BENCH_RUNS` for more runs).

use std::time::{Duration, Instant};

use hoist_core::{ContainerSpec, Containerizer, Owner};
use hoist_process::ProcessContainerizer;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("HOIST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let state = tempfile::tempdir().expect("a temporary state directory");
    let backend = ProcessContainerizer::new(state.path()).expect("the state directory");
    let owner = Owner {
        executor_id: "bench".into(),
        task_id: "true".into(),
    };
    let spec = ContainerSpec::command(["/bin/true"]);

    // Warm up both paths (page cache, tokio's SIGCHLD handler).
    for _ in 0..20 {
        let id = backend.create(&owner, &spec).await.unwrap();
        backend.start(&id).await.unwrap();
        backend.wait(&id).await.unwrap();
        backend.remove(&id, true).await.unwrap();
        tokio::process::Command::new("/bin/true")
            .spawn()
            .unwrap()
            .wait()
            .await
            .unwrap();
    }

    let mut hoist_launch = Vec::with_capacity(runs);
    let mut direct_launch = Vec::with_capacity(runs);
    let mut hoist_total = Duration::ZERO;
    let mut direct_total = Duration::ZERO;
    // Interleave the two so that load on the machine hits both alike.
    for _ in 0..runs {
        let started = Instant::now();
        let id = backend.create(&owner, &spec).await.unwrap();
        backend.start(&id).await.unwrap();
        hoist_launch.push(started.elapsed());
        let status = backend.wait(&id).await.unwrap();
        backend.remove(&id, true).await.unwrap();
        hoist_total += started.elapsed();
        assert!(status.success());

        let started = Instant::now();
        let mut child = tokio::process::Command::new("/bin/true").spawn().unwrap();
        direct_launch.push(started.elapsed());
        let status = child.wait().await.unwrap();
        direct_total += started.elapsed();
        assert!(status.success());
    }
    hoist_launch.sort();
    direct_launch.sort();

    let per_sec = |total: Duration| runs as f64 / total.as_secs_f64();
    println!("runs: {runs}");
    println!("| measure | hoist-process | direct spawn | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, p) in [("launch p50 (µs)", 0.5), ("launch p95 (µs)", 0.95)] {
        let (h, d) = (
            micros(percentile(&hoist_launch, p)),
            micros(percentile(&direct_launch, p)),
        );
        println!("| {name} | {h:.0} | {d:.0} | {:.2}× |", h / d);
    }
    let (h, d) = (per_sec(hoist_total), per_sec(direct_total));
    println!(
        "| lifecycles/s (sequential) | {h:.0} | {d:.0} | {:.2}× |",
        h / d
    );
}
