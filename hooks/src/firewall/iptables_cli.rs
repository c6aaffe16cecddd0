//! [`IptablesFirewall`]: the real `iptables` and `ip6tables`, run with argument vectors.

use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hoist_core::{Error, ErrorKind, Result};

use super::{Family, Firewall, Rule, Table};

/// What `iptables` prints when `-C` or `-D` finds no such rule.
const NO_SUCH_RULE: &str = "does a matching rule exist";

/// Runs `iptables` (IPv4 rules) and `ip6tables` (IPv6 rules).
///
/// Every call is an argument vector (never a shell string), passes `-w` so concurrent callers
/// wait for the xtables lock instead of failing, and has a deadline (default 10 s) after which
/// the command is killed. A command prefix runs the tools elsewhere, for example inside a
/// network namespace with [`IptablesFirewall::in_netns`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hoist_core::Result<()> {
/// use hoist_hooks::firewall::{Family, FirewallExt, IptablesFirewall, Rule, Table};
///
/// // Rules go into the tables of the network namespace `lab`, not the host's.
/// let firewall = IptablesFirewall::new().in_netns("lab");
/// let rule = Rule::new(Family::Ipv4, Table::Filter, "INPUT", ["-s", "10.0.0.0/8", "-j", "ACCEPT"]);
/// let added = firewall.apply(&[rule]).await?;
/// firewall.remove(&added).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct IptablesFirewall {
    prefix: Vec<String>,
    iptables: String,
    ip6tables: String,
    timeout: Duration,
}

impl Default for IptablesFirewall {
    fn default() -> Self {
        IptablesFirewall::new()
    }
}

impl IptablesFirewall {
    /// Runs `iptables` and `ip6tables` from `PATH`, with no prefix and a 10 s deadline.
    pub fn new() -> Self {
        IptablesFirewall {
            prefix: Vec::new(),
            iptables: "iptables".into(),
            ip6tables: "ip6tables".into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Runs every command behind `prefix` (for example `["nsenter", "--net=/run/netns/lab"]`).
    pub fn with_prefix<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefix = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// Runs every command inside the named network namespace (`ip netns exec <name> ...`).
    pub fn in_netns(self, name: &str) -> Self {
        self.with_prefix(["ip", "netns", "exec", name])
    }

    /// Uses other programs for the two families (paths or names on `PATH`).
    pub fn with_programs(
        mut self,
        iptables: impl Into<String>,
        ip6tables: impl Into<String>,
    ) -> Self {
        self.iptables = iptables.into();
        self.ip6tables = ip6tables.into();
        self
    }

    /// The deadline for one command (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn program(&self, family: Family) -> &str {
        match family {
            Family::Ipv4 => &self.iptables,
            Family::Ipv6 => &self.ip6tables,
        }
    }

    /// The full argv: prefix, program, `-w <secs>`, `-t <table>`, then `args`.
    fn argv(&self, family: Family, table: Table, args: &[&str]) -> Vec<String> {
        let wait = self.timeout.as_secs().max(1).to_string();
        let mut argv = self.prefix.clone();
        argv.push(self.program(family).to_owned());
        argv.extend([
            "-w".to_owned(),
            wait,
            "-t".to_owned(),
            table.as_str().to_owned(),
        ]);
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    fn rule_argv(&self, rule: &Rule, command: &str, at: Option<u32>) -> Vec<String> {
        let at = at.map(|n| n.to_string());
        let mut args: Vec<&str> = vec![command, &rule.chain];
        if let Some(at) = &at {
            args.push(at);
        }
        args.extend(rule.spec.iter().map(String::as_str));
        self.argv(rule.family, rule.table, &args)
    }

    async fn run(&self, argv: &[String]) -> Result<Outcome> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::invalid("empty command"))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(program, e))?;
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => Ok(Outcome::from(output)),
            Ok(Err(e)) => Err(Error::from(e).with_context("command", argv.join(" "))),
            Err(_) => Err(timeout_error(argv, self.timeout)),
        }
    }
}

/// A finished command: exit code and standard error.
struct Outcome {
    code: Option<i32>,
    stderr: String,
}

