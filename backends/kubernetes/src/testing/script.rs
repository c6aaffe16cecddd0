//! What a fake pod does: when it starts, when it exits, how it answers TERM, what it prints and
//! how it answers exec. Tests choose it per pod, or for every pod.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// How a pod answers the TERM its deletion sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTerm {
    /// Exits at once with this code (143 is `128 + SIGTERM`).
    Exit(i32),
    /// Ignores TERM: the kubelet kills it (exit 137) once the grace period has passed.
    Ignore,
}

/// The answer of an exec: exit code and output, after an optional delay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecReply {
    /// The command's exit code.
    pub code: i32,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
    /// How long the command runs before answering.
    pub delay: Duration,
}

impl ExecReply {
    /// A reply with `code` and `stdout`, no delay.
    pub fn new(code: i32, stdout: impl Into<String>) -> Self {
        ExecReply {
            code,
            stdout: stdout.into(),
            ..ExecReply::default()
        }
    }
}

/// What a pod's main process does on a signal it has a handler for (a shell's `trap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trap {
    /// Nothing (`trap '' HUP`).
    Ignore,
    /// Prints a line and goes on (`trap 'echo hup' HUP`).
    Print(String),
    /// Exits with a code (`trap 'exit 0' TERM`).
    Exit(i32),
}

/// What metrics-server reports for a running pod's main container (`metrics.k8s.io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodUsage {
    /// CPU in use, in billionths of a core (`usage.cpu`, written `<n>n`).
    pub cpu_nanocores: u64,
    /// Working set, in bytes (`usage.memory`, written `<n>Ki`).
    pub memory_bytes: u64,
}

impl Default for PodUsage {
    /// One thousandth of a core and 1 MiB: an idle process.
    fn default() -> Self {
        PodUsage {
            cpu_nanocores: 1_000_000,
            memory_bytes: 1 << 20,
        }
    }
}

/// Answers exec requests with the command's argv.
pub type ExecHandler = Arc<dyn Fn(&[String]) -> ExecReply + Send + Sync>;

/// What one fake pod does.
#[derive(Clone)]
pub struct PodScript {
    /// When the pod starts running after create; `None` keeps it pending until the test moves it.
    pub start_after: Option<Duration>,
    /// When it exits on its own after starting, and with which code; `None` runs until stopped.
    pub exit_after: Option<(Duration, i32)>,
    /// How it answers TERM.
    pub on_term: OnTerm,
    /// What it prints once running.
    pub output: String,
    /// How it answers exec.
    pub exec: ExecHandler,
    /// What its main process does on the signals it handles, by number. A `kill` exec'd in
    /// the pod against process 1 delivers to it; a signal without an entry does nothing (the
    /// kernel drops a signal without a handler sent to a namespace's init), except KILL.
    pub traps: BTreeMap<i32, Trap>,
    /// What `metrics.k8s.io` reports while it runs; `None` answers 404, as metrics-server does
    /// for a pod it has no sample of yet.
    pub usage: Option<PodUsage>,
}

impl fmt::Debug for PodScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodScript")
            .field("start_after", &self.start_after)
            .field("exit_after", &self.exit_after)
            .field("on_term", &self.on_term)
            .field("output", &self.output)
            .field("traps", &self.traps)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl Default for PodScript {
    /// Starts at once, runs until stopped, exits 143 on TERM, prints nothing, handles no other
    /// signal, reports [`PodUsage::default`], and runs exec'd commands with
    /// [`simulate_command`].
    fn default() -> Self {
        PodScript {
            start_after: Some(Duration::ZERO),
            exit_after: None,
            on_term: OnTerm::Exit(143),
            output: String::new(),
            exec: Arc::new(simulate_command),
            traps: BTreeMap::new(),
            usage: Some(PodUsage::default()),
        }
    }
}

impl PodScript {
    /// Stays pending until the test moves it.
    pub fn pending(mut self) -> Self {
        self.start_after = None;
        self
    }

    /// Exits with `code` `after` starting.
    pub fn exits(mut self, after: Duration, code: i32) -> Self {
        self.exit_after = Some((after, code));
        self
    }

    /// Answers TERM as `on_term` says.
    pub fn on_term(mut self, on_term: OnTerm) -> Self {
        self.on_term = on_term;
        self
    }

    /// Prints `output` once running.
    pub fn prints(mut self, output: impl Into<String>) -> Self {
        self.output = output.into();
        self
    }

