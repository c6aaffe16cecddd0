//! What `/proc` says about a process: whether the pid still names the process we started.

use std::path::Path;

/// A process's identity: its pid and its start time, in clock ticks after boot, from
/// `/proc/<pid>/stat`. A pid can be reused once its process has gone; the pair cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessIdentity {
    pub(crate) pid: u32,
    pub(crate) start_ticks: u64,
}

/// How `/proc` sees a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The pid runs the process we recorded.
    Alive,
    /// It has exited (it is gone, a zombie, or the pid now belongs to another process).
    Gone,
}

/// Reads the start time and state of `pid`; `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<(u64, char)> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/<pid>/stat`: the command name (field 2) is in parentheses and may hold spaces
/// or parentheses itself, so fields are counted from the last `)`. The state is field 3 and the
/// start time field 22.
fn parse_stat(text: &str) -> Option<(u64, char)> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some((start_ticks, state))
}

impl ProcessIdentity {
    /// The identity of the running process `pid`.
    pub(crate) fn of(pid: u32) -> Option<Self> {
        stat(pid).map(|(start_ticks, _)| ProcessIdentity { pid, start_ticks })
    }

    /// Whether the pid still names this process, running or a zombie not yet reaped.
    pub(crate) fn exists(&self) -> bool {
        stat(self.pid).is_some_and(|(ticks, _)| ticks == self.start_ticks)
    }

    /// Whether the process still runs: same pid, same start time, not a zombie.
    pub(crate) fn liveness(&self) -> Liveness {
        match stat(self.pid) {
            Some((ticks, state))
                if ticks == self.start_ticks && !matches!(state, 'Z' | 'X' | 'x') =>
            {
                Liveness::Alive
            }
            _ => Liveness::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(text), Some((987654, 'S')));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) R 1 2"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessIdentity::of(std::process::id()).unwrap();
        assert_eq!(me.liveness(), Liveness::Alive);
        let impostor = ProcessIdentity {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert_eq!(impostor.liveness(), Liveness::Gone);
    }
}
