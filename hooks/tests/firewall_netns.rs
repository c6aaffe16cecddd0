//! The real `iptables`, inside network namespaces these tests create and delete.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hoist_core::testing::{FakeContainerizer, Script};
use hoist_core::{ContainerSpec, ErrorKind, Executor, PortMapping, TaskSpec, TaskState};
use hoist_hooks::firewall::{
    Family, Firewall, FirewallExt, IptablesFirewall, Position, Rule, Table,
};
use hoist_hooks::{AclHook, IptablesHook};
use serde_json::json;
use support::Netns;

fn firewall(ns: &Netns) -> IptablesFirewall {
    IptablesFirewall::new().in_netns(&ns.name)
}

fn accept(family: Family, chain: &str, source: &str) -> Rule {
    Rule::new(
        family,
        Table::Filter,
        chain,
        [
            "-s", source, "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "ACCEPT",
        ],
    )
}

#[tokio::test]
async fn apply_is_idempotent_and_remove_takes_away_exactly_what_was_added() {
    let ns = Netns::new("hfw");
    ns.ok(&["iptables", "-w", "-N", "HOIST-T"]);
    ns.ok(&["ip6tables", "-w", "-N", "HOIST-T"]);
    // A rule someone else added before: apply must find it and remove must leave it.
    ns.ok(&[
        "iptables",
        "-w",
        "-A",
        "HOIST-T",
        "-s",
        "10.0.0.1/32",
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        "8080",
        "-j",
        "ACCEPT",
    ]);

    let fw = firewall(&ns);
    let set = vec![
        accept(Family::Ipv4, "HOIST-T", "10.0.0.1/32"),
        accept(Family::Ipv4, "HOIST-T", "10.0.0.0/8"),
        accept(Family::Ipv6, "HOIST-T", "fd00::/64"),
        Rule::new(
            Family::Ipv4,
            Table::Nat,
            "PREROUTING",
            [
                "!",
                "-i",
                "br0",
                "-p",
                "tcp",
                "-m",
                "tcp",
                "--dport",
                "31000",
                "-j",
                "DNAT",
                "--to-destination",
                "172.30.0.2:80",
            ],
        ),
    ];
    let added = fw.apply(&set).await.unwrap();
    assert_eq!(added, set[1..]);
    let v4 = ns.rules("iptables", "filter", "HOIST-T");
    assert_eq!(
        v4,
        [
            "-A HOIST-T -s 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j ACCEPT",
            "-A HOIST-T -s 10.0.0.0/8 -p tcp -m tcp --dport 8080 -j ACCEPT",
        ]
    );
    assert_eq!(
        ns.rules("ip6tables", "filter", "HOIST-T"),
        ["-A HOIST-T -s fd00::/64 -p tcp -m tcp --dport 8080 -j ACCEPT"]
    );
    assert_eq!(ns.rules("iptables", "nat", "PREROUTING").len(), 1);

    // A second apply adds nothing and duplicates nothing.
    assert!(fw.apply(&set).await.unwrap().is_empty());
    assert_eq!(ns.rules("iptables", "filter", "HOIST-T").len(), 2);
    assert_eq!(ns.rules("ip6tables", "filter", "HOIST-T").len(), 1);
    assert_eq!(ns.rules("iptables", "nat", "PREROUTING").len(), 1);

    fw.remove(&added).await.unwrap();
    assert_eq!(
        ns.rules("iptables", "filter", "HOIST-T"),
        ["-A HOIST-T -s 10.0.0.1/32 -p tcp -m tcp --dport 8080 -j ACCEPT"]
    );
    assert!(ns.rules("ip6tables", "filter", "HOIST-T").is_empty());
    assert!(ns.rules("iptables", "nat", "PREROUTING").is_empty());
    // Removing again is not an error.
    fw.remove(&added).await.unwrap();
}

