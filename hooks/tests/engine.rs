//! The bundled hooks driven by the real engine, on the fake containerizer and the recording
//! firewall.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::testing::{FakeContainerizer, Script};
use hoist_core::{
    ContainerSpec, ErrorKind, Executor, NetworkMode, PortMapping, Protocol, TaskSpec, TaskState,
};
use hoist_hooks::firewall::{Family, Firewall, RecordingFirewall, Rule, Table};
use hoist_hooks::{
    AclConfig, AclHook, IptablesConfig, IptablesHook, NetworkHook, RemoveContainerHook,
};
use serde_json::json;

const CHAIN: &str = "HOIST-ACL";

fn web_task(id: &str) -> TaskSpec {
    let mut container = ContainerSpec::command(["/bin/httpd"]);
    container.ports = vec![
        PortMapping::tcp(80, Some(31000)),
        PortMapping::tcp(443, None),
    ];
    TaskSpec::new(id, container)
}

fn acl_config() -> AclConfig {
    serde_json::from_value(json!({ "chain": CHAIN })).unwrap()
}

fn firewall_with_chain() -> Arc<RecordingFirewall> {
    Arc::new(RecordingFirewall::new().with_chain(Family::Ipv4, Table::Filter, CHAIN))
}

#[tokio::test]
async fn remove_container_removes_after_kill_and_after_exit() {
    let fake = Arc::new(FakeContainerizer::new());
    fake.script("short", Script::exits(0, Duration::from_millis(5)));
    // The executor keeps containers (as go-mesos-executor does): only the hook removes them.
    let executor = Executor::builder(fake.clone())
        .hook(RemoveContainerHook::new())
        .keep_containers(true)
        .build()
        .unwrap();
    let mut statuses = executor.statuses();

    executor
        .launch(TaskSpec::new("long", ContainerSpec::command(["sleep"])))
        .unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    let long = fake.container_of("long").unwrap();
    assert_eq!(fake.live_containers(), [long]);
    executor.kill(&"long".into(), None).unwrap();
    assert_eq!(
        support::until_state(&mut statuses, TaskState::Killed)
            .await
            .state,
        TaskState::Killed
    );
    assert!(fake.live_containers().is_empty());
    let calls = fake.calls_for("long");
    let stop = calls.iter().position(|c| *c == "stop").unwrap();
    let remove = calls.iter().position(|c| *c == "remove").unwrap();
    assert!(stop < remove, "removed before stopping: {calls:?}");

    executor
        .launch(TaskSpec::new("short", ContainerSpec::command(["true"])))
        .unwrap();
    assert_eq!(
        support::until_state(&mut statuses, TaskState::Finished)
            .await
            .state,
        TaskState::Finished
    );
    assert!(fake.live_containers().is_empty());
}

