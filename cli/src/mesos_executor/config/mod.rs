//! go-mesos-executor's configuration file, read as viper reads it: `config.json`,
//! `config.toml`, `config.yaml` or `config.yml` (viper's extension order), in
//! `/etc/mesos-executor`, else in the working directory (`main.go`'s `AddConfigPath` order);
//! keys are case-insensitive and nest by section (`iptables.chains.forward`).
//!
//! An unknown key is one warning naming it as written, so a file that worked with
//! go-mesos-executor starts this program; a bad value is an error naming the key as written.
//! The flags of go-mesos-executor override the keys of the same name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::flags::{CONFIG_FLAGS, parse_bool};
use super::hooks::HookName;

/// Where the configuration is looked for, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("/etc/mesos-executor"), PathBuf::from(".")]
}

/// The file names tried in each folder, in order (viper's `SupportedExts` order).
const NAMES: &[&str] = &["config.json", "config.toml", "config.yaml", "config.yml"];

/// The sandbox backend's state directory by default: shared by the executors of one agent, so
/// an image's layers are unpacked once for all of them.
const DEFAULT_SANDBOX_STATE: &str = "/var/lib/hoist-mesos-executor/sandbox";

/// Where tasks run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    #[default]
    Docker,
    Process,
    Sandbox,
}

/// What the process backend does with `cpus` and `mem` (`process.resources`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum ResourcesChoice {
    /// Enforce where the cgroup tree can be written, else advisory (the default).
    #[default]
    Auto,
    Enforce,
    Advisory,
    Refuse,
}

/// The configuration, key for key.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub debug: bool,
    pub hooks: Vec<String>,
    pub proc_path: PathBuf,
    pub registering_retry: Option<Duration>,
    pub docker_exec_poll_interval: Option<Duration>,
    pub containerizer: Backend,
    pub process_resources: ResourcesChoice,
    /// The root file system of a task without an image (`sandbox.rootfs`).
    pub sandbox_rootfs: Option<PathBuf>,
    /// Where the sandbox backend keeps its containers and layers (`sandbox.state_dir`).
    pub sandbox_state_dir: PathBuf,
    pub netns_path: PathBuf,
    pub acl_chain: Option<String>,
    pub acl_external_interface: Option<String>,
    pub acl_default_allowed_cidr: Vec<String>,
    pub iptables_container_bridge_interface: Option<String>,
    pub iptables_ip_forwarding: Option<bool>,
    pub iptables_ip_masquerading: Option<bool>,
    pub iptables_chains: [Option<String>; 3],
}

impl Default for Config {
    fn default() -> Self {
        Config {
            debug: true,
            hooks: vec![],
            proc_path: PathBuf::from("/proc"),
            registering_retry: None,
            docker_exec_poll_interval: None,
            containerizer: Backend::Docker,
            process_resources: ResourcesChoice::Auto,
            sandbox_rootfs: None,
            sandbox_state_dir: PathBuf::from(DEFAULT_SANDBOX_STATE),
            netns_path: PathBuf::from("/var/run/netns"),
            acl_chain: None,
            acl_external_interface: None,
            acl_default_allowed_cidr: vec![],
            iptables_container_bridge_interface: None,
            iptables_ip_forwarding: None,
            iptables_ip_masquerading: None,
            iptables_chains: [None, None, None],
        }
    }
}

/// Every key in a section, lower case; the top-level keys are the flags that override them
/// ([`CONFIG_FLAGS`]).
const SECTION_KEYS: &[&str] = &[
    "process.resources",
    "sandbox.rootfs",
    "sandbox.state_dir",
    "netns.path",
    "acl.chain",
    "acl.external_interface",
    "acl.default_allowed_cidr",
    "iptables.container_bridge_interface",
    "iptables.ip_forwarding",
    "iptables.ip_masquerading",
    "iptables.chains.prerouting",
    "iptables.chains.forward",
    "iptables.chains.postrouting",
];

fn is_key(key: &str) -> bool {
    CONFIG_FLAGS.contains(&key) || SECTION_KEYS.contains(&key)
}

/// The sections keys nest in.
const SECTIONS: &[&str] = &[
    "process",
    "sandbox",
    "netns",
    "acl",
    "iptables",
    "iptables.chains",
];

/// The configuration read, where from, and the warnings to log once logging is up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub path: Option<PathBuf>,
    pub warnings: Vec<String>,
}