#[tokio::test]
async fn primitives_report_chains_rules_and_failures() {
    let ns = Netns::new("hfw");
    ns.ok(&["iptables", "-w", "-N", "HOIST-T"]);
    ns.ok(&["iptables", "-w", "-A", "HOIST-T", "-j", "RETURN"]);
    let fw = firewall(&ns);
    assert!(
        fw.chain_exists(Family::Ipv4, Table::Filter, "HOIST-T")
            .unwrap()
    );
    assert!(
        fw.chain_exists(Family::Ipv4, Table::Filter, "INPUT")
            .unwrap()
    );
    assert!(
        !fw.chain_exists(Family::Ipv4, Table::Filter, "MISSING")
            .unwrap()
    );
    assert!(
        !fw.chain_exists(Family::Ipv6, Table::Filter, "HOIST-T")
            .unwrap()
    );

    // Top rules go before what is there, in the set's order.
    let top = [
        accept(Family::Ipv4, "HOIST-T", "10.1.0.0/16").at(Position::Top),
        accept(Family::Ipv4, "HOIST-T", "10.2.0.0/16").at(Position::Top),
    ];
    let added = fw.apply(&top).await.unwrap();
    let rules = ns.rules("iptables", "filter", "HOIST-T");
    assert!(
        rules[0].contains("10.1.0.0/16")
            && rules[1].contains("10.2.0.0/16")
            && rules[2].contains("RETURN"),
        "{rules:?}"
    );
    fw.remove(&added).await.unwrap();
    assert!(!fw.delete(&top[0]).await.unwrap());

    // A rule iptables rejects fails with its message; the rules added before it are rolled back.
    let bad = Rule::new(
        Family::Ipv4,
        Table::Filter,
        "HOIST-T",
        ["-p", "tcp", "-j", "NO-SUCH-TARGET"],
    );
    let err = fw
        .apply(&[accept(Family::Ipv4, "HOIST-T", "10.3.0.0/16"), bad])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NO-SUCH-TARGET"), "{err}");
    assert_eq!(
        ns.rules("iptables", "filter", "HOIST-T"),
        ["-A HOIST-T -j RETURN"]
    );
    // A chain that does not exist.
    let err = fw
        .apply(&[accept(Family::Ipv4, "MISSING", "10.3.0.0/16")])
        .await
        .unwrap_err();
    assert_ne!(
        err.kind(),
        ErrorKind::NotFound,
        "a missing chain is an error, not an absent rule"
    );
}

#[tokio::test]
async fn acl_hook_writes_and_clears_a_real_chain() {
    let ns = Netns::new("hacl");
    let fw: Arc<dyn Firewall> = Arc::new(firewall(&ns));
    let section = json!({ "chain": "HOIST-ACL", "default_allowed_cidr": ["192.0.2.0/24"] });

    // The chain must exist when the executor is built.
    let fake = Arc::new(FakeContainerizer::new());
    let hook = hoist_hooks::from_config_with("acl", &section, fw.clone()).unwrap();
    let err = Executor::builder(fake.clone())
        .hook(hook)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("acl.chain") && err.to_string().contains("HOIST-ACL"),
        "{err}"
    );

    ns.ok(&["iptables", "-w", "-N", "HOIST-ACL"]);
    let hook = hoist_hooks::from_config_with("acl", &section, fw.clone()).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();
    let mut container = ContainerSpec::command(["server"]);
    container.ports = vec![PortMapping::tcp(8080, Some(31080))];
    let mut task = TaskSpec::new("web.1", container);
    task.labels.insert(
        hoist_hooks::acl_label(0),
        "198.51.100.7,203.0.113.0/24".into(),
    );
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;

    let rules = ns.rules("iptables", "filter", "HOIST-ACL");
    assert_eq!(rules.len(), 4, "{rules:?}");
    for (rule, source) in rules
        .iter()
        .zip(["198.51.100.7/32", "203.0.113.0/24", "192.0.2.0/24"])
    {
        assert!(
            rule.contains(&format!("-s {source}")) && rule.ends_with("-j ACCEPT"),
            "{rule}"
        );
        assert!(
            rule.contains("--ctorigdstport 31080") && rule.contains("hoist acl web.1"),
            "{rule}"
        );
    }
    assert!(
        rules[3].ends_with("-j DROP") && !rules[3].contains("-s "),
        "{}",
        rules[3]
    );

    executor.kill(&"web.1".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert!(ns.rules("iptables", "filter", "HOIST-ACL").is_empty());
}

