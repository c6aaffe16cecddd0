//! The `iptables` hook (port forwarding): Docker-style DNAT, forwarding and masquerading for a
//! task's ports. The rules are written through a [`Firewall`]; `firewall::IptablesFirewall` runs
//! the `iptables` program.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use hoist_core::{Error, ErrorKind, Hook, HookContext, NetworkMode, Result, TaskSpec};
use serde::Deserialize;

use crate::config::{check_chain_name, check_interface, rule_comment};
use crate::firewall::{Family, Firewall, FirewallExt, IptablesFirewall, Position, Rule, Table};
use crate::ports::{self, Port};

/// The chains the [`IptablesHook`] writes to (section `iptables.chains`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IptablesChains {
    /// nat-table chain for the DNAT rules (default `PREROUTING`).
    #[serde(default = "IptablesChains::prerouting")]
    pub prerouting: String,
    /// filter-table chain for the forwarding rules (default `FORWARD`).
    #[serde(default = "IptablesChains::forward")]
    pub forward: String,
    /// nat-table chain for the masquerading rules (default `POSTROUTING`).
    #[serde(default = "IptablesChains::postrouting")]
    pub postrouting: String,
}

impl IptablesChains {
    fn prerouting() -> String {
        "PREROUTING".into()
    }
    fn forward() -> String {
        "FORWARD".into()
    }
    fn postrouting() -> String {
        "POSTROUTING".into()
    }
}

impl Default for IptablesChains {
    fn default() -> Self {
        IptablesChains {
            prerouting: IptablesChains::prerouting(),
            forward: IptablesChains::forward(),
            postrouting: IptablesChains::postrouting(),
        }
    }
}

/// The configuration of [`IptablesHook`] (section `iptables:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IptablesConfig {
    /// The bridge the containers sit on (`docker0`).
    pub container_bridge_interface: String,
    /// Add the FORWARD rules that let traffic to and from the mapped ports cross the bridge
    /// (default `true`; needed when the FORWARD policy is DROP).
    #[serde(default = "crate::config::yes")]
    pub ip_forwarding: bool,
    /// Masquerade the container's outgoing traffic and its hairpin traffic (default `true`).
    #[serde(default = "crate::config::yes")]
    pub ip_masquerading: bool,
    /// The chains to write to; each must exist.
    #[serde(default)]
    pub chains: IptablesChains,
    /// Also write `ip6tables` rules for the container's IPv6 addresses (default `false`).
    #[serde(default)]
    pub ipv6: bool,
    /// `append` (default) or `top`: where in each chain the rules go.
    #[serde(default)]
    pub position: Position,
    /// The hook's priority (default 0).
    #[serde(default)]
    pub priority: i64,
}

/// Makes a task's port mappings reachable the way Docker's own `--iptables` rules do, for
/// backends (or Docker daemons) that do not write them.
///
/// In post-run, for each address of the container (from `inspect`) and each port mapping:
/// - DNAT: `! -i <bridge> -p <proto> --dport <host port> -j DNAT --to-destination <ip>:<port>`
///   in the prerouting chain (with `-d <host ip>` when the mapping binds one);
/// - with `ip_forwarding`: ACCEPT to the container's port and from it, across the bridge, in
///   the forward chain;
/// - with `ip_masquerading`: MASQUERADE of what the container sends out of the bridge, and of
///   its hairpin traffic, in the postrouting chain.
///
/// What it added is kept in the task's hook state and removed in pre-stop (the container's
/// address may be gone by then). Tasks on the host network or on none get no rules.
#[derive(Debug, Clone)]
pub struct IptablesHook {
    config: IptablesConfig,
    firewall: Arc<dyn Firewall>,
}

/// The rules the hook added for one task.
#[derive(Debug, Clone, Default)]
struct PortRules(Vec<Rule>);

impl IptablesHook {
    /// The name it registers under.
    pub const NAME: &'static str = "iptables";

