//! The command line, parsed as a Mesos agent and go-mesos-executor write it: `--name=value`
//! and `--name value`, booleans bare (`--quiet`) or with a value (`--quiet=false`).
//!
//! The agent passes the Docker executor its whole flag set (apache/mesos
//! `src/slave/containerizer/docker.cpp`; the flags of `src/docker/executor.hpp`,
//! `src/logging/flags.hpp` and stout's `FlagsBase`, whose `help` the agent writes as
//! `--help=false`). go-mesos-executor adds its own (`main.go`, cobra/pflag).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--name`, `--name=true|false` (never the next argument, as pflag and stout read them).
    Bool,
    /// `--name=value` or `--name value`.
    Value,
}

/// Every flag: its name, what it takes, and what it is for (the usage text).
const FLAGS: &[(&str, Kind, &str)] = &[
    // The agent's Docker executor flags.
    (
        "container",
        Kind::Value,
        "the container name; the owner id of this executor's containers",
    ),
    (
        "docker",
        Kind::Value,
        "the docker program (not used: hoist speaks the Engine API)",
    ),
    ("docker_socket", Kind::Value, "the Docker Engine's socket"),
    (
        "sandbox_directory",
        Kind::Value,
        "the sandbox, mounted into every task at --mapped_directory",
    ),
    (
        "mapped_directory",
        Kind::Value,
        "where the sandbox appears in the task's container",
    ),
    (
        "stop_timeout",
        Kind::Value,
        "kill grace of tasks without a kill policy (`10secs`, `0ns`)",
    ),
    (
        "launcher_dir",
        Kind::Value,
        "where Mesos's programs are (not used)",
    ),
    (
        "task_environment",
        Kind::Value,
        "a JSON object of variables added to every task",
    ),
    (
        "default_container_dns",
        Kind::Value,
        "default DNS of containers (not used)",
    ),
    (
        "cgroups_enable_cfs",
        Kind::Bool,
        "CPU hard limits (the process backend's policy decides)",
    ),
    ("quiet", Kind::Bool, "no logging to standard error"),
    (
        "logging_level",
        Kind::Value,
        "INFO, WARNING or ERROR (RUST_LOG and `debug` decide)",
    ),
    (
        "log_dir",
        Kind::Value,
        "a log folder (not used: logs go to standard error)",
    ),
    ("logbufsecs", Kind::Value, "log buffering (not used)"),
    (
        "initialize_driver_logging",
        Kind::Bool,
        "(not used by the HTTP executor API)",
    ),
    ("external_log_file", Kind::Value, "(not used)"),
    (
        "help",
        Kind::Bool,
        "print this text and exit 0 (`--help=false` is ignored)",
    ),
    ("version", Kind::Bool, "print the version and exit 0"),
    // go-mesos-executor's flags; they override the configuration file.
    (
        "debug",
        Kind::Bool,
        "debug logging (default true, as go-mesos-executor)",
    ),
    ("hooks", Kind::Value, "the hooks to run, comma-separated"),
    (
        "proc_path",
        Kind::Value,
        "where the host's /proc is mounted",
    ),
    (
        "registering_retry",
        Kind::Value,
        "(accepted; the agent's MESOS_SUBSCRIPTION_BACKOFF_MAX is used)",
    ),
    (
        "docker_exec_poll_interval",
        Kind::Value,
        "(accepted; exec waits for the command's exit)",
    ),
    // hoist's own.
    (
        "containerizer",
        Kind::Value,
        "docker (default), process or sandbox",
    ),
    (
        "metrics_address",
        Kind::Value,
        "serve Prometheus metrics on http://ADDRESS:PORT/metrics (off by default)",
    ),
];

