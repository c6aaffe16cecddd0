//! The containerizer conformance suite, run against the Kubernetes backend and the fake API
//! server (pods are scripted by their commands: `exit 3`, `trap '' TERM`, `echo ...`).

use std::time::Duration;

use hoist_core::testing::conformance::{self, ConformanceTarget};
use hoist_kube::testing::FakeApiServer;
use hoist_kube::{Backoff, KubeConfig, KubeContainerizer};

fn target() -> ConformanceTarget {
    let mut target = ConformanceTarget::posix_shell(["sh"]).with_image("busybox:1.37");
    // A pod's processes run on a node, not on this host: inspect has no host pid.
    target.reports_pid = false;
    target.timeout = Duration::from_secs(10);
    target
}

#[tokio::test]
async fn the_kube_backend_passes_the_conformance_suite() {
    let server = FakeApiServer::start().await.unwrap();
    let pods = KubeContainerizer::new(
        server.client(),
        KubeConfig {
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(100),
            },
            ..KubeConfig::default()
        },
    );
    conformance::run_all(&pods, &target()).await.unwrap();
    assert!(
        server.pods().is_empty(),
        "the suite leaves no pod behind: {:?}",
        server.pods()
    );
}
