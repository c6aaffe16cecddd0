//! What `/proc` says about a process: whether the pid still names the process we started, and
//! what a process group uses.

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

/// What the live processes of one process group use, summed from `/proc/<pid>/stat` and
/// `/proc/<pid>/io` (see proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct GroupUsage {
    /// Processes in the group.
    pub(crate) processes: u64,
    /// Their threads.
    pub(crate) threads: u64,
    /// User time, in clock ticks.
    pub(crate) user_ticks: u64,
    /// System time, in clock ticks.
    pub(crate) system_ticks: u64,
    /// Resident set, in pages.
    pub(crate) rss_pages: u64,
    /// Bytes read from and written to storage, where `/proc/<pid>/io` was readable.
    pub(crate) io: Option<(u64, u64)>,
}

/// The usage of process group `pgid`: every process of `/proc` whose group it is. Processes
/// that exit while the table is read are skipped.
pub(crate) fn group_usage(pgid: u32) -> GroupUsage {
    let mut usage = GroupUsage::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return usage;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(process) = parse_usage(&text).filter(|p| p.pgrp == pgid) else {
            continue;
        };
        usage.processes += 1;
        usage.threads += process.threads;
        usage.user_ticks += process.utime;
        usage.system_ticks += process.stime;
        usage.rss_pages += process.rss;
        if let Some((read, write)) = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|io| parse_io(&io))
        {
            let (r, w) = usage.io.unwrap_or_default();
            usage.io = Some((r + read, w + write));
        }
    }
    usage
}

/// The figures of one `/proc/<pid>/stat` that [`group_usage`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessUsage {
    pgrp: u32,
    utime: u64,
    stime: u64,
    threads: u64,
    rss: u64,
}

/// Fields counted from the last `)`: field 3 (state) is the first after it, so field `n` of
/// proc(5) is at index `n - 3`: pgrp 5, utime 14, stime 15, num_threads 20, rss 24.
fn parse_usage(text: &str) -> Option<ProcessUsage> {
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcessUsage {
        pgrp: u32::try_from(field(5)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        rss: field(24)?,
    })
}

/// `read_bytes` and `write_bytes` of `/proc/<pid>/io`: what reached the storage layer.
fn parse_io(text: &str) -> Option<(u64, u64)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    Some((value("read_bytes:")?, value("write_bytes:")?))
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
    fn usage_fields_are_counted_from_the_name_and_io_needs_both_figures() {
        // pid (name) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss
        let text = "7 (a b) S 1 42 42 0 -1 0 0 0 0 0 150 25 0 0 20 0 3 0 999 4096 321 0";
        assert_eq!(
            parse_usage(text),
            Some(ProcessUsage {
                pgrp: 42,
                utime: 150,
                stime: 25,
                threads: 3,
                rss: 321
            })
        );
        assert_eq!(parse_usage("7 (x) S 1"), None);
        let io = "rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 8192\n";
        assert_eq!(parse_io(io), Some((4096, 8192)));
        assert_eq!(parse_io("rchar: 10\n"), None);
    }

    #[test]
    fn our_own_group_is_found_with_at_least_this_process() {
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        let usage = group_usage(pgid);
        assert!(usage.processes >= 1 && usage.threads >= 1, "{usage:?}");
        assert!(usage.rss_pages > 0, "{usage:?}");
        assert_eq!(group_usage(u32::MAX).processes, 0);
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
