//! The [`Firewall`] seam: add and remove packet-filter rules, idempotently.
//!
//! A [`Rule`] names an address family, a table, a chain and the rule's arguments (matches and
//! target, as `iptables` takes them, one argument per element: never a shell string). The
//! [`Firewall`] trait has three primitives (does a chain exist, does a rule exist, add, delete);
//! [`FirewallExt`] builds on them what hooks use: [`FirewallExt::apply`] adds the rules that are
//! not there yet and returns exactly those, rolling back on failure, and
//! [`FirewallExt::remove`] deletes rules and succeeds for rules already gone.
//!
//! [`IptablesFirewall`] runs the real `iptables`/`ip6tables`, optionally behind a command prefix
//! such as `ip netns exec <ns>`; [`RecordingFirewall`] keeps rules in memory for tests.

mod iptables_cli;
mod recording;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use hoist_core::{Error, Result};

pub use iptables_cli::IptablesFirewall;
pub use recording::{FirewallOp, RecordingFirewall};

/// An address family: which of `iptables` and `ip6tables` a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`iptables`).
    Ipv4,
    /// IPv6 (`ip6tables`).
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: std::net::IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }

    /// `"ipv4"` or `"ipv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A netfilter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `filter`: accept and drop.
    Filter,
    /// `nat`: address translation.
    Nat,
    /// `mangle`: packet alteration.
    Mangle,
    /// `raw`: before connection tracking.
    Raw,
}

impl Table {
    /// The table's name as `iptables -t` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Mangle => "mangle",
            Table::Raw => "raw",
        }
    }

    /// The chains every table of this kind has from the start.
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            Table::Filter => &["INPUT", "FORWARD", "OUTPUT"],
            Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            Table::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            Table::Raw => &["PREROUTING", "OUTPUT"],
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where [`FirewallExt::apply`] puts a rule that is not there yet. In configuration: `append`
/// or `top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// At the end of the chain (`-A`).
    #[default]
    Append,
    /// At the head of the chain, keeping the order of the rule set (`-I <chain> <n>`).
    Top,
}

/// One rule: family, table, chain, and its arguments (matches and target).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// `iptables` or `ip6tables`.
    pub family: Family,
    /// The table.
    pub table: Table,
    /// The chain.
    pub chain: String,
    /// The arguments after the chain name, one per element (`["-p", "tcp", "-j", "ACCEPT"]`).
    pub spec: Vec<String>,
    /// Where it goes when added.
    pub position: Position,
}

impl Rule {
    /// A rule appended to `chain` of `table`.
    pub fn new<I, S>(family: Family, table: Table, chain: impl Into<String>, spec: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Rule {
            family,
            table,
            chain: chain.into(),
            spec: spec.into_iter().map(Into::into).collect(),
            position: Position::Append,
        }
    }

    /// The same rule, placed at `position`.
    pub fn at(mut self, position: Position) -> Self {
        self.position = position;
        self
    }
}

impl fmt::Display for Rule {
    /// As an `iptables -S` line would read: `ipv4 nat: -A CHAIN -p tcp ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: -A {}", self.family, self.table, self.chain)?;
        for arg in &self.spec {
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                write!(f, " {arg:?}")?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

/// Adds and removes packet-filter rules. Implementations are used as `Arc<dyn Firewall>`.
///
/// The primitives are deliberately small; [`FirewallExt`] builds idempotent apply and remove of
/// whole rule sets on them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use hoist_hooks::firewall::{Family, Firewall, FirewallExt, RecordingFirewall, Rule, Table};
///
/// let firewall = RecordingFirewall::new();
/// let rule = Rule::new(Family::Ipv4, Table::Filter, "INPUT", ["-p", "tcp", "--dport", "22", "-j", "ACCEPT"]);
/// let added = firewall.apply(std::slice::from_ref(&rule)).await?;
/// assert_eq!(added, [rule.clone()]);
/// // A second apply finds the rule and adds nothing.
/// assert!(firewall.apply(std::slice::from_ref(&rule)).await?.is_empty());
/// firewall.remove(&added).await?;
/// assert!(!firewall.contains(&rule).await?);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Firewall: Send + Sync + fmt::Debug + 'static {
    /// Whether `chain` exists in `table`. Blocking (briefly, with a deadline): it is meant for
    /// configuration checks when an executor is built, outside any async context's hot path.
    fn chain_exists(&self, family: Family, table: Table, chain: &str) -> Result<bool>;

    /// Whether an identical rule is in its chain (`iptables -C`).
    async fn contains(&self, rule: &Rule) -> Result<bool>;

    /// Adds the rule: appended, or inserted at 1-based position `at` (`-A` or `-I <chain> <at>`).
    /// It does not check for a duplicate first; [`FirewallExt::apply`] does.
    async fn add(&self, rule: &Rule, at: Option<u32>) -> Result<()>;

    /// Deletes one instance of the rule; `false` when there was none.
    async fn delete(&self, rule: &Rule) -> Result<bool>;
}

/// Rule-set operations built on [`Firewall`]'s primitives, for every firewall.
#[async_trait]
pub trait FirewallExt: Firewall {
    /// Adds, in order, every rule of `rules` not already present, and returns exactly the rules
    /// it added (what [`FirewallExt::remove`] should undo). Applying the same set twice adds
    /// nothing the second time. On a failure the rules added so far are deleted again and the
    /// error names the rule that failed.
    async fn apply(&self, rules: &[Rule]) -> Result<Vec<Rule>> {
        let mut added: Vec<Rule> = Vec::new();
        let mut next_top: HashMap<(Family, Table, &str), u32> = HashMap::new();
        for rule in rules {
            let result = async {
                if self.contains(rule).await? {
                    return Ok(false);
                }
                let at = match rule.position {
                    Position::Append => None,
                    Position::Top => {
                        let n = next_top
                            .entry((rule.family, rule.table, rule.chain.as_str()))
                            .or_insert(1);
                        let at = *n;
                        *n += 1;
                        Some(at)
                    }
                };
                self.add(rule, at).await.map(|()| true)
            }
            .await;
            match result {
                Ok(true) => added.push(rule.clone()),
                Ok(false) => {}
                Err(e) => {
                    if let Err(undo) = self.remove(&added).await {
                        tracing::warn!(error = %undo, "could not roll back the rules added before a failure");
                    }
                    return Err(e.with_context("rule", rule));
                }
            }
        }
        Ok(added)
    }

    /// Deletes every rule of `rules`, last first; a rule already gone is not an error. Every
    /// rule is tried; the first failure is returned.
    async fn remove(&self, rules: &[Rule]) -> Result<()> {
        let mut first: Option<Error> = None;
        for rule in rules.iter().rev() {
            if let Err(e) = self.delete(rule).await {
                tracing::warn!(%rule, error = %e, "could not delete a rule");
                first.get_or_insert(e.with_context("rule", rule));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl<T: Firewall + ?Sized> FirewallExt for T {}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: Firewall + ?Sized> Firewall for std::sync::Arc<T> {
    fn chain_exists(&self, family: Family, table: Table, chain: &str) -> Result<bool> {
        (**self).chain_exists(family, table, chain)
    }
    async fn contains(&self, rule: &Rule) -> Result<bool> {
        (**self).contains(rule).await
    }
    async fn add(&self, rule: &Rule, at: Option<u32>) -> Result<()> {
        (**self).add(rule, at).await
    }
    async fn delete(&self, rule: &Rule) -> Result<bool> {
        (**self).delete(rule).await
    }
}
