//! End to end on the machine's Docker Engine: a container serving on a mapped port behind the
//! `acl` hook, reached from two client namespaces over veth pairs this test creates; the
//! `netns` link; and nothing left after the kill.
//!
//! Docker's own NAT and forwarding rules live in the host's tables. The ACL rules go into a
//! chain this test creates, jumped to from FORWARD only for traffic from the test's own veth
//! interfaces; a guard deletes the jumps, the chain, the interfaces and the namespaces.
//!
//! Without a reachable Engine the test returns early with a note, unless
//! `HOIST_REQUIRE_DOCKER=1`, when it fails.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoist_core::{
    ContainerSpec, Containerizer, ErrorKind, Executor, ExecutorId, PortMapping, PullPolicy,
    TaskSpec, TaskState,
};
use hoist_docker::DockerContainerizer;
use hoist_docker::testing::{
    DEBIAN_STATIC_BUSYBOX, build_busybox_image, engine_for_test, remove_image,
};
use hoist_hooks::{AclHook, NetnsHook, RemoveContainerHook};
use serde_json::json;
use support::Netns;

/// Two client namespaces joined to the host by veth pairs, and the ACL chain with its jumps;
/// all deleted on drop.
struct Clients {
    chain: String,
    host_ifs: Vec<String>,
    allowed: Netns,
    denied: Netns,
}

