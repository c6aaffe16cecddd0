//! The `process_*` metrics a Prometheus client library exposes for its own process, read from
//! `/proc/self` (Linux only; elsewhere there are none).
//!
//! Names and help texts are those of prometheus_client's `ProcessCollector` (the Kubeless
//! Python runtime's `/metrics`), which client_golang and prom-client share.

/// One reading of the process's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessSample {
    pub(crate) cpu_seconds: f64,
    pub(crate) start_time_seconds: f64,
    pub(crate) virtual_memory_bytes: f64,
    pub(crate) resident_memory_bytes: f64,
    pub(crate) open_fds: f64,
    pub(crate) max_fds: Option<f64>,
}

/// `(name, kind, help, value)` of each metric in `sample`; the counter's name lacks `_total`.
pub(crate) fn metrics(
    sample: &ProcessSample,
) -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let mut out = vec![
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            sample.virtual_memory_bytes,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            sample.resident_memory_bytes,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            sample.start_time_seconds,
        ),
        (
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds.",
            sample.cpu_seconds,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            sample.open_fds,
        ),
    ];
    if let Some(max) = sample.max_fds {
        out.push((
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        ));
    }
    out
}

/// Reads `/proc/self`; `None` where there is no procfs or it cannot be read.
#[cfg(target_os = "linux")]
pub(crate) fn sample() -> Option<ProcessSample> {
    // The ABI's clock tick (USER_HZ) is 100 on every Linux architecture, whatever the kernel's
    // internal HZ; page sizes vary, so memory comes from /proc/self/status in kB instead.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // stat(5) numbers fields from 1 with the pid; fields[0] here is field 3 (state).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let cpu_ticks = field(14)? + field(15)?;
    let start_ticks = field(22)?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|k| k * 1024.0)
    };
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
    Some(ProcessSample {
        cpu_seconds: cpu_ticks / TICKS_PER_SECOND,
        start_time_seconds: boot_time + start_ticks / TICKS_PER_SECOND,
        virtual_memory_bytes: kib("VmSize:").unwrap_or(0.0),
        resident_memory_bytes: kib("VmRSS:").unwrap_or(0.0),
        open_fds,
        max_fds,
    })
}

/// Reads `/proc/self`; `None` where there is no procfs.
#[cfg(not(target_os = "linux"))]
pub(crate) fn sample() -> Option<ProcessSample> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn this_process_is_read() {
        let sample = super::sample().expect("/proc/self is readable");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(sample.start_time_seconds > now - 3600.0 && sample.start_time_seconds <= now + 1.0);
        assert!(sample.resident_memory_bytes > 1e6, "{sample:?}");
        assert!(sample.virtual_memory_bytes >= sample.resident_memory_bytes);
        assert!(sample.open_fds >= 3.0);
        assert!(sample.max_fds.unwrap() >= sample.open_fds);
    }
}
