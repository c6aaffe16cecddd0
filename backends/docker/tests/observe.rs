//! Resource usage read back from the Engine's stats: a container that fills a known amount of
//! memory and keeps one CPU busy.

mod support;

use std::time::Duration;

use futures::StreamExt;
use hoist_core::{Containerizer, Owner};
use support::with_docker;

#[tokio::test]
async fn stats_read_back_what_a_container_uses() {
    with_docker(|h| async move {
        // 48 MiB in the container's /dev/shm (a tmpfs charged to its memory cgroup), then a
        // busy loop on one core.
        let spec = h.shell(
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=48 2>/dev/null; echo filled; \
             while :; do :; done",
        );
        let owner = Owner {
            executor_id: h.executor("stats"),
            task_id: "hog".into(),
        };
        let id = h.docker.create(&owner, &spec).await.unwrap();
        h.docker.start(&id).await.unwrap();
        support::wait_for_output(&h, &id, "filled").await;
        let mut samples = h
            .docker
            .stats(&id, Duration::from_millis(900))
            .await
            .unwrap();
        let mut last = None;
        for _ in 0..3 {
            let sample = tokio::time::timeout(Duration::from_secs(10), samples.next())
                .await
                .expect("a sample within 10 s")
                .expect("the stream goes on while the container runs")
                .unwrap();
            last = Some(sample);
        }
        let usage = last.unwrap();
        let measured = usage.measured();
        for field in ["cpu.total", "cpu.percent", "memory.usage", "pids"] {
            assert!(measured.contains(&field), "{field} not measured: {usage:?}");
        }
        let memory = usage.memory.usage.unwrap();
        assert!(
            (48 << 20..=(48 + 32) << 20).contains(&memory),
            "memory usage {memory} is not 48 MiB plus a little"
        );
        let percent = usage.cpu.percent.unwrap();
        // One core busy; the machine is shared, so only a wide band is asserted.
        assert!((25.0..=110.0).contains(&percent), "cpu {percent}%");
        assert!(usage.pids.unwrap() >= 1);

        h.docker.stop(&id, Duration::from_secs(1)).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while samples.next().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "the stream ends once the container has stopped"
        );
        h.docker.remove(&id, true).await.unwrap();
    })
    .await;
}