impl Clients {
    fn new() -> Clients {
        let chain = support::unique("HE2E");
        support::ok(&["iptables", "-w", "-N", &chain]);
        let mut clients = Clients {
            chain,
            host_ifs: Vec::new(),
            allowed: Netns::new("hea"),
            denied: Netns::new("heb"),
        };
        for (ns, subnet) in [(&clients.allowed, 1), (&clients.denied, 2)] {
            let host_if = support::unique("hh");
            let ns_if = support::unique("hc");
            clients.host_ifs.push(host_if.clone());
            support::ok(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns",
                &ns.name,
            ]);
            support::ok(&[
                "ip",
                "addr",
                "add",
                &format!("10.232.{subnet}.1/24"),
                "dev",
                &host_if,
            ]);
            support::ok(&["ip", "link", "set", &host_if, "up"]);
            ns.ok(&[
                "ip",
                "addr",
                "add",
                &format!("10.232.{subnet}.2/24"),
                "dev",
                &ns_if,
            ]);
            ns.ok(&["ip", "link", "set", &ns_if, "up"]);
            support::ok(&[
                "iptables",
                "-w",
                "-I",
                "FORWARD",
                "1",
                "-i",
                &host_if,
                "-j",
                &clients.chain,
            ]);
        }
        clients
    }

    /// The packets the chain's DROP rules have dropped.
    fn dropped_packets(&self) -> u64 {
        support::ok(&["iptables", "-w", "-L", &self.chain, "-n", "-v", "-x"])
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("DROP"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    fn rules(&self) -> Vec<String> {
        support::ok(&["iptables", "-w", "-S", &self.chain])
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        for host_if in &self.host_ifs {
            let _ = support::run(&[
                "iptables",
                "-w",
                "-D",
                "FORWARD",
                "-i",
                host_if,
                "-j",
                &self.chain,
            ]);
            let _ = support::run(&["ip", "link", "del", host_if]);
        }
        let _ = support::run(&["iptables", "-w", "-F", &self.chain]);
        let _ = support::run(&["iptables", "-w", "-X", &self.chain]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_and_netns_guard_a_real_container() {
    let Some(docker) = engine_for_test("the Docker end-to-end test").await else {
        return;
    };
    let docker = Arc::new(docker);
    let tag = format!("hoist-hooks-e2e:{}", std::process::id());
    build_busybox_image(
        docker.client(),
        Path::new(DEBIAN_STATIC_BUSYBOX),
        &tag,
        &[],
        Duration::from_secs(120),
    )
    .await
    .expect("building the test image");
    let outcome = std::panic::AssertUnwindSafe(scenario(docker.clone(), &tag))
        .catch_unwind()
        .await;
    // Whatever happened, remove what the executor may have left, then the image.
    let executor_id = ExecutorId::new(format!("hoist-hooks-e2e-{}", std::process::id()));
    for owned in docker.list_owned(&executor_id).await.unwrap_or_default() {
        let _ = docker.remove(&owned.id, true).await;
    }
    let _ = remove_image(docker.client(), &tag).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(docker: Arc<DockerContainerizer>, image: &str) {
    let clients = Clients::new();
    let task_id = format!("hoist-e2e-{}", std::process::id());
    let link = Path::new("/var/run/netns").join(&task_id);
    let _link_guard = RemoveOnDrop(link.clone());

    let acl =
        AclHook::new(serde_json::from_value(json!({ "chain": clients.chain })).unwrap()).unwrap();
    let executor = Executor::builder(docker.clone())
        .executor_id(ExecutorId::new(format!(
            "hoist-hooks-e2e-{}",
            std::process::id()
        )))
        .hook(acl)
        .hook(NetnsHook::new())
        .hook(RemoveContainerHook::new())
        .build()
        .unwrap();
    let mut statuses = executor.statuses();

    let mut container =
        ContainerSpec::command(["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    container.image = Some(image.to_owned());
    container.pull_policy = PullPolicy::Never;
    container.ports = vec![PortMapping::tcp(80, None)];
    let mut task = TaskSpec::new(task_id.as_str(), container);
    task.labels
        .insert("EXECUTOR_0_ACL".into(), "10.232.1.2".into());
    executor.launch(task).unwrap();
    let running = support::until_state(&mut statuses, TaskState::Running).await;
    assert_eq!(running.state, TaskState::Running, "{running}");
    let container_id = running.container_id.clone().expect("a container id");
    let info = docker.inspect(&container_id).await.unwrap();
    let host_port = info.ports[0].host_port.expect("docker chose a host port");

    // The ACL: the allowed client is answered; the denied one is dropped by the task's rule.
    let rules = clients.rules();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(
        rules[0].contains("-s 10.232.1.2/32")
            && rules[0].contains(&format!("--ctorigdstport {host_port}"))
    );
    let mut answer = None;
    for _ in 0..50 {
        answer = clients
            .allowed
            .http_get("10.232.1.1", host_port, "/index.html");
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = answer.expect("the allowed client got no answer");
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
        "{answer}"
    );
    assert_eq!(clients.dropped_packets(), 0);
    assert!(
        clients
            .denied
            .http_get("10.232.2.1", host_port, "/index.html")
            .is_none(),
        "the denied client got an answer"
    );
    assert!(
        clients.dropped_packets() > 0,
        "the denied client's packets did not hit the ACL's drop rule"
    );

    // The netns link: `ip netns exec <task id>` sees the container's interface and address.
    let address = info
        .addresses
        .first()
        .expect("the container's address")
        .to_string();
    let inside = support::ok(&["ip", "netns", "exec", &task_id, "ip", "-o", "addr", "show"]);
    assert!(inside.contains(&format!("inet {address}/")), "{inside}");
    let host = support::ok(&["ip", "-o", "addr", "show"]);
    assert!(
        !host.contains(&format!("inet {address}/")),
        "the host itself has the container's address"
    );

    // After the kill: no rule, no link, no container.
    executor.kill(&task_id.as_str().into(), None).unwrap();
    let killed = support::until_state(&mut statuses, TaskState::Killed).await;
    assert_eq!(killed.state, TaskState::Killed, "{killed}");
    assert!(
        clients.rules().is_empty(),
        "rules left: {:?}",
        clients.rules()
    );
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the netns link is still there"
    );
    let err = docker.inspect(&container_id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Removes a link a failed test would leave behind.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