#[tokio::test]
async fn an_executor_that_keeps_containers_keeps_them_without_remove_container() {
    // go-mesos-executor's behaviour: without the hook, a stopped container stays.
    let fake = Arc::new(FakeContainerizer::new());
    let executor = Executor::builder(fake.clone())
        .keep_containers(true)
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor
        .launch(TaskSpec::new("t", ContainerSpec::command(["sleep"])))
        .unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    executor.kill(&"t".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert_eq!(fake.live_containers().len(), 1);
}

#[tokio::test]
async fn remove_container_tolerates_a_container_removed_behind_its_back() {
    let fake = Arc::new(FakeContainerizer::new());
    let executor = Executor::builder(fake.clone())
        .hook(RemoveContainerHook::new())
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    executor
        .launch(TaskSpec::new("t", ContainerSpec::command(["sleep"])))
        .unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    let id = fake.container_of("t").unwrap();
    fake.remove_externally(&id);
    let end = support::until_state(&mut statuses, TaskState::Lost).await;
    assert!(end.state.is_terminal());
    assert!(!end.message.unwrap_or_default().contains("remove-container"));
}

#[tokio::test]
async fn network_hook_uses_the_configured_name_or_the_framework_label() {
    let fake = Arc::new(FakeContainerizer::new());
    let executor = Executor::builder(fake.clone())
        .hook(NetworkHook::new())
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let mut task = TaskSpec::new("a", ContainerSpec::command(["x"]));
    task.labels
        .insert(hoist_core::labels::FRAMEWORK_NAME.into(), "marathon".into());
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    let spec = fake.spec_of(&fake.container_of("a").unwrap()).unwrap();
    assert_eq!(spec.network, Some(NetworkMode::User("marathon".into())));

    // Neither a configured name nor the label: the launch fails, saying which label is missing.
    executor
        .launch(TaskSpec::new("b", ContainerSpec::command(["x"])))
        .unwrap();
    let failed = support::until_state(&mut statuses, TaskState::Failed).await;
    assert_eq!(failed.state, TaskState::Failed);
    let message = failed.message.unwrap();
    assert!(
        message.contains("io.hoist.framework-name") && message.contains("network"),
        "{message}"
    );
    assert!(fake.container_of("b").is_none(), "nothing may be created");

    let fake = Arc::new(FakeContainerizer::new());
    let executor = Executor::builder(fake.clone())
        .hook(NetworkHook::named("backend"))
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let mut task = TaskSpec::new("c", ContainerSpec::command(["x"]));
    task.container.network = Some(NetworkMode::Bridge);
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    let spec = fake.spec_of(&fake.container_of("c").unwrap()).unwrap();
    assert_eq!(spec.network, Some(NetworkMode::User("backend".into())));
}

#[test]
fn network_hook_rejects_a_bad_name_when_the_executor_is_built() {
    let err = Executor::builder(Arc::new(FakeContainerizer::new()))
        .hook(NetworkHook::named("two words"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("network.name"), "{err}");
}

fn acl_rules(firewall: &RecordingFirewall) -> Vec<String> {
    firewall
        .rules_in(Family::Ipv4, Table::Filter, CHAIN)
        .into_iter()
        .map(|spec| spec.join(" "))
        .collect()
}

#[tokio::test]
async fn acl_adds_rules_in_post_run_and_removes_them_in_pre_stop() {
    let fake = Arc::new(FakeContainerizer::new());
    let firewall = firewall_with_chain();
    let mut config = acl_config();
    config.external_interface = Some("eth0".into());
    config.default_allowed_cidr = vec!["172.17.0.1".into()];
    let hook = AclHook::with_firewall(config, firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();

    let mut task = web_task("web.1");
    task.labels
        .insert("EXECUTOR_0_ACL".into(), "10.0.0.0/8, 192.168.1.7".into());
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;

    let port = |p: u16| {
        format!(
            "-i eth0 -p tcp -m conntrack --ctdir ORIGINAL --ctorigdstport {p} -m comment --comment hoist acl web.1"
        )
    };
    // Port 0 (host port 31000): its label's sources, the default, then a drop. Port 1 has no
    // label: only the default source, then a drop; its host port is the one the backend chose.
    assert_eq!(
        acl_rules(&firewall),
        [
            format!("{} -s 10.0.0.0/8 -j ACCEPT", port(31000)),
            format!("{} -s 192.168.1.7/32 -j ACCEPT", port(31000)),
            format!("{} -s 172.17.0.1/32 -j ACCEPT", port(31000)),
            format!("{} -j DROP", port(31000)),
            format!("{} -s 172.17.0.1/32 -j ACCEPT", port(443)),
            format!("{} -j DROP", port(443)),
        ]
    );

    executor.kill(&"web.1".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert_eq!(firewall.rule_count(), 0);
}

#[tokio::test]
async fn a_bad_acl_label_fails_the_launch_naming_label_and_value() {
    let fake = Arc::new(FakeContainerizer::new());
    let firewall = firewall_with_chain();
    let hook = AclHook::with_firewall(acl_config(), firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();

    let cases = [
        ("EXECUTOR_0_ACL", "10.0.0.1,10.0.0.300", "10.0.0.300"),
        ("EXECUTOR_1_ACL", "10.0.0.0/33", "10.0.0.0/33"),
        ("EXECUTOR_0_ACL", "10.0.0.1,,10.0.0.2", "not an IP address"),
        ("EXECUTOR_5_ACL", "10.0.0.1", "no port mapping 5"),
        ("EXECUTOR_0_ACL", "fd00::1", "IPv6"),
    ];
    for (i, (label, value, expected)) in cases.into_iter().enumerate() {
        let id = format!("bad.{i}");
        let mut task = web_task(&id);
        task.labels.insert(label.into(), value.into());
        executor.launch(task).unwrap();
        let end = support::until_state(&mut statuses, TaskState::Failed).await;
        assert_eq!(end.state, TaskState::Failed);
        let message = end.message.unwrap();
        assert!(
            message.contains(label) && message.contains(value) && message.contains(expected),
            "{message}"
        );
        assert!(
            fake.container_of(&id).is_none(),
            "a container was created for {id}"
        );
    }
    assert_eq!(firewall.adds(), 0);
}

#[tokio::test]
async fn a_failing_rule_fails_the_launch_and_leaves_no_rule_or_container() {
    let fake = Arc::new(FakeContainerizer::new());
    let firewall = firewall_with_chain();
    firewall.fail_adds_with("DROP");
    let hook = AclHook::with_firewall(acl_config(), firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone())
        .hook(hook)
        .hook(RemoveContainerHook::new())
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    let mut task = web_task("w");
    task.labels
        .insert("EXECUTOR_0_ACL".into(), "10.1.2.3".into());
    executor.launch(task).unwrap();
    let end = support::until_state(&mut statuses, TaskState::Failed).await;
    assert_eq!(end.state, TaskState::Failed);
    assert!(end.message.unwrap().contains("acl"));
    assert!(
        firewall.adds() > 1,
        "the accept rule was added before the failing drop"
    );
    assert_eq!(firewall.rule_count(), 0);
    assert!(fake.live_containers().is_empty());
}

#[test]
fn acl_configuration_errors_name_the_key() {
    let firewall = Arc::new(RecordingFirewall::new());
    let build = |section: serde_json::Value| {
        hoist_hooks::from_config_with("acl", &section, firewall.clone()).and_then(|hook| {
            Executor::builder(Arc::new(FakeContainerizer::new()))
                .hook(hook)
                .build()
                .map(drop)
        })
    };
    for (section, key, words) in [
        (
            json!({ "chain": "FORWARD" }),
            "acl.chain",
            "FORWARD or OUTPUT",
        ),
        (
            json!({ "chain": "OUTPUT" }),
            "acl.chain",
            "FORWARD or OUTPUT",
        ),
        (json!({ "chain": "MISSING" }), "acl.chain", "does not exist"),
        (
            json!({ "chain": "INPUT", "external_interface": "not an interface" }),
            "acl.external_interface",
            "interface",
        ),
        (
            json!({ "chain": "INPUT", "default_allowed_cidr": ["10.0.0.0/8", "nope"] }),
            "acl.default_allowed_cidr[1]",
            "nope",
        ),
        (
            json!({ "chain": "INPUT", "extra_rules": [["-A", "INPUT"]] }),
            "acl.extra_rules[0]",
            "-A",
        ),
        (json!({ "chain": "INPUT", "chian": "x" }), "acl", "chian"),
        (
            json!({ "chain": "INPUT", "deny_unlisted": "yes" }),
            "acl.deny_unlisted",
            "boolean",
        ),
        (json!({}), "acl", "chain"),
    ] {
        let err = build(section.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{section}");
        let text = err.to_string();
        assert!(
            text.contains(key) && text.contains(words),
            "{section}: {text}"
        );
    }
    build(json!({ "chain": "INPUT", "external_interface": "all" })).unwrap();
}

#[tokio::test]
async fn acl_extra_rules_and_ipv6() {
    let fake = Arc::new(FakeContainerizer::new());
    let firewall = Arc::new(
        RecordingFirewall::new()
            .with_chain(Family::Ipv4, Table::Filter, CHAIN)
            .with_chain(Family::Ipv6, Table::Filter, CHAIN),
    );
    let config: AclConfig = serde_json::from_value(json!({
        "chain": CHAIN,
        "ipv6": true,
        "deny_unlisted": false,
        "extra_rules": [["-m", "limit", "--limit", "10/s", "-j", "ACCEPT"]],
    }))
    .unwrap();
    let hook = AclHook::with_firewall(config, firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();
    let mut container = ContainerSpec::command(["dns"]);
    container.ports = vec![PortMapping {
        protocol: Protocol::Udp,
        ..PortMapping::tcp(53, Some(5353))
    }];
    let mut task = TaskSpec::new("dns", container);
    task.labels
        .insert("EXECUTOR_0_ACL".into(), "fd00::/64".into());
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    let v6: Vec<String> = firewall
        .rules_in(Family::Ipv6, Table::Filter, CHAIN)
        .into_iter()
        .map(|s| s.join(" "))
        .collect();
    let v4 = acl_rules(&firewall);
    assert_eq!(v6.len(), 2, "{v6:?}");
    assert!(
        v6[0].contains("-p udp") && v6[0].ends_with("-s fd00::/64 -j ACCEPT"),
        "{v6:?}"
    );
    assert!(v6[1].ends_with("-m limit --limit 10/s -j ACCEPT"), "{v6:?}");
    assert_eq!(v4.len(), 1, "{v4:?}");
    assert!(
        v4[0].contains("--ctorigdstport 5353") && v4[0].ends_with("--limit 10/s -j ACCEPT"),
        "{v4:?}"
    );
    executor.kill(&"dns".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert_eq!(firewall.rule_count(), 0);
}

fn iptables_config() -> IptablesConfig {
    serde_json::from_value(json!({ "container_bridge_interface": "docker0" })).unwrap()
}

#[tokio::test]
async fn iptables_adds_docker_style_rules_for_the_container_address_and_removes_them() {
    let fake = Arc::new(FakeContainerizer::new());
    let bridge_ip: IpAddr = "172.17.0.5".parse().unwrap();
    fake.script(
        "web",
        Script {
            addresses: vec![bridge_ip],
            ..Script::default()
        },
    );
    let firewall = Arc::new(RecordingFirewall::new());
    let hook = IptablesHook::with_firewall(iptables_config(), firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();
    let mut task = web_task("web");
    task.container.ports.truncate(1);
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;

    let chain = |table, chain| -> Vec<String> {
        firewall
            .rules_in(Family::Ipv4, table, chain)
            .into_iter()
            .map(|s| s.join(" "))
            .collect()
    };
    let c = "-m comment --comment hoist iptables web";
    assert_eq!(
        chain(Table::Nat, "PREROUTING"),
        [format!(
            "! -i docker0 -p tcp -m tcp --dport 31000 {c} -j DNAT --to-destination 172.17.0.5:80"
        )]
    );
    assert_eq!(
        chain(Table::Nat, "POSTROUTING"),
        [
            format!("-s 172.17.0.5/32 ! -o docker0 {c} -j MASQUERADE"),
            format!("-s 172.17.0.5/32 -d 172.17.0.5/32 -p tcp -m tcp --dport 80 {c} -j MASQUERADE"),
        ]
    );
    assert_eq!(
        chain(Table::Filter, "FORWARD"),
        [
            format!(
                "-d 172.17.0.5/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 {c} -j ACCEPT"
            ),
            format!(
                "-s 172.17.0.5/32 -i docker0 ! -o docker0 -p tcp -m tcp --sport 80 {c} -j ACCEPT"
            ),
        ]
    );
    executor.kill(&"web".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert_eq!(firewall.rule_count(), 0);
}

#[tokio::test]
async fn iptables_switches_chains_and_network_modes() {
    let fake = Arc::new(FakeContainerizer::new());
    fake.default_script(Script {
        addresses: vec!["172.18.0.9".parse().unwrap()],
        ..Script::default()
    });
    let firewall = Arc::new(
        RecordingFirewall::new()
            .with_chain(Family::Ipv4, Table::Nat, "HOIST-PRE")
            .with_chain(Family::Ipv4, Table::Filter, "HOIST-FWD")
            .with_chain(Family::Ipv4, Table::Nat, "HOIST-POST"),
    );
    let config: IptablesConfig = serde_json::from_value(json!({
        "container_bridge_interface": "br-hoist",
        "ip_forwarding": false,
        "ip_masquerading": false,
        "chains": { "prerouting": "HOIST-PRE", "forward": "HOIST-FWD", "postrouting": "HOIST-POST" },
    }))
    .unwrap();
    let hook = IptablesHook::with_firewall(config, firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();
    executor.launch(web_task("bridged")).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    // Only DNAT, for both ports, the second on the host port the backend chose.
    let pre = firewall.rules_in(Family::Ipv4, Table::Nat, "HOIST-PRE");
    assert_eq!(pre.len(), 2);
    assert!(
        pre[1].join(" ").contains("--dport 443") && pre[1].join(" ").contains("172.18.0.9:443")
    );
    assert_eq!(firewall.non_empty_chains().len(), 1);

    let mut host = web_task("host");
    host.container.network = Some(NetworkMode::Host);
    executor.launch(host).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;
    assert_eq!(
        firewall.rule_count(),
        2,
        "a host-network task gets no rules"
    );
    executor.shutdown(None).await;
    assert_eq!(firewall.rule_count(), 0);
}

#[tokio::test]
async fn iptables_fails_the_launch_when_the_container_has_no_bridge_address() {
    let fake = Arc::new(FakeContainerizer::new());
    let firewall = Arc::new(RecordingFirewall::new());
    let hook = IptablesHook::with_firewall(iptables_config(), firewall.clone()).unwrap();
    let executor = Executor::builder(fake.clone())
        .hook(hook)
        .hook(RemoveContainerHook::new())
        .build()
        .unwrap();
    let mut statuses = executor.statuses();
    // The fake reports only loopback.
    executor.launch(web_task("lo")).unwrap();
    let end = support::until_state(&mut statuses, TaskState::Failed).await;
    assert_eq!(end.state, TaskState::Failed);
    assert!(end.message.unwrap().contains("docker0"));
    assert!(fake.live_containers().is_empty());
    assert_eq!(firewall.rule_count(), 0);
}

#[test]
fn iptables_configuration_errors_name_the_key() {
    let firewall = Arc::new(RecordingFirewall::new());
    let build = |section: serde_json::Value| {
        hoist_hooks::from_config_with("iptables", &section, firewall.clone()).and_then(|hook| {
            Executor::builder(Arc::new(FakeContainerizer::new()))
                .hook(hook)
                .build()
                .map(drop)
        })
    };
    for (section, key) in [
        (json!({}), "container_bridge_interface"),
        (
            json!({ "container_bridge_interface": "docker0", "chains": { "forward": "NOPE" } }),
            "iptables.chains.forward",
        ),
        (
            json!({ "container_bridge_interface": "docker0", "chains": { "prerouting": "A B" } }),
            "iptables.chains.prerouting",
        ),
        (
            json!({ "container_bridge_interface": "docker0", "ip_forwarding": 1 }),
            "iptables.ip_forwarding",
        ),
        (
            json!({ "container_bridge_interface": "docker0", "position": "middle" }),
            "iptables.position",
        ),
        (
            json!({ "container_bridge_interface": "/dev/x" }),
            "iptables.container_bridge_interface",
        ),
    ] {
        let err = build(section.clone()).unwrap_err();
        assert!(err.to_string().contains(key), "{section}: {err}");
    }
    build(json!({ "container_bridge_interface": "docker0", "position": "top" })).unwrap();
}

#[test]
fn from_config_knows_every_bundled_hook_and_rejects_others() {
    let firewall =
        Arc::new(RecordingFirewall::new().with_chain(Family::Ipv4, Table::Filter, CHAIN));
    let sections = [
        ("removeContainer", json!(null)),
        ("remove-container", json!({ "force": false })),
        ("acl", json!({ "chain": CHAIN })),
        (
            "iptables",
            json!({ "container_bridge_interface": "docker0" }),
        ),
        (
            "netns",
            json!({ "path": "/var/run/netns", "proc_path": "/proc" }),
        ),
        ("network", json!({ "label": "team" })),
    ];
    let mut builder = Executor::builder(Arc::new(FakeContainerizer::new()));
    let mut names = Vec::new();
    for (name, section) in sections.iter().skip(1) {
        let hook = hoist_hooks::from_config_with(name, section, firewall.clone()).unwrap();
        names.push(hook.name().to_owned());
        builder = builder.hook(hook);
    }
    builder.build().unwrap();
    assert_eq!(names, hoist_hooks::HOOK_NAMES);
    assert_eq!(
        hoist_hooks::from_config("removeContainer", &sections[0].1)
            .unwrap()
            .name(),
        "remove-container"
    );

    let err = hoist_hooks::from_config("firewall", &json!(null)).unwrap_err();
    assert!(
        err.to_string().contains("no bundled hook `firewall`"),
        "{err}"
    );
    let err = hoist_hooks::from_config("netns", &json!({ "proc_path": "relative" }))
        .and_then(|hook| {
            Executor::builder(Arc::new(FakeContainerizer::new()))
                .hook(hook)
                .build()
                .map(drop)
        })
        .unwrap_err();
    assert!(err.to_string().contains("netns.proc_path"), "{err}");
}

/// A firewall that forwards to another and counts the rules its deletes actually removed, so a
/// test can tell which executor removed them.
#[derive(Debug)]
struct CountingDeletes {
    inner: Arc<RecordingFirewall>,
    removed: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Firewall for CountingDeletes {
    fn chain_exists(&self, family: Family, table: Table, chain: &str) -> hoist_core::Result<bool> {
        self.inner.chain_exists(family, table, chain)
    }
    async fn contains(&self, rule: &Rule) -> hoist_core::Result<bool> {
        self.inner.contains(rule).await
    }
    async fn add(&self, rule: &Rule, at: Option<u32>) -> hoist_core::Result<()> {
        self.inner.add(rule, at).await
    }
    async fn delete(&self, rule: &Rule) -> hoist_core::Result<bool> {
        let removed = self.inner.delete(rule).await?;
        if removed {
            self.removed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(removed)
    }
}

/// A restarted executor has no hook state for the tasks it re-attaches; killing one still
/// removes the rules the earlier executor added for it.
#[tokio::test]
async fn acl_and_iptables_rules_are_removed_for_a_task_reattached_after_a_restart() {
    let fake = Arc::new(FakeContainerizer::new());
    fake.default_script(Script {
        addresses: vec!["172.17.0.7".parse().unwrap()],
        ..Script::default()
    });
    let firewall = firewall_with_chain();
    let build = |firewall: Arc<dyn Firewall>| {
        let acl = AclHook::with_firewall(acl_config(), firewall.clone()).unwrap();
        let iptables = IptablesHook::with_firewall(iptables_config(), firewall).unwrap();
        let executor = Executor::builder(fake.clone())
            .hook(acl)
            .hook(iptables)
            .build()
            .unwrap();
        let statuses = executor.statuses();
        (executor, statuses)
    };
    let mut task = web_task("web");
    task.labels
        .insert("EXECUTOR_1_ACL".into(), "10.9.0.0/16".into());

    let (first, mut first_statuses) = build(firewall.clone());
    first.launch(task.clone()).unwrap();
    support::until_state(&mut first_statuses, TaskState::Running).await;
    // acl: a drop for port 0, an accept and a drop for port 1; iptables: one masquerade, then
    // per port a DNAT, a hairpin masquerade and two forward rules.
    assert_eq!(firewall.rule_count(), 3 + 1 + 2 * 4);

    let second_firewall = Arc::new(CountingDeletes {
        inner: firewall.clone(),
        removed: 0.into(),
    });
    let (second, mut statuses) = build(second_firewall.clone());
    let report = second.recover([task]).await.unwrap();
    assert_eq!(report.reattached, ["web".into()]);
    second.kill(&"web".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    // The restarted executor's pre-stop (before the container stopped, so before the first
    // executor could see the exit) removed every rule.
    assert_eq!(
        second_firewall
            .removed
            .load(std::sync::atomic::Ordering::SeqCst),
        12
    );
    assert_eq!(
        firewall.rule_count(),
        0,
        "left: {:?}",
        firewall.non_empty_chains()
    );
}