impl From<std::process::Output> for Outcome {
    fn from(output: std::process::Output) -> Self {
        Outcome {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
    }
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// `-C`/`-D` found no such rule (exit 1 with iptables' own message for that).
    fn no_such_rule(&self) -> bool {
        self.code == Some(1) && self.stderr.contains(NO_SUCH_RULE)
    }

    fn error(&self, what: &str, argv: &[String]) -> Error {
        let kind = match self.code {
            Some(2) => ErrorKind::InvalidInput,
            Some(4) => ErrorKind::Unavailable,
            _ => ErrorKind::Backend,
        };
        let status = self.code.map_or_else(
            || "was killed by a signal".to_owned(),
            |c| format!("exited with {c}"),
        );
        Error::new(
            kind,
            format!("{what}: the command {status}: {}", self.stderr),
        )
        .with_context("command", argv.join(" "))
    }
}

fn spawn_error(program: &str, e: std::io::Error) -> Error {
    let kind = if e.kind() == std::io::ErrorKind::NotFound {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Backend
    };
    Error::new(
        kind,
        format!("could not run `{program}` (is it installed and on PATH?)"),
    )
    .with_context("program", program)
    .with_source(e)
    .set_temporary(false)
}

fn timeout_error(argv: &[String], timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the command did not finish within {timeout:?}"),
    )
    .with_context("command", argv.join(" "))
}

#[async_trait]
impl Firewall for IptablesFirewall {
    fn chain_exists(&self, family: Family, table: Table, chain: &str) -> Result<bool> {
        let argv = self.argv(family, table, &["-S", chain]);
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::invalid("empty command"))?;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| spawn_error(program, e))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(timeout_error(&argv, self.timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    async fn contains(&self, rule: &Rule) -> Result<bool> {
        let argv = self.rule_argv(rule, "-C", None);
        let outcome = self.run(&argv).await?;
        if outcome.ok() {
            Ok(true)
        } else if outcome.no_such_rule() {
            Ok(false)
        } else {
            Err(outcome.error("could not check for a rule", &argv))
        }
    }

    async fn add(&self, rule: &Rule, at: Option<u32>) -> Result<()> {
        let command = if at.is_some() { "-I" } else { "-A" };
        let argv = self.rule_argv(rule, command, at);
        let outcome = self.run(&argv).await?;
        if outcome.ok() {
            Ok(())
        } else {
            Err(outcome.error("could not add a rule", &argv))
        }
    }

    async fn delete(&self, rule: &Rule) -> Result<bool> {
        let argv = self.rule_argv(rule, "-D", None);
        let outcome = self.run(&argv).await?;
        if outcome.ok() {
            Ok(true)
        } else if outcome.no_such_rule() {
            Ok(false)
        } else {
            Err(outcome.error("could not delete a rule", &argv))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_has_prefix_lock_wait_table_and_position() {
        let fw = IptablesFirewall::new()
            .in_netns("lab")
            .with_timeout(Duration::from_secs(3));
        let rule = Rule::new(
            Family::Ipv6,
            Table::Nat,
            "PRE",
            ["-p", "tcp", "-j", "RETURN"],
        );
        assert_eq!(
            fw.rule_argv(&rule, "-I", Some(2)).join(" "),
            "ip netns exec lab ip6tables -w 3 -t nat -I PRE 2 -p tcp -j RETURN"
        );
        assert_eq!(
            fw.rule_argv(&rule, "-C", None).join(" "),
            "ip netns exec lab ip6tables -w 3 -t nat -C PRE -p tcp -j RETURN"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_unavailable_and_named() {
        let fw = IptablesFirewall::new()
            .with_programs("/nonexistent/iptables", "/nonexistent/ip6tables");
        let rule = Rule::new(Family::Ipv4, Table::Filter, "INPUT", ["-j", "ACCEPT"]);
        let err = fw.contains(&rule).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.context_value("program"), Some("/nonexistent/iptables"));
        let err = fw
            .chain_exists(Family::Ipv4, Table::Filter, "INPUT")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
