//! The `acl` hook: only the sources a task's labels allow reach its mapped ports.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use hoist_core::{Error, ErrorKind, Hook, HookContext, NetworkMode, Result, TaskSpec};
use ipnet::IpNet;
use serde::Deserialize;

use crate::config::{check_chain_name, check_interface, rule_comment};
use crate::firewall::{Family, Firewall, FirewallExt, IptablesFirewall, Position, Rule, Table};
use crate::ports::{self, Port};

/// The label naming the sources allowed to reach port mapping `index`: `EXECUTOR_<index>_ACL`.
pub fn acl_label(index: usize) -> String {
    format!("EXECUTOR_{index}_ACL")
}

/// The configuration of [`AclHook`] (section `acl:`).
///
/// ```
/// let config: hoist_hooks::AclConfig = serde_json::from_value(serde_json::json!({
///     "chain": "HOIST-ACL",
///     "external_interface": "eth0",
///     "default_allowed_cidr": ["172.17.0.1/32"],
/// })).unwrap();
/// assert!(config.deny_unlisted);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// The filter-table chain the rules go into. It must exist, and must not be `FORWARD` or
    /// `OUTPUT`: create a chain of your own (`iptables -N HOIST-ACL`) and jump to it from
    /// `INPUT` (traffic to the host's own ports) or `DOCKER-USER`/`FORWARD` (traffic forwarded
    /// to containers; jump there only for traffic from outside, `-i eth0`, so the containers'
    /// own outgoing connections never meet a port's DROP rule), or use `INPUT` itself.
    pub chain: String,
    /// The interface the clients come in on; unset or `all` for every interface.
    #[serde(default)]
    pub external_interface: Option<String>,
    /// Sources (IPs or CIDRs) allowed to reach every mapped port of every task, after the
    /// sources of the task's labels.
    #[serde(default)]
    pub default_allowed_cidr: Vec<String>,
    /// Further rules for every mapped port of every task, after the allowed sources: the match
    /// and target arguments, one per element (`["-m", "limit", "--limit", "10/s", "-j",
    /// "ACCEPT"]`). Each is added behind the port's own match.
    #[serde(default)]
    pub extra_rules: Vec<Vec<String>>,
    /// After a port's rules, drop every other source for that port (default `true`), so the
    /// ACL holds whatever the chain's policy or the rules after it say. With `false` the hook
    /// only accepts, and denying is up to the chain.
    #[serde(default = "crate::config::yes")]
    pub deny_unlisted: bool,
    /// Also manage IPv6 (`ip6tables`): IPv6 sources are accepted and the deny rules are added
    /// for both families (default `false`: an IPv6 source in a label is an error).
    #[serde(default)]
    pub ipv6: bool,
    /// `append` (default) or `top`: where in the chain the rules go.
    #[serde(default)]
    pub position: Position,
    /// The hook's priority (default 0).
    #[serde(default)]
    pub priority: i64,
}

/// Lets only chosen sources reach a task's mapped ports, with firewall rules added in post-run
/// and removed in pre-stop.
///
/// Label `EXECUTOR_<n>_ACL` of a task lists (comma-separated) the IPs or CIDRs allowed to reach
/// its port mapping `n`; `default_allowed_cidr` adds sources for every port; `extra_rules` adds
/// rules for every port; unless `deny_unlisted` is off, every other source is then dropped for
/// that port. A rule matches a port by its connection's original destination port (the host
/// port, before any DNAT) and direction, so the same rules work in a chain reached from
/// `INPUT` and in one reached from `FORWARD` after Docker's DNAT. Each rule carries a comment
/// naming the task. A bad address in a label fails the launch, naming the label and the value.
#[derive(Debug, Clone)]
pub struct AclHook {
    config: AclConfig,
    interface: Option<String>,
    defaults: Vec<IpNet>,
    firewall: Arc<dyn Firewall>,
}

/// The rules the hook added for one task.
#[derive(Debug, Clone, Default)]
struct AclRules(Vec<Rule>);

impl AclHook {
    /// The name it registers under.
    pub const NAME: &'static str = "acl";

    /// A hook on the real `iptables`; the configuration is checked here, the chain's existence
    /// by [`Hook::validate`].
    pub fn new(config: AclConfig) -> Result<Self> {
        AclHook::with_firewall(config, Arc::new(IptablesFirewall::new()))
    }

