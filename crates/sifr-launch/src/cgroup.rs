//! cgroup resource limits of a launch, as Apptainer's: the limit flags (`--memory`, `--cpus`,
//! `--pids-limit`, ...) or a TOML file in the OCI `LinuxResources` layout (`--apply-cgroups`),
//! typed into [`Resources`], then mapped to the cgroup v2 interface files that carry them
//! ([`Limits`]: `memory.max`, `cpu.max`, `cpu.weight`, `pids.max`, `io.weight`, ...), the way
//! `opencontainers/cgroups` (Apptainer's manager) maps them.
//!
//! Parsing (here) and mapping (`map`) are pure and happen in [`crate::prepare`], so a bad value
//! is reported before anything starts; where the cgroup goes, its creation and its removal are
//! [`apply`]'s, at launch time. Stats of a running instance's cgroup are [`stats`]'s.
//!
//! Must not: print (warnings go through `tracing`), or touch cgroup v1.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub mod apply;
mod map;
pub mod stats;

pub use apply::{Active, Unavailable};
pub use map::{blkio_to_io_weight, limits, shares_to_weight};

/// The cgroup flags as given (text, typed here), one field of [`crate::Request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `--apply-cgroups FILE`.
    pub apply_cgroups: Option<PathBuf>,
    /// `--cpus`: a number of CPUs, fractions allowed.
    pub cpus: Option<String>,
    /// `--cpu-shares`: cgroup v1 shares (converted to `cpu.weight`).
    pub cpu_shares: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `--memory`, `--memory-reservation`, `--memory-swap`: sizes such as `500M`.
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub oom_kill_disable: bool,
    pub pids_limit: Option<String>,
    pub blkio_weight: Option<String>,
    /// `--blkio-weight-device DEVICE:WEIGHT`, repeatable.
    pub blkio_weight_device: Vec<String>,
}

