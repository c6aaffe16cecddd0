//! What a fake pod does: when it starts, when it exits, how it answers TERM, what it prints and
//! how it answers exec. Tests choose it per pod, or for every pod.

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
}

impl fmt::Debug for PodScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodScript")
            .field("start_after", &self.start_after)
            .field("exit_after", &self.exit_after)
            .field("on_term", &self.on_term)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl Default for PodScript {
    /// Starts at once, runs until stopped, exits 143 on TERM, prints nothing, and runs exec'd
    /// commands with [`simulate_command`].
    fn default() -> Self {
        PodScript {
            start_after: Some(Duration::ZERO),
            exit_after: None,
            on_term: OnTerm::Exit(143),
            output: String::new(),
            exec: Arc::new(simulate_command),
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

    /// The script a pod's own command asks for, read the way a shell would run a few
    /// busybox-style programs: `sleep N`, `true`, `false`, `exit N`, `echo ...` (also inside
    /// `sh -c '...'`, joined with `;` or `&&`), and a `trap '' TERM` that makes it ignore TERM.
    /// Anything else runs until stopped.
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
                ["trap", _, "TERM"] | ["trap", _, "TERM", ..] | ["trap", _, "15"] => {
                    script.on_term = OnTerm::Ignore;
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
    fn exec_simulation_answers_like_a_shell() {
        assert_eq!(simulate_command(&argv(&["true"])).code, 0);
        assert_eq!(simulate_command(&argv(&["false"])).code, 1);
        assert_eq!(simulate_command(&argv(&["echo", "ok"])).stdout, "ok\n");
        assert_eq!(simulate_command(&argv(&["nonesuch"])).code, 127);
    }
}
