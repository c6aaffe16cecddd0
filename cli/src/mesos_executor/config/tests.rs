//! Tests of the configuration file.

use super::*;

fn from(name: &str, text: &str) -> Result<Loaded, String> {
    from_with(name, text, &BTreeMap::new())
}

fn from_with(
    name: &str,
    text: &str,
    overrides: &BTreeMap<&'static str, String>,
) -> Result<Loaded, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    load(&[dir.path().to_path_buf()], overrides)
}

#[test]
fn go_mesos_executor_files_in_every_format_read_alike() {
    let yaml = "Debug: false\nhooks: [removeContainer, netns]\nProc_Path: /mnt/proc\n\
                registering_retry: 100ms\nNetNS: { Path: /var/run/netns }\n\
                acl: { chain: MYCHAIN, default_allowed_cidr: [10.0.0.0/8] }\n\
                IPTables: { container_bridge_interface: docker0, ip_forwarding: false, \
                Chains: { forward: F } }\nprocess: { resources: advisory }\n";
    let json = r#"{"DEBUG": false, "hooks": ["removeContainer", "netns"], "proc_path": "/mnt/proc",
        "registering_retry": "100ms", "netns": {"path": "/var/run/netns"},
        "acl": {"Chain": "MYCHAIN", "default_allowed_cidr": ["10.0.0.0/8"]},
        "iptables": {"container_bridge_interface": "docker0", "ip_forwarding": false,
        "chains": {"FORWARD": "F"}}, "process": {"resources": "advisory"}}"#;
    let toml = "debug = false\nhooks = [\"removeContainer\", \"netns\"]\nproc_path = \"/mnt/proc\"\n\
                registering_retry = \"100ms\"\n[netns]\npath = \"/var/run/netns\"\n\
                [acl]\nchain = \"MYCHAIN\"\ndefault_allowed_cidr = [\"10.0.0.0/8\"]\n\
                [iptables]\ncontainer_bridge_interface = \"docker0\"\nip_forwarding = false\n\
                [iptables.chains]\nforward = \"F\"\n[process]\nresources = \"advisory\"\n";
    let configs: Vec<Config> = [
        ("config.yaml", yaml),
        ("config.json", json),
        ("config.toml", toml),
    ]
    .iter()
    .map(|(name, text)| {
        let loaded = from(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        loaded.config
    })
    .collect();
    let c = &configs[0];
    assert!(!c.debug);
    assert_eq!(c.proc_path, Path::new("/mnt/proc"));
    assert_eq!(c.registering_retry, Some(Duration::from_millis(100)));
    assert_eq!(c.iptables_chains[1].as_deref(), Some("F"));
    assert_eq!(c.iptables_ip_forwarding, Some(false));
    assert_eq!(c.process_resources, ResourcesChoice::Advisory);
    assert_eq!(configs[1], *c);
    assert_eq!(configs[2], *c);
}

/// The keys and values of go-mesos-executor's sample `config.yaml` (HEAD 28e5ed5).
const GO_MESOS_EXECUTOR_SAMPLE: &str = r#"debug: true
hooks:
  - removeContainer
  - netns
  - network
  - iptables
  - acl
proc_path: /mnt/proc
registering_retry: 100ms
iptables:
  chains:
    prerouting: EXECUTOR-PREROUTING
    forward: EXECUTOR-FORWARD
    postrouting: EXECUTOR-POSTROUTING
  container_bridge_interface: docker0
  ip_forwarding: true
  ip_masquerading: true
acl:
  chain: MYCHAIN
  default_allowed_cidr:
    - 172.17.0.1/32
netns:
  path: /var/run/netns
"#;

/// go-mesos-executor's sample loads without an error or a warning and builds its hooks.
#[test]
fn go_mesos_executor_sample_starts_hoist() {
    let loaded = from("config.yaml", GO_MESOS_EXECUTOR_SAMPLE).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.iptables_chains[0].as_deref(), Some("EXECUTOR-PREROUTING"));
    assert_eq!(c.acl_default_allowed_cidr, ["172.17.0.1/32"]);
    let hooks = crate::hooks::build(c).unwrap();
    assert_eq!(hooks.len(), 5);
}

