//! Benchmarks of the Mesos protocol: RecordIO decode throughput against a plain newline scan
//! and a bare JSON parse of the same bytes, and status updates acknowledged end to end through
//! the agent simulator against the engine alone.
//!
//! Run with `cargo bench -p hoist-mesos --features testing --bench protocol`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hoist_core::testing::{FakeContainerizer, Script};
use hoist_core::{ContainerSpec, Executor, TaskSpec};
use hoist_mesos::recordio::{RecordDecoder, encode_into};
use hoist_mesos::testing::{AgentSimulator, SimulatorOptions};
use hoist_mesos::wire::{CommandInfo, Event, Resource, TaskInfo, TaskInfoFields};
use hoist_mesos::{Exit, MesosDriver};

fn events() -> Vec<Vec<u8>> {
    (0..4096)
        .map(|i| {
            let event = if i % 4 == 0 {
                let mut info = TaskInfoFields::new(&format!("task-{i}"), "agent-1");
                info.command = Some(CommandInfo::shell("exec /bin/server --port 8080"));
                info.resources = vec![
                    Resource::scalar("cpus", 0.5),
                    Resource::scalar("mem", 128.0),
                ];
                Event::launch(TaskInfo::from_fields(&info))
            } else {
                Event::acknowledged(
                    hoist_mesos::wire::TaskId::new(format!("task-{i}")),
                    vec![i as u8; 16],
                )
            };
            serde_json::to_vec(&event).unwrap()
        })
        .collect()
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

fn time<F: FnMut() -> usize>(rounds: usize, mut f: F) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed());
    }
    best
}

fn decode_bench() {
    let payloads = events();
    let mut wire = BytesMut::new();
    for p in &payloads {
        encode_into(p, &mut wire);
    }
    let wire = wire.freeze();
    let total = wire.len();
    println!(
        "RecordIO decode: {} records, {:.2} MiB, best of 5\n",
        payloads.len(),
        total as f64 / (1 << 20) as f64
    );
    println!("| what | chunk | MB/s | ratio to the newline scan |");
    println!("|---|---:|---:|---:|");
    let scan = time(5, || wire.iter().filter(|&&b| b == b'\n').count());
    let scan_rate = mb_per_s(total, scan);
    println!("| baseline: count newlines (byte scan) | whole | {scan_rate:.0} | 1.00 |");
    for chunk in [16_384, 1_400, 64] {
        let took = time(5, || {
            let mut d = RecordDecoder::default();
            let mut n = 0;
            for piece in wire.chunks(chunk) {
                d.push(piece);
                while let Some(r) = d.next_record().unwrap() {
                    n += r.len();
                }
            }
            n
        });
        let rate = mb_per_s(total, took);
        println!(
            "| RecordDecoder, records only | {chunk} B | {rate:.0} | {:.2} |",
            rate / scan_rate
        );
    }
    let json = time(5, || {
        payloads
            .iter()
            .map(|p| {
                serde_json::from_slice::<serde_json::Value>(p)
                    .unwrap()
                    .is_object() as usize
            })
            .sum()
    });
    let json_rate = mb_per_s(total, json);
    let typed = time(5, || {
        payloads
            .iter()
            .map(|p| Event::from_slice(p).unwrap().launch.is_some() as usize)
            .sum()
    });
    let typed_rate = mb_per_s(total, typed);
    let full = time(5, || {
        let mut d = RecordDecoder::default();
        let mut n = 0;
        for piece in wire.chunks(1_400) {
            d.push(piece);
            while let Some(r) = d.next_record().unwrap() {
                n += Event::from_slice(&r).unwrap().launch.is_some() as usize;
            }
        }
        n
    });
    let full_rate = mb_per_s(total, full);
    println!(
        "| baseline: serde_json to `Value`, pre-split | - | {json_rate:.0} | {:.2} |",
        json_rate / scan_rate
    );
    println!(
        "| typed `Event` parse, pre-split | - | {typed_rate:.0} | {:.2} |",
        typed_rate / scan_rate
    );
    println!(
        "| RecordDecoder + typed `Event` | 1400 B | {full_rate:.0} | {:.2} |",
        full_rate / scan_rate
    );
    println!(
        "\nFraming adds {:.1}% to a typed parse of the same records.\n",
        (typed.as_secs_f64() / full.as_secs_f64()).recip() * 100.0 - 100.0
    );
}

async fn engine_only(tasks: usize) -> Duration {
    let fake = FakeContainerizer::without_recording();
    fake.default_script(Script::exits(0, Duration::ZERO));
    let executor = Executor::builder(Arc::new(fake)).build().unwrap();
    let mut statuses = executor.statuses();
    let start = Instant::now();
    for i in 0..tasks {
        executor
            .launch(TaskSpec::new(
                format!("t{i}"),
                ContainerSpec::command(["x"]),
            ))
            .unwrap();
    }
    let mut terminal = 0;
    while terminal < tasks {
        if statuses.recv().await.unwrap().state.is_terminal() {
            terminal += 1;
        }
    }
    start.elapsed()
}

async fn through_the_simulator(tasks: usize) -> Duration {
    let sim = SimulatorOptions {
        max_chunk: 16_384,
        ..SimulatorOptions::default()
    };
    let agent = AgentSimulator::start(sim).await.unwrap();
    let fake = FakeContainerizer::without_recording();
    fake.default_script(Script::exits(0, Duration::ZERO));
    let executor = Executor::builder(Arc::new(fake)).build().unwrap();
    let statuses = executor.statuses();
    let run = tokio::spawn(MesosDriver::new(agent.env(), executor, statuses).run());
    agent
        .wait_for("subscribed", Duration::from_secs(10), |s| s.connected)
        .await
        .unwrap();
    let infos: Vec<_> = (0..tasks)
        .map(|i| {
            let mut info = TaskInfoFields::new(&format!("t{i}"), "agent-1");
            info.command = Some(CommandInfo::shell("x"));
            TaskInfo::from_fields(&info)
        })
        .collect();
    let start = Instant::now();
    for info in infos {
        agent.launch(info);
    }
    // STARTING, RUNNING and FINISHED of every task, each acknowledged.
    while agent.counts().1 < 3 * tasks {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    agent.shutdown();
    // The driver exits once the agent acknowledged every update it holds.
    assert_eq!(run.await.unwrap().unwrap(), Exit::Shutdown);
    let took = start.elapsed();
    assert_eq!(agent.counts().0, 3 * tasks, "no update was resent");
    took
}

fn updates_bench() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tasks = 2_000;
    let updates = 3 * tasks;
    println!(
        "Status updates ({tasks} tasks, 3 updates each: STARTING, RUNNING, FINISHED), best of 3\n"
    );
    println!("| path | updates/s | ratio |");
    println!("|---|---:|---:|");
    let engine = (0..3)
        .map(|_| rt.block_on(engine_only(tasks)))
        .min()
        .unwrap();
    let engine_rate = updates as f64 / engine.as_secs_f64();
    println!("| baseline: engine status stream only | {engine_rate:.0} | 1.00 |");
    let mesos = (0..3)
        .map(|_| rt.block_on(through_the_simulator(tasks)))
        .min()
        .unwrap();
    let mesos_rate = updates as f64 / mesos.as_secs_f64();
    println!(
        "| LAUNCH over RecordIO, UPDATE over HTTP, ACKNOWLEDGED back | {mesos_rate:.0} | {:.2} |",
        mesos_rate / engine_rate
    );
}

fn main() {
    decode_bench();
    updates_bench();
}
