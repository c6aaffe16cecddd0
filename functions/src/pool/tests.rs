use std::sync::Arc;
use std::time::Duration;

use hoist_core::testing::{FakeContainerizer, SIGKILL, Script};
use hoist_core::{ContainerSpec, Executor, TaskSpec};

use hoist_core::scheduler::ThrottleReason;

use super::*;
use crate::config::QueueConfig;
use crate::launcher::{ExecutorLauncher, Readiness};

struct Harness {
    pool: WarmPool,
    fake: FakeContainerizer,
}

/// A pool on the fake containerizer; environments are ready once their task runs. Exits are
/// forwarded to the pool as the function executor does.
fn harness(config: PoolConfig) -> Harness {
    let fake = FakeContainerizer::new();
    let executor = Executor::builder(Arc::new(fake.clone())).build().unwrap();
    let statuses = executor.statuses();
    let specs: crate::launcher::SpecFn = Arc::new(|env: &EnvironmentId, _key: &FunctionKey| {
        Ok(TaskSpec::new(
            env.0.clone(),
            ContainerSpec::command(["runtime"]),
        ))
    });
    let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
    let (launcher, mut exits) = ExecutorLauncher::new(
        executor,
        statuses,
        Readiness::Running,
        specs,
        &tasks,
        &cancel,
    );
    let pool = WarmPool::new(
        config,
        Arc::new(launcher.with_stop_grace(Duration::from_secs(1))),
    );
    let watcher = pool.clone();
    tokio::spawn(async move {
        while let Some(exit) = exits.recv().await {
            watcher.environment_exited(&exit.environment, &exit.reason);
        }
    });
    Harness { pool, fake }
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn request(key: &str) -> PlacementRequest {
    PlacementRequest::new(key)
}

#[tokio::test(start_paused = true)]
async fn concurrent_invocations_scale_out_and_sequential_ones_reuse_one_environment() {
    let h = harness(PoolConfig::default());
    let req = request("f:1");
    let leases = futures::future::join_all((0..5).map(|_| h.pool.acquire(&req))).await;
    let leases: Vec<Lease> = leases.into_iter().map(Result::unwrap).collect();
    let mut envs: Vec<_> = leases.iter().map(|l| l.environment.clone()).collect();
    envs.sort();
    envs.dedup();
    assert_eq!(envs.len(), 5, "one environment per concurrent invocation");
    assert!(leases.iter().all(|l| l.cold_start));
    assert_eq!(h.fake.calls_to("start"), 5);
    for lease in leases {
        h.pool.release(lease, ReleaseOutcome::Reusable).await;
    }
    for _ in 0..10 {
        let lease = h.pool.acquire(&request("f:1")).await.unwrap();
        assert!(!lease.cold_start, "sequential invocations are warm");
        h.pool.release(lease, ReleaseOutcome::Reusable).await;
    }
    assert_eq!(
        h.fake.calls_to("start"),
        5,
        "no further environment was started"
    );
    assert!(
        h.pool
            .environments()
            .iter()
            .all(|e| e.state == EnvironmentState::Ready)
    );
}

#[tokio::test(start_paused = true)]
async fn versions_do_not_share_environments() {
    let h = harness(PoolConfig::default());
    let one = h.pool.acquire(&request("f:1")).await.unwrap();
    h.pool.release(one.clone(), ReleaseOutcome::Reusable).await;
    let two = h.pool.acquire(&request("f:2")).await.unwrap();
    assert!(two.cold_start);
    assert_ne!(one.environment, two.environment);
}

#[tokio::test(start_paused = true)]
async fn keepalive_reaps_only_environments_still_idle_when_the_timer_fires() {
    let h = harness(PoolConfig {
        keepalive: Duration::from_secs(600),
        ..PoolConfig::default()
    });
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    tokio::time::sleep(Duration::from_secs(500)).await;
    // Reused at 500 s: the first timer (due at 600 s) must not stop it.
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(!lease.cold_start);
    tokio::time::sleep(Duration::from_secs(200)).await;
    settle().await;
    assert_eq!(
        h.pool.environments().len(),
        1,
        "busy at 600 s, so not reaped"
    );
    assert_eq!(h.pool.environments()[0].state, EnvironmentState::Busy);
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    tokio::time::sleep(Duration::from_secs(599)).await;
    settle().await;
    assert_eq!(h.pool.environments().len(), 1, "idle for 599 s only");
    assert_eq!(h.fake.calls_to("stop"), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert!(
        h.pool.environments().is_empty(),
        "reaped after the keepalive"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(h.fake.calls_to("stop"), 1);
    assert!(
        h.fake.live_containers().is_empty(),
        "the container was removed"
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_zero_stops_an_environment_as_soon_as_it_is_idle() {
    let h = harness(PoolConfig {
        keepalive: Duration::ZERO,
        ..PoolConfig::default()
    });
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    assert!(h.pool.environments().is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(h.fake.calls_to("stop"), 1);
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(lease.cold_start);
}

#[tokio::test(start_paused = true)]
async fn a_late_environment_is_stopped_and_the_invocation_fails_with_the_reason() {
    let h = harness(PoolConfig::default());
    h.fake.default_script(Script {
        start_delay: Duration::from_secs(30),
        ..Script::default()
    });
    let started = tokio::time::Instant::now();
    let err = h.pool.acquire(&request("f:1")).await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(20),
        "the default start-up deadline"
    );
    let Rejection::Failed(err) = err else {
        panic!("expected a failure, got {err}")
    };
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.to_string()
            .contains("Timeout while starting up lambda environment"),
        "{err}"
    );
    assert!(h.pool.environments().is_empty());
    assert_eq!(h.pool.running(), 0, "the admission was given back");
    tokio::time::sleep(Duration::from_secs(40)).await;
    settle().await;
    assert!(
        h.fake.live_containers().is_empty(),
        "the late environment was torn down"
    );
}

#[tokio::test(start_paused = true)]
async fn the_global_limit_throttles_with_reason_and_retry_after() {
    let h = harness(PoolConfig {
        concurrency_limit: 2,
        ..PoolConfig::default()
    });
    let a = h.pool.acquire(&request("f:1")).await.unwrap();
    let _b = h.pool.acquire(&request("g:1")).await.unwrap();
    match h.pool.acquire(&request("f:1")).await {
        Err(Rejection::Throttled {
            reason,
            retry_after,
        }) => {
            assert_eq!(reason, ThrottleReason::ConcurrencyLimit);
            assert_eq!(retry_after, Duration::from_secs(1));
        }
        other => panic!("expected a throttle, got {other:?}"),
    }
    h.pool.release(a, ReleaseOutcome::Reusable).await;
    assert!(h.pool.acquire(&request("f:1")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn reserved_concurrency_is_checked_first_and_kept_out_of_the_unreserved_pool() {
    let h = harness(PoolConfig {
        concurrency_limit: 3,
        ..PoolConfig::default()
    });
    h.pool
        .set_limits(
            "r",
            FunctionLimits {
                reserved: Some(2),
                per_environment: 1,
            },
        )
        .unwrap();
    let err = h
        .pool
        .set_limits(
            "s",
            FunctionLimits {
                reserved: Some(2),
                per_environment: 1,
            },
        )
        .unwrap_err();
    assert_eq!(err.context_value("field"), Some("reserved_concurrency"));
    let _r1 = h.pool.acquire(&request("r:1")).await.unwrap();
    let _r2 = h.pool.acquire(&request("r:1")).await.unwrap();
    match h.pool.acquire(&request("r:1")).await {
        Err(Rejection::Throttled { reason, .. }) => {
            assert_eq!(reason, ThrottleReason::ReservedConcurrency)
        }
        other => panic!("expected a throttle, got {other:?}"),
    }
    // One unreserved slot is left (3 − 2 reserved).
    let _u = h.pool.acquire(&request("u:1")).await.unwrap();
    match h.pool.acquire(&request("u:1")).await {
        Err(Rejection::Throttled { reason, .. }) => {
            assert_eq!(reason, ThrottleReason::ConcurrencyLimit)
        }
        other => panic!("expected a throttle, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_bounded_queue_waits_for_a_slot_until_its_deadline() {
    let h = harness(PoolConfig {
        concurrency_limit: 1,
        queue: Some(QueueConfig {
            capacity: 1,
            deadline: Duration::from_secs(5),
        }),
        ..PoolConfig::default()
    });
    let first = h.pool.acquire(&request("f:1")).await.unwrap();
    let pool = h.pool.clone();
    let queued = tokio::spawn(async move { pool.acquire(&request("f:1")).await });
    settle().await;
    match h.pool.acquire(&request("f:1")).await {
        Err(Rejection::Throttled { reason, .. }) => {
            assert_eq!(reason, ThrottleReason::ConcurrencyLimit)
        }
        other => panic!("a full queue throttles, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.pool
        .release(first.clone(), ReleaseOutcome::Reusable)
        .await;
    let second = queued.await.unwrap().unwrap();
    assert_eq!(
        second.environment, first.environment,
        "the queued request got the warm one"
    );
    let started = tokio::time::Instant::now();
    match h.pool.acquire(&request("f:1")).await {
        Err(Rejection::QueueTimeout { waited }) => assert_eq!(waited, Duration::from_secs(5)),
        other => panic!("expected a queue timeout, got {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_broken_environment_is_replaced() {
    let h = harness(PoolConfig::default());
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    let broken = lease.environment.clone();
    h.pool
        .release(lease, ReleaseOutcome::Broken("timed out".into()))
        .await;
    let next = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(next.cold_start);
    assert_ne!(next.environment, broken);
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(
        h.fake.live_containers().len(),
        1,
        "the broken one was torn down: {:?}",
        h.fake.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn an_environment_killed_behind_the_pools_back_is_forgotten_and_replaced() {
    let h = harness(PoolConfig::default());
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    let env = lease.environment.clone();
    // Killed while busy: marked failed, forgotten when released.
    let container = h.fake.container_of(&env.0).unwrap();
    h.fake.kill_externally(&container, SIGKILL);
    tokio::time::sleep(Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(h.pool.environments()[0].state, EnvironmentState::Failed);
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    assert!(h.pool.environments().is_empty());
    // Killed while idle: forgotten at once.
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(lease.cold_start);
    let idle = lease.environment.clone();
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    h.fake
        .kill_externally(&h.fake.container_of(&idle.0).unwrap(), SIGKILL);
    tokio::time::sleep(Duration::from_millis(100)).await;
    settle().await;
    assert!(h.pool.environments().is_empty());
    assert!(h.pool.acquire(&request("f:1")).await.unwrap().cold_start);
}

#[tokio::test(start_paused = true)]
async fn concurrent_starts_are_capped() {
    let h = harness(PoolConfig {
        max_concurrent_starts: 2,
        ..PoolConfig::default()
    });
    h.fake.default_script(Script {
        start_delay: Duration::from_secs(1),
        ..Script::default()
    });
    let pool = h.pool.clone();
    let all = tokio::spawn(async move {
        let req = request("f:1");
        futures::future::join_all((0..4).map(|_| pool.acquire(&req))).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    settle().await;
    assert_eq!(h.fake.calls_to("start"), 2, "two starts at a time");
    let leases = all.await.unwrap();
    assert!(leases.iter().all(Result::is_ok));
    assert_eq!(h.fake.calls_to("start"), 4);
}

#[tokio::test(start_paused = true)]
async fn per_environment_concurrency_and_prewarming() {
    let h = harness(PoolConfig::default());
    h.pool
        .set_limits(
            "f",
            FunctionLimits {
                reserved: None,
                per_environment: 2,
            },
        )
        .unwrap();
    h.pool.prewarm(&FunctionKey::new("f", 1), 1).await.unwrap();
    let a = h.pool.acquire(&request("f:1")).await.unwrap();
    let b = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(
        !a.cold_start && !b.cold_start,
        "the prewarmed environment serves both"
    );
    assert_eq!(a.environment, b.environment);
    let c = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(c.cold_start, "a third needs a second environment");
    for lease in [a, b] {
        h.pool.release(lease, ReleaseOutcome::Reusable).await;
    }
    tokio::time::sleep(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(
        h.pool.environments().len(),
        2,
        "a prewarmed environment is never reaped; the busy one stays"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_everything_and_refuses_new_requests() {
    let h = harness(PoolConfig::default());
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    h.pool.shutdown().await;
    assert!(matches!(
        h.pool.acquire(&request("f:1")).await,
        Err(Rejection::Failed(_))
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    assert!(h.fake.live_containers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_keepalive_reapers_instead_of_waiting_them_out() {
    let h = harness(PoolConfig::default());
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    assert_eq!(
        h.pool.inner.tasks.len(),
        1,
        "one reaper for the idle environment"
    );
    let start = Instant::now();
    h.pool.shutdown().await;
    assert!(h.pool.inner.tasks.is_empty(), "every background task ended");
    assert!(
        start.elapsed() < h.pool.config().keepalive,
        "the reaper was cancelled, not waited out: {:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn keys_name_the_version_and_malformed_ones_are_refused() {
    let h = harness(PoolConfig::default());
    let lease = h.pool.lease(&FunctionKey::new("f", 7), None).await.unwrap();
    assert_eq!(lease.key, "f:7");
    assert_eq!(h.pool.environments()[0].key, FunctionKey::new("f", 7));
    assert!(
        lease.environment.0.starts_with("f-v7-"),
        "{}",
        lease.environment
    );
    match h.pool.acquire(&request("f")).await {
        Err(Rejection::Failed(e)) => assert_eq!(e.context_value("field"), Some("key"), "{e}"),
        other => panic!("a key without a version was placed: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_adopted_environment_is_idle_warm_reaped_by_its_keepalive_and_its_id_is_never_reused() {
    let h = harness(PoolConfig {
        keepalive: Duration::from_secs(60),
        ..PoolConfig::default()
    });
    let key: FunctionKey = "f:1".parse().unwrap();
    let adopted = EnvironmentId("f-v7-41".into());
    h.pool.adopt(&adopted, &key).unwrap();
    assert_eq!(
        h.pool.adopt(&adopted, &key).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let info = h.pool.environments();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].state, EnvironmentState::Ready);

    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(!lease.cold_start, "the adopted environment serves warm");
    assert_eq!(lease.environment, adopted);
    assert_eq!(h.fake.calls_to("start"), 0, "nothing was started");
    // A second invocation at once needs a new environment, numbered past the adopted one.
    let second = h.pool.acquire(&request("f:1")).await.unwrap();
    assert!(second.cold_start);
    assert!(
        second.environment.0.ends_with("-42"),
        "{}",
        second.environment
    );
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    h.pool.release(second, ReleaseOutcome::Reusable).await;

    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    assert!(
        h.pool.environments().is_empty(),
        "the keepalive reaps adopted environments too"
    );
}

#[tokio::test(start_paused = true)]
async fn detaching_forgets_environments_without_stopping_them() {
    let h = harness(PoolConfig::default());
    let lease = h.pool.acquire(&request("f:1")).await.unwrap();
    h.pool.release(lease, ReleaseOutcome::Reusable).await;
    let left = h.pool.detach().await;
    assert_eq!(left.len(), 1);
    settle().await;
    assert_eq!(h.fake.calls_to("stop"), 0, "nothing was stopped");
    assert!(h.pool.environments().is_empty());
    assert!(
        h.pool.acquire(&request("f:1")).await.is_err(),
        "the pool is closed"
    );
    assert!(
        h.pool
            .adopt(&EnvironmentId("f-v1-9".into()), &"f:1".parse().unwrap())
            .is_err()
    );
}