/// The flags the program reads but does not act on, reported once at start-up.
const NOT_USED: &[&str] = &[
    "docker",
    "launcher_dir",
    "default_container_dns",
    "cgroups_enable_cfs",
    "logging_level",
    "log_dir",
    "logbufsecs",
    "initialize_driver_logging",
    "external_log_file",
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run with these flags.
    Run(Box<Flags>),
    /// Print the usage text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// The flags given.
#[derive(Debug, Default)]
pub struct Flags {
    pub container: Option<String>,
    pub docker_socket: Option<PathBuf>,
    pub stop_timeout: Option<Duration>,
    pub sandbox_directory: Option<PathBuf>,
    pub mapped_directory: Option<PathBuf>,
    pub task_environment: BTreeMap<String, String>,
    pub quiet: bool,
    pub metrics_address: Option<std::net::SocketAddr>,
    /// go-mesos-executor's flags, by name, with the value as given, for the configuration to
    /// read as overrides.
    pub overrides: BTreeMap<&'static str, String>,
    /// The flags given that change nothing, as written.
    pub not_used: Vec<String>,
}

/// The flags of go-mesos-executor's that override its configuration keys of the same name.
pub const CONFIG_FLAGS: &[&str] = &[
    "debug",
    "hooks",
    "proc_path",
    "registering_retry",
    "docker_exec_poll_interval",
    "containerizer",
];

/// Parses the arguments after the program's name. The error is one line naming the flag.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let body = arg.strip_prefix("--").ok_or_else(|| {
            format!("unexpected argument `{arg}` (flags start with --; see --help)")
        })?;
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (body, None),
        };
        let Some(&(name, kind, _)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
            return Err(format!("unknown flag `--{name}` (see --help)"));
        };
        let value = match (kind, inline) {
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Bool, Some(v)) => v,
            (Kind::Value, Some(v)) => v,
            (Kind::Value, None) => args
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?,
        };
        if kind == Kind::Bool {
            let on = parse_bool(&value)
                .ok_or_else(|| format!("--{name}={value}: expected true or false"))?;
            match name {
                "help" if on => return Ok(Parsed::Help),
                "version" if on => return Ok(Parsed::Version),
                "quiet" => flags.quiet = on,
                _ => {}
            }
        }
        match name {
            "help" | "version" | "quiet" => {}
            "container" => flags.container = Some(value),
            "docker_socket" => flags.docker_socket = Some(PathBuf::from(value)),
            "stop_timeout" => {
                let grace = hoist::mesos::env::parse_duration(&value)
                    .map_err(|e| format!("--stop_timeout={value}: {e}"))?;
                flags.stop_timeout = Some(grace);
            }
            "sandbox_directory" => flags.sandbox_directory = Some(PathBuf::from(value)),
            "metrics_address" => {
                let addr = value.parse().map_err(|_| {
                    format!("--metrics_address={value}: expected ADDRESS:PORT, as 127.0.0.1:9464")
                })?;
                flags.metrics_address = Some(addr);
            }
            "mapped_directory" => flags.mapped_directory = Some(PathBuf::from(value)),
            "task_environment" => {
                flags.task_environment = serde_json::from_str(&value).map_err(|e| {
                    format!("--task_environment is not a JSON object of strings: {e}")
                })?;
            }
            n if CONFIG_FLAGS.contains(&n) => {
                flags.overrides.insert(name, value);
            }
            n => {
                debug_assert!(NOT_USED.contains(&n));
                flags.not_used.push(format!("--{n}={value}"));
            }
        }
    }
    if flags.sandbox_directory.is_some() != flags.mapped_directory.is_some() {
        return Err("--sandbox_directory and --mapped_directory go together".into());
    }
    Ok(Parsed::Run(Box::new(flags)))
}