    /// A hook on the real `iptables`; the configuration is checked here, the chains' existence
    /// by [`Hook::validate`].
    pub fn new(config: IptablesConfig) -> Result<Self> {
        IptablesHook::with_firewall(config, Arc::new(IptablesFirewall::new()))
    }

    /// A hook on `firewall`.
    pub fn with_firewall(config: IptablesConfig, firewall: Arc<dyn Firewall>) -> Result<Self> {
        check_interface(
            "iptables.container_bridge_interface",
            &config.container_bridge_interface,
        )?;
        check_chain_name("iptables.chains.prerouting", &config.chains.prerouting)?;
        check_chain_name("iptables.chains.forward", &config.chains.forward)?;
        check_chain_name("iptables.chains.postrouting", &config.chains.postrouting)?;
        Ok(IptablesHook { config, firewall })
    }

    fn families(&self) -> &'static [Family] {
        if self.config.ipv6 {
            &[Family::Ipv4, Family::Ipv6]
        } else {
            &[Family::Ipv4]
        }
    }

    fn chains(&self) -> [(&'static str, Table, &str); 3] {
        let c = &self.config.chains;
        [
            ("iptables.chains.prerouting", Table::Nat, &c.prerouting),
            ("iptables.chains.forward", Table::Filter, &c.forward),
            ("iptables.chains.postrouting", Table::Nat, &c.postrouting),
        ]
    }

    /// The container addresses rules are written for: not loopback, not unspecified, not
    /// link-local, and IPv6 only when enabled.
    fn usable(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified() || v4.is_link_local()),
            IpAddr::V6(v6) => {
                self.config.ipv6
                    && !(v6.is_loopback() || v6.is_unspecified() || v6.is_unicast_link_local())
            }
        }
    }

    /// Every rule for a container at `addresses` publishing `ports`.
    fn rules(&self, task: &TaskSpec, addresses: &[IpAddr], ports: &[Port]) -> Vec<Rule> {
        let bridge = self.config.container_bridge_interface.as_str();
        let chains = &self.config.chains;
        let comment = rule_comment(Self::NAME, &task.id);
        let tag = |spec: &mut Vec<String>| {
            spec.extend(["-m", "comment", "--comment", &comment].map(String::from))
        };
        let mut rules = Vec::new();
        for &addr in addresses {
            let family = Family::of(addr);
            let ip = addr.to_string();
            let host = if addr.is_ipv4() {
                format!("{ip}/32")
            } else {
                format!("{ip}/128")
            };
            let rule = |table, chain: &str, spec: Vec<String>| {
                Rule::new(family, table, chain, spec).at(self.config.position)
            };
            if self.config.ip_masquerading {
                let mut spec = strings(["-s", &host, "!", "-o", bridge]);
                tag(&mut spec);
                spec.extend(strings(["-j", "MASQUERADE"]));
                rules.push(rule(Table::Nat, &chains.postrouting, spec));
            }
            for port in ports
                .iter()
                .filter(|p| p.host_ip.is_none_or(|h| Family::of(h) == family))
            {
                let proto = port.protocol.as_str();
                let (host_port, container_port) =
                    (port.host_port.to_string(), port.container_port.to_string());
                let destination = if addr.is_ipv4() {
                    format!("{ip}:{container_port}")
                } else {
                    format!("[{ip}]:{container_port}")
                };
                let mut spec = Vec::new();
                if let Some(host_ip) = port.host_ip.filter(|h| !h.is_unspecified()) {
                    spec.extend(strings(["-d", &host_ip.to_string()]));
                }
                spec.extend(strings([
                    "!", "-i", bridge, "-p", proto, "-m", proto, "--dport", &host_port,
                ]));
                tag(&mut spec);
                spec.extend(strings(["-j", "DNAT", "--to-destination", &destination]));
                rules.push(rule(Table::Nat, &chains.prerouting, spec));

                if self.config.ip_masquerading {
                    let mut spec = strings([
                        "-s",
                        &host,
                        "-d",
                        &host,
                        "-p",
                        proto,
                        "-m",
                        proto,
                        "--dport",
                        &container_port,
                    ]);
                    tag(&mut spec);
                    spec.extend(strings(["-j", "MASQUERADE"]));
                    rules.push(rule(Table::Nat, &chains.postrouting, spec));
                }
                if self.config.ip_forwarding {
                    let mut spec = strings([
                        "-d",
                        &host,
                        "!",
                        "-i",
                        bridge,
                        "-o",
                        bridge,
                        "-p",
                        proto,
                        "-m",
                        proto,
                        "--dport",
                        &container_port,
                    ]);
                    tag(&mut spec);
                    spec.extend(strings(["-j", "ACCEPT"]));
                    rules.push(rule(Table::Filter, &chains.forward, spec));
                    let mut spec = strings([
                        "-s",
                        &host,
                        "-i",
                        bridge,
                        "!",
                        "-o",
                        bridge,
                        "-p",
                        proto,
                        "-m",
                        proto,
                        "--sport",
                        &container_port,
                    ]);
                    tag(&mut spec);
                    spec.extend(strings(["-j", "ACCEPT"]));
                    rules.push(rule(Table::Filter, &chains.forward, spec));
                }
            }
        }
        rules
    }

    /// Inspects the container and builds its rules.
    async fn container_rules(&self, ctx: &HookContext<'_>, task: &TaskSpec) -> Result<Vec<Rule>> {
        let id = ctx.container_id.ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, "no container to write rules for")
        })?;
        let info = ctx.containerizer.inspect(id).await?;
        let addresses: Vec<IpAddr> = info
            .addresses
            .iter()
            .copied()
            .filter(|a| self.usable(*a))
            .collect();
        if addresses.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "the container reports no address on the bridge `{}` (it reports {:?})",
                    self.config.container_bridge_interface, info.addresses
                ),
            )
            .with_context("container", id));
        }
        let ports = ports::resolve(task, Some(&info))?;
        Ok(self.rules(task, &addresses, &ports))
    }
}