/// The first configuration file in `dirs`, read, with the flags' `overrides` applied. The
/// error is one line, naming the file and the key as written.
pub fn load(
    dirs: &[PathBuf],
    overrides: &BTreeMap<&'static str, String>,
) -> Result<Loaded, String> {
    let found = dirs
        .iter()
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file());
    let (tree, label) = match &found {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            (parse_tree(&text, path)?, path.display().to_string())
        }
        None => (Value::Object(Default::default()), "the defaults".to_owned()),
    };
    let (config, warnings) = read(&tree, overrides).map_err(|e| format!("{label}: {e}"))?;
    let warnings = warnings
        .into_iter()
        .map(|w| format!("{label}: {w}"))
        .collect();
    Ok(Loaded {
        config,
        path: found,
        warnings,
    })
}

/// The file's text as a tree, in the format its extension names.
fn parse_tree(text: &str, path: &Path) -> Result<Value, String> {
    let one_line = |e: String| format!("{}: {}", path.display(), e.replace('\n', " "));
    let tree = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            serde_json::from_str(text).map_err(|e| one_line(format!("not valid JSON: {e}")))?
        }
        Some("toml") => {
            toml::from_str(text).map_err(|e| one_line(format!("not valid TOML: {e}")))?
        }
        _ => hoist::input::parse_yaml::<Value>(text, "the file")
            .map_err(|e| one_line(e.message().to_owned()))?,
    };
    match tree {
        Value::Object(_) => Ok(tree),
        // An empty YAML file.
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(one_line("expected keys at the top level".into())),
    }
}

/// One value and the key it was written under.
type Entries = BTreeMap<String, (String, Value)>;

/// Flattens `tree` into dotted lower-case keys, warning about unknown ones.
fn flatten(
    tree: &Value,
    prefix: &str,
    written: &str,
    out: &mut Entries,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let Value::Object(map) = tree else {
        return Ok(());
    };
    for (key, value) in map {
        let full = format!("{prefix}{}", key.to_lowercase());
        let as_written = format!("{written}{key}");
        if is_key(&full) {
            out.insert(full, (as_written, value.clone()));
        } else if SECTIONS.contains(&full.as_str()) {
            match value {
                Value::Object(_) => flatten(
                    value,
                    &format!("{full}."),
                    &format!("{as_written}."),
                    out,
                    warnings,
                )?,
                Value::Null => {}
                _ => return Err(format!("`{as_written}` must be a section of keys")),
            }
        } else {
            warnings.push(format!("unknown key `{as_written}` ignored"));
        }
    }
    Ok(())
}

/// Reads the configuration from a tree and the flags' overrides.
fn read(
    tree: &Value,
    overrides: &BTreeMap<&'static str, String>,
) -> Result<(Config, Vec<String>), String> {
    let mut entries = Entries::new();
    let mut warnings = vec![];
    flatten(tree, "", "", &mut entries, &mut warnings)?;
    for (name, value) in overrides {
        entries.insert(
            (*name).to_owned(),
            (format!("--{name}"), Value::String(value.clone())),
        );
    }
    let mut config = Config::default();
    let get = |key: &str| entries.get(key).filter(|(_, v)| !v.is_null());
    if let Some((k, v)) = get("debug") {
        config.debug = boolean(k, v)?;
    }
    if let Some((k, v)) = get("hooks") {
        config.hooks = list(k, v)?;
    }
    if let Some((k, v)) = get("proc_path") {
        config.proc_path = absolute(k, v)?;
    }
    if let Some((k, v)) = get("registering_retry") {
        config.registering_retry = Some(duration(k, v)?);
    }
    if let Some((k, v)) = get("docker_exec_poll_interval") {
        config.docker_exec_poll_interval = Some(duration(k, v)?);
    }
    if let Some((k, v)) = get("containerizer") {
        config.containerizer = match string(k, v)?.to_lowercase().as_str() {
            "docker" => Backend::Docker,
            "process" => Backend::Process,
            "sandbox" => Backend::Sandbox,
            other => {
                return Err(format!(
                    "`{k}` is `{other}`; expected docker, process or sandbox"
                ));
            }
        };
    }
    if let Some((k, v)) = get("process.resources") {
        config.process_resources = match string(k, v)?.to_lowercase().as_str() {
            "enforce" => ResourcesChoice::Enforce,
            "advisory" => ResourcesChoice::Advisory,
            "refuse" => ResourcesChoice::Refuse,
            other => {
                return Err(format!(
                    "`{k}` is `{other}`; expected enforce, advisory or refuse"
                ));
            }
        };
    }
    if let Some((k, v)) = get("sandbox.rootfs") {
        config.sandbox_rootfs = Some(absolute(k, v)?);
    }
    if let Some((k, v)) = get("sandbox.state_dir") {
        config.sandbox_state_dir = absolute(k, v)?;
    }
    if let Some((k, v)) = get("netns.path") {
        config.netns_path = absolute(k, v)?;
    }
    let name = |key: &str| -> Result<Option<String>, String> {
        get(key).map(|(k, v)| interface_or_chain(k, v)).transpose()
    };
    config.acl_chain = name("acl.chain")?;
    config.acl_external_interface = name("acl.external_interface")?;
    config.iptables_container_bridge_interface = name("iptables.container_bridge_interface")?;
    config.iptables_chains = [
        name("iptables.chains.prerouting")?,
        name("iptables.chains.forward")?,
        name("iptables.chains.postrouting")?,
    ];
    if let Some((k, v)) = get("acl.default_allowed_cidr") {
        config.acl_default_allowed_cidr = list(k, v)?;
        for (i, cidr) in config.acl_default_allowed_cidr.iter().enumerate() {
            if !is_cidr(cidr) {
                return Err(format!("`{k}[{i}]`: `{cidr}` is not an IP or CIDR"));
            }
        }
    }
    if let Some((k, v)) = get("iptables.ip_forwarding") {
        config.iptables_ip_forwarding = Some(boolean(k, v)?);
    }
    if let Some((k, v)) = get("iptables.ip_masquerading") {
        config.iptables_ip_masquerading = Some(boolean(k, v)?);
    }
    check_hooks(&config, |key| {
        get(key).map_or(key.to_owned(), |(k, _)| k.clone())
    })?;
    Ok((config, warnings))
}