#[test]
fn etc_comes_before_the_working_directory_and_json_before_yaml() {
    let etc = tempfile::tempdir().unwrap();
    let here = tempfile::tempdir().unwrap();
    std::fs::write(here.path().join("config.yaml"), "debug: true").unwrap();
    let dirs = [etc.path().to_path_buf(), here.path().to_path_buf()];
    let loaded = load(&dirs, &BTreeMap::new()).unwrap();
    assert_eq!(loaded.path, Some(here.path().join("config.yaml")));
    std::fs::write(etc.path().join("config.yaml"), "debug: false").unwrap();
    std::fs::write(
        etc.path().join("config.json"),
        r#"{"debug": true, "proc_path": "/x"}"#,
    )
    .unwrap();
    let loaded = load(&dirs, &BTreeMap::new()).unwrap();
    assert_eq!(loaded.path, Some(etc.path().join("config.json")));
    assert_eq!(loaded.config.proc_path, Path::new("/x"));
    let none = tempfile::tempdir().unwrap();
    let loaded = load(&[none.path().to_path_buf()], &BTreeMap::new()).unwrap();
    assert_eq!((loaded.path, loaded.config), (None, Config::default()));
}

#[test]
fn unknown_keys_are_one_warning_each_naming_the_key() {
    let loaded = from(
        "config.yaml",
        "debug: false\nColour: blue\niptables: { chain: x, Chains: { sideways: y } }\nextra: { a: 1, b: 2 }\n",
    )
    .unwrap();
    let w = &loaded.warnings;
    // A whole unknown section is one warning.
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(w[0].ends_with("unknown key `Colour` ignored"), "{w:?}");
    assert!(w.iter().any(|w| w.ends_with("`extra` ignored")), "{w:?}");
    assert!(
        w.iter().any(|w| w.ends_with("`iptables.chain` ignored")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.ends_with("`iptables.Chains.sideways` ignored")),
        "{w:?}"
    );
    assert!(!loaded.config.debug);
}

#[test]
fn a_bad_value_names_the_key_as_written_once() {
    for (text, key) in [
        ("Proc_Path: proc", "`Proc_Path` must be an absolute path"),
        (
            "netns: { Path: here }",
            "`netns.Path` must be an absolute path",
        ),
        ("DEBUG: maybe", "`DEBUG` must be true or false"),
        ("hooks: [teleport]", "`hooks[0]` names an unknown hook"),
        ("Hooks: [acl]", "`acl.chain` is required"),
        (
            "hooks: [acl]\nACL: { Chain: OUTPUT }",
            "`ACL.Chain` must not be OUTPUT",
        ),
        (
            "hooks: [iptables]",
            "`iptables.container_bridge_interface` is required",
        ),
        (
            "acl: { default_allowed_cidr: [10.0.0.0/99] }",
            "`acl.default_allowed_cidr[0]`",
        ),
        ("registering_retry: soon", "`registering_retry`"),
        (
            "process: { resources: sometimes }",
            "`process.resources` is `sometimes`",
        ),
        ("iptables: 3", "`iptables` must be a section"),
    ] {
        let err = from("config.yaml", text).unwrap_err();
        assert!(err.contains(key), "{text}: {err}");
        assert_eq!(err.matches(key).count(), 1, "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    let err = from("config.json", "{nope").unwrap_err();
    assert!(err.contains("config.json: not valid JSON"), "{err}");
}

#[test]
fn flags_override_the_file_and_are_named_as_flags() {
    let overrides = BTreeMap::from([
        ("debug", "false".to_owned()),
        ("hooks", "removeContainer,netns".to_owned()),
    ]);
    let loaded = from_with("config.yaml", "debug: true\nhooks: [acl]", &overrides).unwrap();
    assert!(!loaded.config.debug);
    assert_eq!(loaded.config.hooks, ["removeContainer", "netns"]);
    let overrides = BTreeMap::from([("proc_path", "proc".to_owned())]);
    let err = from_with("config.yaml", "", &overrides).unwrap_err();
    assert!(
        err.contains("`--proc_path` must be an absolute path"),
        "{err}"
    );
}

#[test]
fn the_sandbox_backend_reads_its_root_and_state_directory() {
    let loaded = from(
        "config.yaml",
        "containerizer: sandbox\nsandbox: { rootfs: /srv/rootfs, State_Dir: /var/lib/x }\n",
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.containerizer, Backend::Sandbox);
    assert_eq!(
        loaded.config.sandbox_rootfs.as_deref(),
        Some(Path::new("/srv/rootfs"))
    );
    assert_eq!(loaded.config.sandbox_state_dir, Path::new("/var/lib/x"));
    assert_eq!(
        Config::default().sandbox_state_dir,
        Path::new(DEFAULT_SANDBOX_STATE)
    );
    let err = from("config.yaml", "sandbox: { rootfs: images/root }\n").unwrap_err();
    assert!(
        err.contains("`sandbox.rootfs` must be an absolute path"),
        "{err}"
    );
    let err = from("config.yaml", "containerizer: jail\n").unwrap_err();
    assert!(err.contains("expected docker, process or sandbox"), "{err}");
}
