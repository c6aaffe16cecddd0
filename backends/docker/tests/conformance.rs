//! The containerizer conformance suite, against the real Docker Engine.

mod support;

use hoist_core::testing::conformance::{self, ConformanceTarget};

use support::with_docker;

macro_rules! conformance_checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                with_docker(|h| async move {
                    let target = ConformanceTarget::posix_shell(["/bin/sh"]).with_image(h.image.clone());
                    if let Err(e) = conformance::$check(h.docker.as_ref(), &target).await {
                        panic!("{e}");
                    }
                })
                .await;
            }
        )*
    };
}

conformance_checks!(
    lifecycle,
    stop_and_remove_are_idempotent,
    wait_after_exit_and_concurrent_waits,
    exit_codes,
    term_is_honoured,
    kill_after_grace,
    exec,
    logs,
    list_owned,
    unknown_ids_are_not_found,
    stats_report_usage,
    signals_reach_the_process,
    interactive_sessions,
);