/// Checks the hooks and the keys each needs; `written` gives a key as the user wrote it.
fn check_hooks(config: &Config, written: impl Fn(&str) -> String) -> Result<(), String> {
    let hooks_key = written("hooks");
    let mut seen = std::collections::HashSet::new();
    for (i, name) in config.hooks.iter().enumerate() {
        let hook = HookName::parse(name).ok_or_else(|| {
            format!(
                "`{hooks_key}[{i}]` names an unknown hook `{name}` (known: {})",
                HookName::ALL.join(", ")
            )
        })?;
        if !seen.insert(hook) {
            return Err(format!("`{hooks_key}[{i}]` lists `{name}` twice"));
        }
        match hook {
            HookName::Acl => match config.acl_chain.as_deref() {
                None => {
                    return Err(format!(
                        "`{}` is required by the acl hook",
                        written("acl.chain")
                    ));
                }
                Some(chain @ ("FORWARD" | "OUTPUT")) => {
                    return Err(format!(
                        "`{}` must not be {chain}: the acl hook filters input",
                        written("acl.chain")
                    ));
                }
                Some(_) => {}
            },
            HookName::Iptables if config.iptables_container_bridge_interface.is_none() => {
                return Err(format!(
                    "`{}` is required by the iptables hook",
                    written("iptables.container_bridge_interface")
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn shown(value: &Value) -> String {
    value.to_string()
}

fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
    .ok_or_else(|| format!("`{key}` must be true or false, not {}", shown(value)))
}

fn string(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("`{key}` must be a string, not {}", shown(value))),
    }
}

fn list(key: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        // A flag's value, or a string where a list is expected: split as pflag (commas) and
        // viper (spaces) do.
        Value::String(s) => Ok(s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "`{key}[{i}]` must be a string, not {}",
                    shown(other)
                )),
            })
            .collect(),
        _ => Err(format!(
            "`{key}` must be a list of strings, not {}",
            shown(value)
        )),
    }
}

fn absolute(key: &str, value: &Value) -> Result<PathBuf, String> {
    let path = PathBuf::from(string(key, value)?);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "`{key}` must be an absolute path, not `{}`",
            path.display()
        ))
    }
}

fn duration(key: &str, value: &Value) -> Result<Duration, String> {
    match value {
        // viper reads a bare number as nanoseconds.
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("`{key}` must be a duration such as `100ms`, not {n}")),
        Value::String(s) => hoist::units::parse_duration(s).map_err(|e| format!("`{key}`: {e}")),
        _ => Err(format!(
            "`{key}` must be a duration such as `100ms`, not {}",
            shown(value)
        )),
    }
}

fn interface_or_chain(key: &str, value: &Value) -> Result<String, String> {
    let name = string(key, value)?;
    if name.trim().is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "`{key}` must be a name without spaces, not `{name}`"
        ));
    }
    Ok(name)
}

fn is_cidr(text: &str) -> bool {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (text, None),
    };
    ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
    })
}

#[cfg(test)]
mod tests;