/// A boolean as pflag (Go's `strconv.ParseBool`) and stout read one.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The usage text.
pub fn usage() -> String {
    let mut text = String::from(
        "hoist-mesos-executor: a drop-in for mesos-docker-executor and go-mesos-executor.\n\
         Install it at the agent's Docker executor path, or name it as a custom executor; it\n\
         reads MESOS_* from its environment, subscribes to the agent and runs its tasks.\n\n\
         Usage: hoist-mesos-executor [--name=value | --name value | --bool-flag]...\n\n\
         Flags:\n",
    );
    for (name, kind, help) in FLAGS {
        let shape = match kind {
            Kind::Bool => format!("--{name}"),
            Kind::Value => format!("--{name}=VALUE"),
        };
        text.push_str(&format!("  {shape:<34} {help}\n"));
    }
    text.push_str(
        "\nConfiguration: config.yaml, config.yml, config.json or config.toml in\n\
         /etc/mesos-executor, else in the working directory (the sandbox under an agent).\n\n\
         Exit codes: 0 after SHUTDOWN or SIGTERM (every task killed), 1 when the agent was lost\n\
         or did not come back in time, 2 for a bad flag, configuration or environment, 3 when\n\
         the backend (Docker, cgroups) cannot be used.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Flags, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(flags) => Ok(*flags),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn the_full_argv_of_a_mesos_agent_is_accepted() {
        let flags = run(&[
            "--container=mesos-abc",
            "--docker=docker",
            "--docker_socket=/var/run/docker.sock",
            "--help=false",
            "--initialize_driver_logging=true",
            "--launcher_dir=/usr/libexec/mesos",
            "--logbufsecs=0",
            "--logging_level=INFO",
            "--mapped_directory=/mnt/mesos/sandbox",
            "--quiet=false",
            "--sandbox_directory=/var/lib/mesos/slaves/x",
            "--stop_timeout=0ns",
            "--task_environment={\"A\":\"1\"}",
            "--cgroups_enable_cfs",
            "--external_log_file=/var/log/x",
        ])
        .unwrap();
        assert_eq!(flags.container.as_deref(), Some("mesos-abc"));
        assert_eq!(flags.stop_timeout, Some(Duration::ZERO));
        assert_eq!(
            flags.task_environment.get("A").map(String::as_str),
            Some("1")
        );
        assert!(!flags.quiet);
        assert_eq!(flags.not_used.len(), 7, "{:?}", flags.not_used);
        assert!(
            flags
                .not_used
                .contains(&"--cgroups_enable_cfs=true".to_owned())
        );
    }

    #[test]
    fn help_and_version() {
        for args in [
            &["--help"][..],
            &["--help=true"],
            &["--container=x", "--help"],
        ] {
            assert!(matches!(
                parse(args.iter().map(|s| s.to_string())),
                Ok(Parsed::Help)
            ));
        }
        assert!(matches!(
            parse(["--version".to_string()]),
            Ok(Parsed::Version)
        ));
        assert!(run(&["--help=false"]).is_ok());
        assert!(run(&["--help=maybe"]).unwrap_err().contains("--help=maybe"));
    }

    #[test]
    fn go_mesos_executor_flags_both_spellings() {
        let flags = run(&[
            "--debug",
            "--hooks",
            "removeContainer,netns",
            "--proc_path=/mnt/proc",
            "--registering_retry",
            "200ms",
            "--docker_exec_poll_interval=2s",
        ])
        .unwrap();
        assert_eq!(flags.overrides["debug"], "true");
        assert_eq!(flags.overrides["hooks"], "removeContainer,netns");
        assert_eq!(flags.overrides["proc_path"], "/mnt/proc");
        assert_eq!(flags.overrides["registering_retry"], "200ms");
        assert_eq!(flags.overrides["docker_exec_poll_interval"], "2s");
        let flags = run(&["--container", "mesos-1", "--debug=false"]).unwrap();
        assert_eq!(flags.container.as_deref(), Some("mesos-1"));
        assert_eq!(flags.overrides["debug"], "false");
    }

    #[test]
    fn bad_flags_are_one_line_naming_the_flag() {
        for (args, says) in [
            (&["--teleport=yes"][..], "unknown flag `--teleport`"),
            (&["teleport"], "unexpected argument `teleport`"),
            (&["--container"], "--container needs a value"),
            (&["--stop_timeout=10s"], "--stop_timeout=10s"),
            (&["--sandbox_directory=/x"], "--mapped_directory"),
            (&["--task_environment=[1]"], "--task_environment"),
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