    /// Answers exec with `handler`.
    pub fn exec(
        mut self,
        handler: impl Fn(&[String]) -> ExecReply + Send + Sync + 'static,
    ) -> Self {
        self.exec = Arc::new(handler);
        self
    }

    /// Reports `usage` to `metrics.k8s.io` (`None`: no sample).
    pub fn uses(mut self, usage: Option<PodUsage>) -> Self {
        self.usage = usage;
        self
    }

    /// The script a pod's own command asks for, read the way a shell would run a few
    /// busybox-style programs: `sleep N`, `true`, `false`, `exit N`, `echo ...` (also inside
    /// `sh -c '...'`, joined with `;` or `&&`), and `trap ACTION SIGNAL...` with an empty
    /// action, `echo TEXT` or `exit N` (`trap '' TERM` ignores TERM). Anything else runs until
    /// stopped.
    pub fn from_command(argv: &[String]) -> Self {
        let mut script = PodScript::default();
        let text = match argv {
            [sh, flag, body, ..] if sh.ends_with("sh") && flag == "-c" => body.clone(),
            _ => shell_join(argv),
        };
        let mut elapsed = Duration::ZERO;
        let mut output = String::new();
        let mut exit = None;
        for step in text.split([';', '\n']).flat_map(|s| s.split("&&")) {
            let mut words: Vec<&str> = step.split_whitespace().collect();
            if words.first() == Some(&"exec") {
                words.remove(0);
            }
            match words.as_slice() {
                [] => {}
                ["trap", ..] => {
                    for (signal, trap) in parse_trap(step) {
                        if signal == SIGTERM {
                            script.on_term = match trap {
                                Trap::Exit(code) => OnTerm::Exit(code),
                                Trap::Ignore | Trap::Print(_) => OnTerm::Ignore,
                            };
                        }
                        script.traps.insert(signal, trap);
                    }
                }
                [prog, seconds] if prog.ends_with("sleep") => {
                    if *seconds == "infinity" {
                        break;
                    }
                    elapsed += seconds
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .unwrap_or_default();
                }
                [prog] if prog.ends_with("true") => exit = Some(0),
                [prog] if prog.ends_with("false") => {
                    exit = Some(1);
                    break;
                }
                ["exit", code] => {
                    exit = Some(code.parse().unwrap_or(2));
                    break;
                }
                [prog, rest @ ..] if prog.ends_with("echo") => {
                    output.push_str(&unquote(&rest.join(" ")));
                    output.push('\n');
                    exit = Some(0);
                }
                _ => {
                    exit = None;
                    break;
                }
            }
        }
        script.output = output;
        let last_is_sleep_forever = text.contains("sleep infinity");
        let code = exit.or(if elapsed.is_zero() { None } else { Some(0) });
        if let (false, Some(code)) = (last_is_sleep_forever, code) {
            script.exit_after = Some((elapsed, code));
        }
        script
    }
}

/// How the default exec handler runs a command: `true` → 0, `false` → 1, `exit N` → N,
/// `echo ...` → 0 with the text, `sleep N` → 0 after N seconds; anything else → 127
/// (command not found).
pub fn simulate_command(argv: &[String]) -> ExecReply {
    let script = PodScript::from_command(argv);
    match script.exit_after {
        Some((delay, code)) => ExecReply {
            code,
            stdout: script.output,
            stderr: String::new(),
            delay,
        },
        None => ExecReply {
            code: 127,
            stdout: String::new(),
            stderr: format!(
                "{}: not found\n",
                argv.first().map(String::as_str).unwrap_or("")
            ),
            delay: Duration::ZERO,
        },
    }
}

const SIGTERM: i32 = 15;

/// The signal a name (`HUP`, `SIGHUP`) or number stands for.
pub(crate) fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim_start_matches('-');
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = name.strip_prefix("SIG").unwrap_or(name);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        _ => return None,
    })
}

