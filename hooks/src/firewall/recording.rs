//! [`RecordingFirewall`]: rules kept in memory, every operation recorded; for tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use hoist_core::{Error, ErrorKind, Result};

use super::{Family, Firewall, Rule, Table};

/// One operation a [`RecordingFirewall`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallOp {
    /// `contains`.
    Check(Rule),
    /// `add`, with the insert position (`None`: appended).
    Add(Rule, Option<u32>),
    /// `delete`.
    Delete(Rule),
}

type ChainKey = (Family, Table, String);

#[derive(Debug, Default)]
struct State {
    chains: BTreeMap<ChainKey, Vec<Vec<String>>>,
    ops: Vec<FirewallOp>,
    fail_add: Option<String>,
}

/// An in-memory [`Firewall`]: chains hold rule specs in order, like the kernel's tables.
///
/// Built-in chains exist in every table and family; other chains exist once declared with
/// [`RecordingFirewall::with_chain`]. Adding to a chain that does not exist fails, as
/// `iptables` does.
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    state: Mutex<State>,
}

impl RecordingFirewall {
    /// A firewall with only the built-in chains, all empty.
    pub fn new() -> Self {
        let fw = RecordingFirewall::default();
        {
            let mut state = fw.state();
            for family in [Family::Ipv4, Family::Ipv6] {
                for table in [Table::Filter, Table::Nat, Table::Mangle, Table::Raw] {
                    for chain in table.builtin_chains() {
                        state
                            .chains
                            .insert((family, table, (*chain).to_owned()), Vec::new());
                    }
                }
            }
        }
        fw
    }

    /// Declares a user-defined chain.
    pub fn with_chain(self, family: Family, table: Table, chain: &str) -> Self {
        self.state()
            .chains
            .entry((family, table, chain.to_owned()))
            .or_default();
        self
    }

    /// Makes every later `add` of a rule whose arguments contain `arg` fail.
    pub fn fail_adds_with(&self, arg: &str) {
        self.state().fail_add = Some(arg.to_owned());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rule specs in a chain, in order (empty if the chain does not exist).
    pub fn rules_in(&self, family: Family, table: Table, chain: &str) -> Vec<Vec<String>> {
        self.state()
            .chains
            .get(&(family, table, chain.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// How many rules all chains hold together.
    pub fn rule_count(&self) -> usize {
        self.state().chains.values().map(Vec::len).sum()
    }

    /// The chains that hold at least one rule.
    pub fn non_empty_chains(&self) -> BTreeSet<(Family, Table, String)> {
        self.state()
            .chains
            .iter()
            .filter(|(_, rules)| !rules.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every operation so far, in order.
    pub fn ops(&self) -> Vec<FirewallOp> {
        self.state().ops.clone()
    }

    /// How many `add`s were made.
    pub fn adds(&self) -> usize {
        self.state()
            .ops
            .iter()
            .filter(|op| matches!(op, FirewallOp::Add(..)))
            .count()
    }
}

fn key(rule: &Rule) -> ChainKey {
    (rule.family, rule.table, rule.chain.clone())
}

fn no_chain(rule: &Rule) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "chain {} does not exist in the {} {} table",
            rule.chain, rule.family, rule.table
        ),
    )
    .with_context("chain", &rule.chain)
}

#[async_trait]
impl Firewall for RecordingFirewall {
    fn chain_exists(&self, family: Family, table: Table, chain: &str) -> Result<bool> {
        Ok(self
            .state()
            .chains
            .contains_key(&(family, table, chain.to_owned())))
    }

    async fn contains(&self, rule: &Rule) -> Result<bool> {
        let mut state = self.state();
        state.ops.push(FirewallOp::Check(rule.clone()));
        Ok(state
            .chains
            .get(&key(rule))
            .is_some_and(|rules| rules.contains(&rule.spec)))
    }

    async fn add(&self, rule: &Rule, at: Option<u32>) -> Result<()> {
        let mut state = self.state();
        state.ops.push(FirewallOp::Add(rule.clone(), at));
        if let Some(arg) = state
            .fail_add
            .as_ref()
            .filter(|arg| rule.spec.contains(arg))
        {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("scripted failure adding a rule with `{arg}`"),
            ));
        }
        let rules = state
            .chains
            .get_mut(&key(rule))
            .ok_or_else(|| no_chain(rule))?;
        match at {
            None => rules.push(rule.spec.clone()),
            Some(n) => {
                let index = (n as usize).saturating_sub(1);
                if index > rules.len() {
                    return Err(Error::invalid(format!(
                        "insert position {n} is past the end of {}",
                        rule.chain
                    )));
                }
                rules.insert(index, rule.spec.clone());
            }
        }
        Ok(())
    }

    async fn delete(&self, rule: &Rule) -> Result<bool> {
        let mut state = self.state();
        state.ops.push(FirewallOp::Delete(rule.clone()));
        let rules = state
            .chains
            .get_mut(&key(rule))
            .ok_or_else(|| no_chain(rule))?;
        match rules.iter().position(|r| r == &rule.spec) {
            Some(i) => {
                rules.remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{FirewallExt, Position};

    fn rule(chain: &str, port: &str) -> Rule {
        Rule::new(
            Family::Ipv4,
            Table::Filter,
            chain,
            ["-p", "tcp", "--dport", port, "-j", "ACCEPT"],
        )
    }

    #[tokio::test]
    async fn apply_skips_present_rules_and_returns_only_what_it_added() {
        let fw = RecordingFirewall::new();
        fw.add(&rule("INPUT", "1"), None).await.unwrap();
        let added = fw
            .apply(&[rule("INPUT", "1"), rule("INPUT", "2")])
            .await
            .unwrap();
        assert_eq!(added, [rule("INPUT", "2")]);
        fw.remove(&added).await.unwrap();
        // The rule that was there before stays.
        assert_eq!(
            fw.rules_in(Family::Ipv4, Table::Filter, "INPUT"),
            [rule("INPUT", "1").spec]
        );
    }

    #[tokio::test]
    async fn top_rules_keep_their_order_at_the_head_of_the_chain() {
        let fw = RecordingFirewall::new();
        fw.add(&rule("INPUT", "9"), None).await.unwrap();
        let set = [
            rule("INPUT", "1").at(Position::Top),
            rule("INPUT", "2").at(Position::Top),
        ];
        fw.apply(&set).await.unwrap();
        let ports: Vec<String> = fw
            .rules_in(Family::Ipv4, Table::Filter, "INPUT")
            .into_iter()
            .map(|spec| spec[3].clone())
            .collect();
        assert_eq!(ports, ["1", "2", "9"]);
    }

    #[tokio::test]
    async fn a_failed_apply_rolls_back_what_it_added() {
        let fw = RecordingFirewall::new();
        fw.fail_adds_with("3");
        let err = fw
            .apply(&[rule("INPUT", "1"), rule("INPUT", "2"), rule("INPUT", "3")])
            .await
            .unwrap_err();
        assert!(
            err.context_value("rule").unwrap().contains("--dport 3"),
            "{err}"
        );
        assert_eq!(fw.rule_count(), 0);
    }

    #[tokio::test]
    async fn adding_to_a_missing_chain_fails_and_removing_a_gone_rule_succeeds() {
        let fw = RecordingFirewall::new();
        let err = fw.apply(&[rule("NOPE", "1")]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        fw.remove(&[rule("INPUT", "1")]).await.unwrap();
    }
}