    /// A hook on `firewall`.
    pub fn with_firewall(config: AclConfig, firewall: Arc<dyn Firewall>) -> Result<Self> {
        check_chain_name("acl.chain", &config.chain)?;
        if matches!(config.chain.as_str(), "FORWARD" | "OUTPUT") {
            return Err(Error::invalid_field(
                "acl.chain",
                format!(
                    "is `{}`; the ACL cannot use FORWARD or OUTPUT: use INPUT or a chain of your own",
                    config.chain
                ),
            ));
        }
        let interface = match config.external_interface.as_deref() {
            None | Some("all") => None,
            Some(name) => {
                check_interface("acl.external_interface", name)?;
                Some(name.to_owned())
            }
        };
        let mut defaults = Vec::new();
        for (i, text) in config.default_allowed_cidr.iter().enumerate() {
            let key = format!("acl.default_allowed_cidr[{i}]");
            let net =
                parse_source(text).map_err(|problem| Error::invalid_field(key.clone(), problem))?;
            if net.addr().is_ipv6() && !config.ipv6 {
                return Err(Error::invalid_field(
                    key,
                    format!("is the IPv6 source `{text}`, but `acl.ipv6` is off"),
                ));
            }
            defaults.push(net);
        }
        for (i, rule) in config.extra_rules.iter().enumerate() {
            check_extra_rule(rule).map_err(|problem| {
                Error::invalid_field(format!("acl.extra_rules[{i}]"), problem)
            })?;
        }
        Ok(AclHook {
            config,
            interface,
            defaults,
            firewall,
        })
    }

    fn families(&self) -> &'static [Family] {
        if self.config.ipv6 {
            &[Family::Ipv4, Family::Ipv6]
        } else {
            &[Family::Ipv4]
        }
    }

    /// The sources each port's label allows, by port index. Errors name the label and value.
    fn label_sources(&self, task: &TaskSpec) -> Result<BTreeMap<usize, Vec<IpNet>>> {
        let mut sources = BTreeMap::new();
        for (key, value) in &task.labels {
            let Some(index) = label_index(key) else {
                continue;
            };
            let bad = |problem: String| {
                Error::invalid(format!("label `{key}` = `{value}`: {problem}"))
                    .with_context("label", key)
            };
            let index = index.map_err(bad)?;
            if index >= task.container.ports.len() {
                return Err(bad(format!(
                    "there is no port mapping {index} (the task has {})",
                    task.container.ports.len()
                )));
            }
            let mut nets = Vec::new();
            if !value.trim().is_empty() {
                for item in value.split(',') {
                    let net = parse_source(item.trim()).map_err(bad)?;
                    if net.addr().is_ipv6() && !self.config.ipv6 {
                        return Err(bad(format!(
                            "`{}` is an IPv6 source, but `acl.ipv6` is off",
                            item.trim()
                        )));
                    }
                    nets.push(net);
                }
            }
            sources.insert(index, nets);
        }
        Ok(sources)
    }

    /// Every rule for `task`, in chain order.
    fn rules(&self, task: &TaskSpec, ports: &[Port]) -> Result<Vec<Rule>> {
        let labels = self.label_sources(task)?;
        let comment = rule_comment(Self::NAME, &task.id);
        let mut rules = Vec::new();
        for port in ports {
            let allowed = labels
                .get(&port.index)
                .into_iter()
                .flatten()
                .chain(&self.defaults);
            let mut seen = Vec::new();
            for net in allowed {
                if seen.contains(net) {
                    continue;
                }
                seen.push(*net);
                let mut spec = self.port_match(port, &comment);
                spec.extend([
                    "-s".to_owned(),
                    net.to_string(),
                    "-j".to_owned(),
                    "ACCEPT".to_owned(),
                ]);
                rules.push(self.rule(Family::of(net.addr()), spec));
            }
            for &family in self.families() {
                for extra in &self.config.extra_rules {
                    let mut spec = self.port_match(port, &comment);
                    spec.extend(extra.iter().cloned());
                    rules.push(self.rule(family, spec));
                }
                if self.config.deny_unlisted {
                    let mut spec = self.port_match(port, &comment);
                    spec.extend(["-j".to_owned(), "DROP".to_owned()]);
                    rules.push(self.rule(family, spec));
                }
            }
        }
        Ok(rules)
    }

    fn rule(&self, family: Family, spec: Vec<String>) -> Rule {
        Rule::new(family, Table::Filter, &self.config.chain, spec).at(self.config.position)
    }

    /// `[-i <if>] -p <proto> -m conntrack --ctdir ORIGINAL --ctorigdstport <host port> -m comment ...`
    fn port_match(&self, port: &Port, comment: &str) -> Vec<String> {
        let mut spec = Vec::new();
        if let Some(interface) = &self.interface {
            spec.extend(["-i".to_owned(), interface.clone()]);
        }
        spec.extend([
            "-p".to_owned(),
            port.protocol.as_str().to_owned(),
            "-m".to_owned(),
            "conntrack".to_owned(),
            "--ctdir".to_owned(),
            "ORIGINAL".to_owned(),
            "--ctorigdstport".to_owned(),
            port.host_port.to_string(),
            "-m".to_owned(),
            "comment".to_owned(),
            "--comment".to_owned(),
            comment.to_owned(),
        ]);
        spec
    }

    async fn resolve_ports(&self, ctx: &HookContext<'_>, task: &TaskSpec) -> Result<Vec<Port>> {
        let info = match (ports::all_fixed(task), ctx.container_id) {
            (false, Some(id)) => Some(ctx.containerizer.inspect(id).await?),
            _ => None,
        };
        ports::resolve(task, info.as_ref())
    }
}