/// The handlers `trap ACTION SIGNAL...` installs (ACTION quoted or one word).
fn parse_trap(step: &str) -> Vec<(i32, Trap)> {
    let rest = step.trim().trim_start_matches("trap").trim_start();
    let (action, signals) = match rest.chars().next() {
        Some(quote @ ('\'' | '"')) => match rest[1..].find(quote) {
            Some(end) => (&rest[1..=end], &rest[end + 2..]),
            None => return Vec::new(),
        },
        _ => rest.split_once(' ').unwrap_or((rest, "")),
    };
    let words: Vec<&str> = action.split_whitespace().collect();
    let trap = match words.as_slice() {
        [] => Trap::Ignore,
        ["exit", code] => Trap::Exit(code.parse().unwrap_or(0)),
        ["exit"] => Trap::Exit(0),
        [prog, text @ ..] if prog.ends_with("echo") => Trap::Print(format!("{}\n", text.join(" "))),
        _ => Trap::Ignore,
    };
    signals
        .split_whitespace()
        .filter_map(signal_number)
        .map(|n| (n, trap.clone()))
        .collect()
}

fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn unquote(text: &str) -> String {
    text.trim_matches(|c| c == '\'' || c == '"').to_owned()
}

/// Chooses the script of each new pod.
pub type ScriptFn = Arc<dyn Fn(&Pod) -> PodScript + Send + Sync>;

/// Picks scripts: by pod name prefix first, then the default function.
pub(crate) struct Scripter {
    pub(crate) by_prefix: Vec<(String, PodScript)>,
    pub(crate) default: ScriptFn,
}

impl Default for Scripter {
    fn default() -> Self {
        Scripter {
            by_prefix: Vec::new(),
            default: Arc::new(|pod: &Pod| {
                let argv: Vec<String> = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .map(|c| {
                        c.command
                            .iter()
                            .flatten()
                            .chain(c.args.iter().flatten())
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                PodScript::from_command(&argv)
            }),
        }
    }
}

impl Scripter {
    pub(crate) fn script_for(&self, pod: &Pod) -> PodScript {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.as_ref();
        for (prefix, script) in &self.by_prefix {
            let task = labels.and_then(|l| l.get(hoist_core::labels::TASK_ID));
            if name.starts_with(prefix.as_str())
                || task.is_some_and(|t| t.starts_with(prefix.as_str()))
            {
                return script.clone();
            }
        }
        (self.default)(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn commands_become_scripts() {
        let s = PodScript::from_command(&argv(&["sh", "-c", "echo hi; exit 3"]));
        assert_eq!(s.exit_after, Some((Duration::ZERO, 3)));
        assert_eq!(s.output, "hi\n");
        let s = PodScript::from_command(&argv(&["sleep", "2"]));
        assert_eq!(s.exit_after, Some((Duration::from_secs(2), 0)));
        let s = PodScript::from_command(&argv(&["sh", "-c", "trap '' TERM; sleep infinity"]));
        assert_eq!(s.on_term, OnTerm::Ignore);
        assert_eq!(s.exit_after, None);
        let s = PodScript::from_command(&argv(&["sh", "-c", "echo up; exec sleep 1000"]));
        assert_eq!(s.exit_after, Some((Duration::from_secs(1000), 0)));
        let s = PodScript::from_command(&argv(&["/bin/server", "--port", "80"]));
        assert_eq!(s.exit_after, None);
        assert_eq!(s.on_term, OnTerm::Exit(143));
    }

    #[test]
    fn traps_become_handlers() {
        let s = PodScript::from_command(&argv(&[
            "sh",
            "-c",
            "trap 'echo hup' HUP USR1; echo ready; while true; do sleep 1; done",
        ]));
        assert_eq!(s.traps.get(&1), Some(&Trap::Print("hup\n".into())));
        assert_eq!(s.traps.get(&10), Some(&Trap::Print("hup\n".into())));
        assert_eq!(s.output, "ready\n");
        assert_eq!(s.exit_after, None);
        let s = PodScript::from_command(&argv(&["sh", "-c", "trap 'exit 0' TERM; sleep 5"]));
        assert_eq!(s.on_term, OnTerm::Exit(0));
        let s = PodScript::from_command(&argv(&["sh", "-c", "trap '' SIGINT 15; sleep 5"]));
        assert_eq!(s.traps.get(&2), Some(&Trap::Ignore));
        assert_eq!(s.on_term, OnTerm::Ignore);
        assert_eq!(signal_number("bogus"), None);
        assert_eq!(signal_number("99"), None);
    }

    #[test]
    fn exec_simulation_answers_like_a_shell() {
        assert_eq!(simulate_command(&argv(&["true"])).code, 0);
        assert_eq!(simulate_command(&argv(&["false"])).code, 1);
        assert_eq!(simulate_command(&argv(&["echo", "ok"])).stdout, "ok\n");
        assert_eq!(simulate_command(&argv(&["nonesuch"])).code, 127);
    }
}