#[tokio::test]
async fn iptables_hook_writes_and_clears_real_nat_and_filter_rules() {
    let ns = Netns::new("hipt");
    let fw: Arc<dyn Firewall> = Arc::new(firewall(&ns));
    let fake = Arc::new(FakeContainerizer::new());
    fake.default_script(Script {
        addresses: vec!["172.30.0.2".parse().unwrap()],
        ..Script::default()
    });
    let config =
        serde_json::from_value(json!({ "container_bridge_interface": "br-hoist" })).unwrap();
    let hook = IptablesHook::with_firewall(config, fw).unwrap();
    let executor = Executor::builder(fake.clone()).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();
    let mut container = ContainerSpec::command(["server"]);
    container.ports = vec![PortMapping::tcp(80, Some(31000))];
    executor.launch(TaskSpec::new("web", container)).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;

    let pre = ns.rules("iptables", "nat", "PREROUTING");
    assert_eq!(pre.len(), 1);
    assert!(
        pre[0].contains("--dport 31000")
            && pre[0].ends_with("-j DNAT --to-destination 172.30.0.2:80"),
        "{pre:?}"
    );
    assert_eq!(ns.rules("iptables", "nat", "POSTROUTING").len(), 2);
    assert_eq!(ns.rules("iptables", "filter", "FORWARD").len(), 2);

    executor.kill(&"web".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    assert!(ns.rules("iptables", "nat", "PREROUTING").is_empty());
    assert!(ns.rules("iptables", "nat", "POSTROUTING").is_empty());
    assert!(ns.rules("iptables", "filter", "FORWARD").is_empty());
}

/// Traffic for real: a server namespace reached from two client namespaces over veth pairs,
/// with the ACL chain jumped to from the server's INPUT. The allowed client gets an answer;
/// the other does not; after the kill both do (no rule is left).
#[tokio::test]
async fn acl_lets_the_allowed_source_through_and_drops_the_other() {
    let server = Netns::new("hsrv");
    let allowed = Netns::new("hca");
    let denied = Netns::new("hcb");
    support::veth(&server, "10.231.1.1/24", &allowed, "10.231.1.2/24");
    support::veth(&server, "10.231.2.1/24", &denied, "10.231.2.2/24");
    server.ok(&["iptables", "-w", "-N", "HOIST-ACL"]);
    server.ok(&["iptables", "-w", "-A", "INPUT", "-j", "HOIST-ACL"]);

    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "hello from the task\n").unwrap();
    let _httpd = support::Background::spawn(&[
        "ip",
        "netns",
        "exec",
        &server.name,
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        root.path().to_str().unwrap(),
    ]);
    let fetch = |client: &Netns, server_ip: &str| {
        let answer = client.http_get(server_ip, 8080, "/index.html");
        answer.is_some_and(|body| body.contains("hello from the task"))
    };
    // The server is up and both clients reach it before any ACL.
    let mut up = false;
    for _ in 0..50 {
        if fetch(&allowed, "10.231.1.1") {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the test server did not come up");
    assert!(fetch(&denied, "10.231.2.1"));

    let fw: Arc<dyn Firewall> = Arc::new(firewall(&server));
    let hook = AclHook::with_firewall(
        serde_json::from_value(json!({ "chain": "HOIST-ACL" })).unwrap(),
        fw,
    )
    .unwrap();
    let fake = Arc::new(FakeContainerizer::new());
    let executor = Executor::builder(fake).hook(hook).build().unwrap();
    let mut statuses = executor.statuses();
    let mut container = ContainerSpec::command(["httpd"]);
    container.ports = vec![PortMapping::tcp(8080, Some(8080))];
    let mut task = TaskSpec::new("web", container);
    task.labels
        .insert("EXECUTOR_0_ACL".into(), "10.231.1.2".into());
    executor.launch(task).unwrap();
    support::until_state(&mut statuses, TaskState::Running).await;

    let (allowed_ok, denied_ok) = (fetch(&allowed, "10.231.1.1"), fetch(&denied, "10.231.2.1"));
    executor.kill(&"web".into(), None).unwrap();
    support::until_state(&mut statuses, TaskState::Killed).await;
    let after = fetch(&denied, "10.231.2.1");
    let left = server.rules("iptables", "filter", "HOIST-ACL");

    assert!(allowed_ok, "the allowed source got no answer");
    assert!(!denied_ok, "the denied source got an answer");
    assert!(after, "the denied source is still blocked after the kill");
    assert!(left.is_empty(), "rules left after the kill: {left:?}");
}
