//! A cgroup v2's usage, read from its files (`cpu.stat`, `memory.current`, `memory.max`,
//! `memory.stat`, `pids.current`, `io.stat`, ...) into [`Stats`], whose JSON has the keys of
//! `opencontainers/cgroups`' `Stats`, which `apptainer instance stats --json` prints.
//!
//! Read-only; a controller that is not enabled leaves its part at zero.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    pub throttling_data: ThrottlingData,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total_usage: u64,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThrottlingData {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryData,
    /// Memory plus swap, as cgroup v1 reported it.
    pub swap_usage: MemoryData,
    #[serde(skip_serializing_if = "is_zero")]
    pub swap_only_usage: u64,
    pub use_hierarchy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryData {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    pub failcnt: u64,
    /// `u64::MAX` for no limit.
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 for no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl BlkioStats {
    /// Bytes read and written, summed over the devices.
    pub fn read_write(&self) -> (u64, u64) {
        let sum = |op: &str| {
            self.io_service_bytes_recursive
                .iter()
                .filter(|e| e.op.eq_ignore_ascii_case(op))
                .map(|e| e.value)
                .sum()
        };
        (sum("read"), sum("write"))
    }
}

/// `KEY VALUE` lines (`cpu.stat`, `memory.stat`, `memory.events`).
fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A single value, `max` as `max`.
fn single(text: &str, max: u64) -> u64 {
    match text.trim() {
        "max" => max,
        t => t.parse().unwrap_or(0),
    }
}

/// The stats of the cgroup directory `dir` from its files' texts, read by `read` (a file that
/// cannot be read is empty).
pub fn parse(read: impl Fn(&str) -> String) -> Stats {
    let mut s = Stats::default();
    let cpu = flat_keyed(&read("cpu.stat"));
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    s.cpu_stats.cpu_usage = CpuUsage {
        total_usage: get(&cpu, "usage_usec") * 1000,
        usage_in_kernelmode: get(&cpu, "system_usec") * 1000,
        usage_in_usermode: get(&cpu, "user_usec") * 1000,
    };
    s.cpu_stats.throttling_data = ThrottlingData {
        periods: get(&cpu, "nr_periods"),
        throttled_periods: get(&cpu, "nr_throttled"),
        throttled_time: get(&cpu, "throttled_usec") * 1000,
    };
    let stat = flat_keyed(&read("memory.stat"));
    let events = flat_keyed(&read("memory.events"));
    let usage = MemoryData {
        usage: single(&read("memory.current"), 0),
        max_usage: single(&read("memory.peak"), 0),
        failcnt: get(&events, "max"),
        limit: single(&read("memory.max"), u64::MAX),
    };
    let swap_only = single(&read("memory.swap.current"), 0);
    let swap_limit = single(&read("memory.swap.max"), u64::MAX);
    let swap_usage = MemoryData {
        usage: swap_only + usage.usage,
        max_usage: single(&read("memory.swap.peak"), 0) + usage.max_usage,
        failcnt: 0,
        limit: if swap_limit == u64::MAX || usage.limit == u64::MAX {
            u64::MAX
        } else {
            swap_limit + usage.limit
        },
    };
    s.memory_stats = MemoryStats {
        cache: get(&stat, "file"),
        usage,
        swap_usage,
        swap_only_usage: swap_only,
        use_hierarchy: true,
        stats: stat,
    };
    s.pids_stats = PidsStats {
        current: single(&read("pids.current"), 0),
        limit: single(&read("pids.max"), 0),
    };
    for line in read("io.stat").lines() {
        let mut words = line.split_whitespace();
        let Some((major, minor)) = words.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (major, minor) = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0));
        for kv in words {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio_stats.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio_stats.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio_stats.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio_stats.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: v.parse().unwrap_or(0),
            });
        }
    }
    s
}

/// The stats of the cgroup at `dir` (a host path).
pub fn read(dir: &Path) -> Stats {
    parse(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_files_read_as_apptainer_s_stats() {
        let files: BTreeMap<&str, &str> = [
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n"),
            ("memory.current", "1048576\n"),
            ("memory.max", "262144000\n"),
            ("memory.stat", "anon 4096\nfile 8192\n"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 0\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"),
        ]
        .into();
        let s = parse(|f| files.get(f).copied().unwrap_or_default().to_string());
        assert_eq!(s.cpu_stats.cpu_usage.total_usage, 1_500_000);
        assert_eq!(s.cpu_stats.throttling_data.throttled_time, 7000);
        assert_eq!(s.memory_stats.usage.limit, 262_144_000);
        assert_eq!(s.memory_stats.usage.failcnt, 2);
        assert_eq!(s.memory_stats.cache, 8192);
        assert_eq!(s.memory_stats.swap_usage.limit, u64::MAX);
        assert_eq!(s.pids_stats.current, 3);
        assert_eq!(s.pids_stats.limit, 0);
        assert_eq!(s.blkio_stats.read_write(), (4096, 8192));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["cpu_stats"]["cpu_usage"]["total_usage"], 1_500_000);
        assert_eq!(json["memory_stats"]["usage"]["limit"], 262_144_000u64);
        assert_eq!(json["pids_stats"]["current"], 3);
        assert_eq!(
            json["blkio_stats"]["io_service_bytes_recursive"][1]["op"],
            "Write"
        );
    }

    #[test]
    fn a_cgroup_without_controllers_reads_as_zero_with_no_limit() {
        let s = parse(|_| String::new());
        assert_eq!(s.memory_stats.usage.usage, 0);
        assert_eq!(s.memory_stats.usage.limit, 0);
        assert_eq!(s.pids_stats, PidsStats::default());
    }
}