/// A cgroup value that cannot be used, naming the flag or the file and key at fault.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid `--{flag}` value `{value}`: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot apply a cgroups TOML file while using limit flags")]
    FileAndFlags,
    #[error("cannot read the cgroups file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid cgroups file `{}`: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("invalid cgroups file `{}`: `{key}`: {reason}", path.display())]
    Value {
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

impl CgroupError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CgroupError::FileAndFlags => {
                Some("put every limit in the file, or give them all as flags".into())
            }
            CgroupError::Toml { .. } => Some(
                "the file is TOML in the OCI LinuxResources layout, e.g. `[memory]` then `limit = 1073741824`"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The OCI `LinuxResources` subset Apptainer reads from a TOML file, with its key names.
/// Unknown keys are ignored, as Apptainer's TOML decoder does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
    pub pids: Option<Pids>,
    #[serde(rename = "blockIO")]
    pub block_io: Option<BlockIo>,
    #[serde(default)]
    pub hugepage_limits: Vec<Hugepage>,
    pub network: Option<Network>,
    #[serde(default)]
    pub rdma: BTreeMap<String, Rdma>,
    #[serde(default)]
    pub unified: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRule {
    #[serde(default)]
    pub allow: bool,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    /// Memory plus swap, cgroup v1's meaning.
    pub swap: Option<i64>,
    pub kernel: Option<i64>,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub realtime_runtime: Option<i64>,
    pub realtime_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Pids {
    #[serde(default)]
    pub limit: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    #[serde(default)]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default)]
    pub throttle_read_bps_device: Vec<ThrottleDevice>,
    #[serde(default)]
    pub throttle_write_bps_device: Vec<ThrottleDevice>,
    #[serde(default, rename = "throttleReadIOPSDevice")]
    pub throttle_read_iops_device: Vec<ThrottleDevice>,
    #[serde(default, rename = "throttleWriteIOPSDevice")]
    pub throttle_write_iops_device: Vec<ThrottleDevice>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hugepage {
    pub page_size: String,
    pub limit: u64,
}

/// cgroup v1's `net_cls`/`net_prio`: no v2 equivalent, read only to be reported as ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Network {
    #[serde(rename = "classID")]
    pub class_id: Option<u32>,
    #[serde(default)]
    pub priorities: Vec<InterfacePriority>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InterfacePriority {
    pub name: String,
    pub priority: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rdma {
    pub hca_handles: Option<u32>,
    pub hca_objects: Option<u32>,
}

/// One write to the container's cgroup, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `value` into the interface file `file`.
    File { file: String, value: String },
    /// A block-IO weight (10-1000, cgroup v1's scale): `io.bfq.weight` when the BFQ scheduler
    /// offers it, else the whole-cgroup weight converted to `io.weight`'s scale; per-device
    /// weights exist only with BFQ (elsewhere they are skipped, as runc does). Chosen at launch,
    /// when the cgroup's files can be looked at.
    IoWeight {
        device: Option<(i64, i64)>,
        weight: u16,
    },
}

/// What a launch writes to its cgroup, and what it could not honour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub writes: Vec<Write>,
    /// Rules of the device controller (`[[devices]]`), which sifr does not apply.
    pub device_rules: bool,
    /// Settings cgroup v2 has no file for, ignored (each named, for a warning).
    pub ignored: Vec<&'static str>,
    /// The launch is an instance: the cgroup exists for `instance stats` even without limits,
    /// and a host that cannot give one is no error.
    pub instance: bool,
}

impl Limits {
    /// The controllers the writes need enabled in the parent (`memory` for `memory.max`).
    pub fn controllers(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .writes
            .iter()
            .map(|w| match w {
                Write::File { file, .. } => file.split('.').next().unwrap_or(file),
                Write::IoWeight { .. } => "io",
            })
            .filter(|c| !c.starts_with("cgroup"))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl Request {
    /// Whether any limit was asked for.
    pub fn any(&self) -> bool {
        *self != Request::default()
    }

    /// The limits asked for: from the flags, or from the `--apply-cgroups` file (read here), or
    /// `None`. Both at once is an error, as in Apptainer.
    pub fn resolve(&self) -> Result<Option<Limits>, CgroupError> {
        let flags = self.flag_resources()?;
        match (&self.apply_cgroups, flags) {
            (Some(_), Some(_)) => Err(CgroupError::FileAndFlags),
            (None, Some(r)) => limits(&r, None).map(Some),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
                    path: path.clone(),
                    source,
                })?;
                let r = parse_toml(path, &text)?;
                limits(&r, Some(path)).map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// The flags as [`Resources`], as Apptainer's `getFlagLimits` builds them; `None` when no
    /// limit flag was given.
    pub fn flag_resources(&self) -> Result<Option<Resources>, CgroupError> {
        let mut r = Resources::default();
        let mut cpu = Cpu::default();
        if let Some(v) = &self.cpu_shares {
            let shares = int(v, "cpu-shares")?;
            if shares > 0 {
                cpu.shares = Some(shares as u64);
            }
        }
        cpu.cpus = self.cpuset_cpus.clone().filter(|s| !s.is_empty());
        cpu.mems = self.cpuset_mems.clone().filter(|s| !s.is_empty());
        if let Some(v) = &self.cpus {
            cpu.quota = Some(cpus_quota(v, sifr_sys::process::cpu_count())?);
            cpu.period = Some(CPU_PERIOD);
        }
        if cpu != Cpu::default() {
            r.cpu = Some(cpu);
        }
        let mut mem = Memory::default();
        let size = |v: &Option<String>, flag| v.as_deref().map(|v| ram_bytes(v, flag)).transpose();
        mem.limit = size(&self.memory, "memory")?;
        mem.reservation = size(&self.memory_reservation, "memory-reservation")?;
        mem.swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            Some(v) => Some(ram_bytes(v, "memory-swap")?),
            None => None,
        };
        if let Some(swap) = mem.swap.filter(|s| *s > 0) {
            let v = self.memory_swap.as_deref().unwrap_or_default();
            match mem.limit {
                None => {
                    return Err(flag_error(
                        "memory-swap",
                        v,
                        "a swap limit needs a `--memory` limit",
                    ));
                }
                Some(limit) if swap < limit => {
                    return Err(flag_error(
                        "memory-swap",
                        v,
                        "memory+swap must be at least the `--memory` limit",
                    ));
                }
                Some(_) => {}
            }
        }
        if self.oom_kill_disable {
            mem.disable_oom_killer = Some(true);
        }
        if mem != Memory::default() {
            r.memory = Some(mem);
        }
        if let Some(v) = &self.pids_limit {
            let limit = int(v, "pids-limit")?;
            if limit < -1 {
                return Err(flag_error(
                    "pids-limit",
                    v,
                    "use a number of processes, or -1 for no limit",
                ));
            }
            if limit != 0 {
                r.pids = Some(Pids { limit });
            }
        }
        let mut io = BlockIo::default();
        if let Some(v) = &self.blkio_weight {
            let w = int(v, "blkio-weight")?;
            if w > 0 {
                io.weight = Some(weight(w, "blkio-weight", v)?);
            }
        }
        for spec in &self.blkio_weight_device {
            io.weight_device.push(weight_device(spec)?);
        }
        if io != BlockIo::default() {
            r.block_io = Some(io);
        }
        Ok((r != Resources::default()).then_some(r))
    }
}

/// `cfs_period_us` of `--cpus`: Apptainer always uses the default, 100 ms.
const CPU_PERIOD: u64 = 100_000;

fn flag_error(flag: &'static str, value: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::Flag {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn int(v: &str, flag: &'static str) -> Result<i64, CgroupError> {
    v.trim()
        .parse()
        .map_err(|_| flag_error(flag, v, "not an integer"))
}

fn weight(w: i64, flag: &'static str, v: &str) -> Result<u16, CgroupError> {
    if !(10..=1000).contains(&w) {
        return Err(flag_error(flag, v, "the weight must be in range 10-1000"));
    }
    Ok(w as u16)
}

/// `DEVICE:WEIGHT`, the device's numbers read from the host's device node.
fn weight_device(spec: &str) -> Result<WeightDevice, CgroupError> {
    const FLAG: &str = "blkio-weight-device";
    let Some((dev, w)) = spec.split_once(':') else {
        return Err(flag_error(
            FLAG,
            spec,
            "the form is `<device>:<weight>`, e.g. `/dev/sda:200`",
        ));
    };
    let w = w
        .parse::<i64>()
        .map_err(|_| flag_error(FLAG, spec, format!("`{w}` is not a valid device weight")))?;
    let weight = weight(w, FLAG, spec)?;
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let md = std::fs::symlink_metadata(dev)
        .map_err(|e| flag_error(FLAG, spec, format!("cannot examine `{dev}`: {e}")))?;
    let ft = md.file_type();
    if !(ft.is_block_device() || ft.is_char_device() || ft.is_fifo()) {
        return Err(flag_error(FLAG, spec, format!("`{dev}` is not a device")));
    }
    let rdev = md.rdev();
    Ok(WeightDevice {
        major: ((rdev >> 32) & 0xffff_f000 | (rdev >> 8) & 0xfff) as i64,
        minor: ((rdev >> 12) & 0xffff_ff00 | rdev & 0xff) as i64,
        weight: Some(weight),
        leaf_weight: None,
    })
}

/// `--cpus N` as a CFS quota for the 100 ms period: N in 0.01 to the CPUs this process may use,
/// at nanosecond precision, truncated (Apptainer's arithmetic, without floating point).
pub fn cpus_quota(v: &str, ncpu: usize) -> Result<i64, CgroupError> {
    let range = || format!("the value must be in range 0.01 - {ncpu}");
    let t = v.trim();
    let (int_part, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac.is_empty()) || !digits(int_part) || !digits(frac) {
        return Err(flag_error(
            "cpus",
            v,
            "not a number of CPUs such as `2` or `0.5`",
        ));
    }
    let whole: u64 = if int_part.is_empty() {
        0
    } else {
        int_part
            .parse()
            .map_err(|_| flag_error("cpus", v, range()))?
    };
    let mut nanos_frac: u64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos_frac += u64::from(b - b'0') * 10u64.pow(8 - i as u32);
    }
    let exact_beyond_nanos = frac.bytes().skip(9).any(|b| b != b'0');
    let nanos = whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos_frac))
        .ok_or_else(|| flag_error("cpus", v, range()))?;
    let below_min = nanos < 10_000_000;
    let above_max = nanos > ncpu as u64 * 1_000_000_000
        || (nanos == ncpu as u64 * 1_000_000_000 && exact_beyond_nanos);
    if below_min || above_max {
        return Err(flag_error("cpus", v, range()));
    }
    Ok((nanos * CPU_PERIOD / 1_000_000_000) as i64)
}

/// A size as Docker's `RAMInBytes` reads it: a number (fractions allowed), an optional space,
/// then `b`, `k`, `m`, `g`, `t` or `p` (powers of 1024, any case), optionally followed by `i`
/// and/or `b`: `500M`, `1.5g`, `2GiB`, `1024`.
pub fn ram_bytes(v: &str, flag: &'static str) -> Result<i64, CgroupError> {
    let bad = || flag_error(flag, v, "not a size such as `512M` or `2G`");
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    let power = match u.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            u = &u[1..];
            "kmgtp".find(c).map_or(0, |i| i + 1)
        }
        _ => 0,
    };
    u = u.strip_prefix('i').unwrap_or(u);
    u = u.strip_prefix('b').unwrap_or(u);
    if !u.is_empty() {
        return Err(bad());
    }
    let bytes = n * 1024f64.powi(power as i32);
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// The TOML text of `path` as [`Resources`]; a syntax or type error names the line and column.
pub fn parse_toml(path: &std::path::Path, text: &str) -> Result<Resources, CgroupError> {
    toml::from_str(text).map_err(|e| CgroupError::Toml {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })
}

#[cfg(test)]
#[path = "cgroup/tests.rs"]
mod tests;