/// `Some(index)` for a key of the form `EXECUTOR_<n>_ACL`.
fn label_index(key: &str) -> Option<std::result::Result<usize, String>> {
    let digits = key.strip_prefix("EXECUTOR_")?.strip_suffix("_ACL")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse()
            .map_err(|_| format!("`{digits}` is not a port index")),
    )
}

/// An IP (as a one-address network) or a CIDR, normalised to its network address.
fn parse_source(text: &str) -> std::result::Result<IpNet, String> {
    if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    text.parse::<IpNet>()
        .map(|net| net.trunc())
        .map_err(|_| format!("`{text}` is not an IP address or a CIDR"))
}

/// Extra rules carry matches and a target only: no command, table or chain of their own.
fn check_extra_rule(rule: &[String]) -> std::result::Result<(), String> {
    const COMMANDS: &[&str] = &[
        "-A",
        "--append",
        "-I",
        "--insert",
        "-D",
        "--delete",
        "-R",
        "--replace",
        "-C",
        "--check",
        "-F",
        "--flush",
        "-X",
        "--delete-chain",
        "-N",
        "--new-chain",
        "-P",
        "--policy",
        "-E",
        "--rename-chain",
        "-Z",
        "--zero",
        "-L",
        "--list",
        "-S",
        "--list-rules",
        "-t",
        "--table",
    ];
    if rule.is_empty() {
        return Err(
            "is empty; give match and target arguments such as [\"-j\", \"ACCEPT\"]".into(),
        );
    }
    if let Some(bad) = rule.iter().find(|a| COMMANDS.contains(&a.as_str())) {
        return Err(format!(
            "holds `{bad}`; an extra rule has only matches and a target"
        ));
    }
    if rule.iter().any(|a| a.contains('\0')) {
        return Err("holds a NUL byte".into());
    }
    Ok(())
}

#[async_trait]
impl Hook for AclHook {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn priority(&self) -> i64 {
        self.config.priority
    }

    fn validate(&self) -> Result<()> {
        for &family in self.families() {
            if !self
                .firewall
                .chain_exists(family, Table::Filter, &self.config.chain)?
            {
                return Err(Error::invalid_field(
                    "acl.chain",
                    format!(
                        "names `{chain}`, which does not exist in the {family} filter table; create it (iptables -N {chain}) and jump to it",
                        chain = self.config.chain
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn pre_create(&self, _ctx: &mut HookContext<'_>, task: &mut TaskSpec) -> Result<()> {
        // Bad labels fail the launch before anything is created.
        self.label_sources(task).map(drop)
    }

    async fn post_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        if task.container.ports.is_empty() || task.container.network == Some(NetworkMode::None) {
            return Ok(());
        }
        let ports = self.resolve_ports(ctx, task).await?;
        let rules = self.rules(task, &ports)?;
        let added = self.firewall.apply(&rules).await?;
        tracing::debug!(task = %task.id, rules = added.len(), "added ACL rules");
        ctx.state.insert(AclRules(added));
        Ok(())
    }

    async fn pre_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        if let Some(AclRules(added)) = ctx.state.remove::<AclRules>() {
            return self.firewall.remove(&added).await;
        }
        // No state: the launch failed before post-run, or the task was re-attached after an
        // executor restart. Rebuild the rules (they carry this task's comment) and delete any
        // that are there.
        if task.container.ports.is_empty() || task.container.network == Some(NetworkMode::None) {
            return Ok(());
        }
        let ports = match self.resolve_ports(ctx, task).await {
            Ok(ports) => ports,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidState) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match self.rules(task, &ports) {
            Ok(rules) => self.firewall.remove(&rules).await,
            Err(_) => Ok(()),
        }
    }
}