fn strings<const N: usize>(args: [&str; N]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// Whether the task runs on a network these rules make sense for (bridge, user, or the
/// backend's default).
fn bridged(task: &TaskSpec) -> bool {
    !matches!(
        task.container.network,
        Some(NetworkMode::Host | NetworkMode::None)
    )
}

#[async_trait]
impl Hook for IptablesHook {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn priority(&self) -> i64 {
        self.config.priority
    }

    fn validate(&self) -> Result<()> {
        for &family in self.families() {
            for (key, table, chain) in self.chains() {
                if !self.firewall.chain_exists(family, table, chain)? {
                    return Err(Error::invalid_field(
                        key,
                        format!(
                            "names `{chain}`, which does not exist in the {family} {table} table"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn post_run(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        if !bridged(task) {
            tracing::debug!(task = %task.id, "not on a bridge; no port rules");
            return Ok(());
        }
        let rules = self.container_rules(ctx, task).await?;
        let added = self.firewall.apply(&rules).await?;
        tracing::debug!(task = %task.id, rules = added.len(), "added port rules");
        ctx.state.insert(PortRules(added));
        Ok(())
    }

    async fn pre_stop(&self, ctx: &mut HookContext<'_>, task: &TaskSpec) -> Result<()> {
        if let Some(PortRules(added)) = ctx.state.remove::<PortRules>() {
            return self.firewall.remove(&added).await;
        }
        // No state: the launch failed before post-run, or the task was re-attached after an
        // executor restart. While the container still runs its rules can be rebuilt (they carry
        // this task's comment); delete any that are there.
        if !bridged(task) || ctx.container_id.is_none() {
            return Ok(());
        }
        match self.container_rules(ctx, task).await {
            Ok(rules) => self.firewall.remove(&rules).await,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidState) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
