//! Resource usage of a container: what [`Containerizer::stats`](crate::Containerizer::stats)
//! streams.

use std::time::{Duration, SystemTime};

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A stream of usage samples, one per interval, ending when the container has exited.
pub type UsageStream = BoxStream<'static, Result<ResourceUsage>>;

/// One sample of a container's resource usage. Every figure is an `Option`: `None` means the
/// backend did not measure it ([`ResourceUsage::measured`] lists what it did).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceUsage {
    /// When the sample was taken.
    pub time: Option<SystemTime>,
    /// CPU.
    pub cpu: CpuUsage,
    /// Memory.
    pub memory: MemoryUsage,
    /// Processes (and threads) in the container.
    pub pids: Option<u64>,
    /// Network traffic, where the container has a network of its own.
    pub network: Option<NetworkUsage>,
    /// Block devices.
    pub block_io: Option<BlockIoUsage>,
}

/// CPU time, cumulative since the container started, and its share of one core.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CpuUsage {
    /// Time in user mode.
    pub user: Option<Duration>,
    /// Time in kernel mode.
    pub system: Option<Duration>,
    /// User and kernel time together.
    pub total: Option<Duration>,
    /// Scheduling periods in which the container was throttled by its CPU quota.
    pub throttled_periods: Option<u64>,
    /// Time it was throttled.
    pub throttled_time: Option<Duration>,
    /// CPU time since the previous sample over the wall time between them, in percent of one
    /// core (200 is two cores busy). `None` on the first sample.
    pub percent: Option<f64>,
}

/// Memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryUsage {
    /// Resident anonymous memory.
    pub rss: Option<u64>,
    /// Page cache charged to the container.
    pub cache: Option<u64>,
    /// Usage as its memory limit counts it.
    pub usage: Option<u64>,
    /// The highest usage seen.
    pub max_usage: Option<u64>,
    /// Swap in use.
    pub swap: Option<u64>,
}

/// Network traffic, cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetworkUsage {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// Block I/O, cumulative bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BlockIoUsage {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
}

impl NetworkUsage {
    /// Traffic with every figure given.
    pub fn new(rx_bytes: u64, tx_bytes: u64, rx_packets: u64, tx_packets: u64) -> Self {
        NetworkUsage {
            rx_bytes,
            tx_bytes,
            rx_packets,
            tx_packets,
        }
    }
}

impl BlockIoUsage {
    /// Block I/O with both figures given.
    pub fn new(read_bytes: u64, write_bytes: u64) -> Self {
        BlockIoUsage {
            read_bytes,
            write_bytes,
        }
    }
}

impl ResourceUsage {
    /// An empty sample taken now; backends fill in what they measure.
    pub fn now() -> Self {
        ResourceUsage {
            time: Some(SystemTime::now()),
            ..ResourceUsage::default()
        }
    }

    /// The names of the figures this sample has (`cpu.total`, `memory.rss`, `pids`...), as Nomad's
    /// TaskStats says which fields it measured.
    pub fn measured(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut add = |present: bool, name: &'static str| {
            if present {
                names.push(name);
            }
        };
        let cpu = &self.cpu;
        add(cpu.user.is_some(), "cpu.user");
        add(cpu.system.is_some(), "cpu.system");
        add(cpu.total.is_some(), "cpu.total");
        add(cpu.throttled_periods.is_some(), "cpu.throttled_periods");
        add(cpu.throttled_time.is_some(), "cpu.throttled_time");
        add(cpu.percent.is_some(), "cpu.percent");
        let memory = &self.memory;
        add(memory.rss.is_some(), "memory.rss");
        add(memory.cache.is_some(), "memory.cache");
        add(memory.usage.is_some(), "memory.usage");
        add(memory.max_usage.is_some(), "memory.max_usage");
        add(memory.swap.is_some(), "memory.swap");
        add(self.pids.is_some(), "pids");
        add(self.network.is_some(), "network");
        add(self.block_io.is_some(), "block_io");
        names
    }

    /// Fills in `cpu.percent` from the CPU time and wall time elapsed since `previous`.
    pub fn with_percent_since(mut self, previous: &ResourceUsage) -> Self {
        if let (Some(now), Some(before), Some(t1), Some(t0)) =
            (self.cpu.total, previous.cpu.total, self.time, previous.time)
            && let Ok(wall) = t1.duration_since(t0)
            && !wall.is_zero()
        {
            let busy = now.saturating_sub(before);
            self.cpu.percent = Some(busy.as_secs_f64() / wall.as_secs_f64() * 100.0);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_cpu_time_over_wall_time_and_measured_names_the_fields() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut first = ResourceUsage {
            time: Some(t0),
            ..ResourceUsage::default()
        };
        first.cpu.total = Some(Duration::from_millis(500));
        let mut second = ResourceUsage {
            time: Some(t0 + Duration::from_secs(2)),
            ..ResourceUsage::default()
        };
        second.cpu.total = Some(Duration::from_millis(1500));
        second.memory.rss = Some(1 << 20);
        let second = second.with_percent_since(&first);
        assert_eq!(second.cpu.percent, Some(50.0));
        assert_eq!(
            second.measured(),
            ["cpu.total", "cpu.percent", "memory.rss"]
        );
        assert_eq!(
            first.with_percent_since(&second).cpu.percent,
            None,
            "time went backwards"
        );
    }
}
