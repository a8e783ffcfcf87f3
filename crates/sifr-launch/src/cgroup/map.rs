//! [`Resources`] (the OCI layout) to cgroup v2 writes ([`Limits`]), section by section, in the
//! order and with the conversions of `opencontainers/cgroups`' v2 manager, which Apptainer uses.
//! Pure.

use std::path::Path;

use super::{BlockIo, CgroupError, Cpu, Limits, Memory, Resources, Write, flag_error};

/// cgroup v1 CPU shares (2-262144, default 1024) as a cgroup v2 `cpu.weight` (1-10000,
/// default 100), by the quadratic fit in log space that `opencontainers/cgroups` (Apptainer's
/// manager) uses since v0.0.3, so that 1024 shares map to 100. (The linear formula it replaced
/// gave 1024 shares a weight of 39.)
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// A block-IO weight (10-1000) on `io.weight`'s scale (1-10000), as runc converts it.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// `max` for a negative limit, the number otherwise.
fn max_or(n: i64) -> String {
    if n < 0 { "max".into() } else { n.to_string() }
}

/// The writes being collected, with what could not be honoured.
struct Out {
    limits: Limits,
}

impl Out {
    fn put(&mut self, file: &str, value: String) {
        self.limits.writes.push(Write::File {
            file: file.to_string(),
            value,
        });
    }
}

/// [`Resources`] as cgroup v2 writes, in the order runc makes them. `file` names the TOML file
/// in errors (`None`: the values came from flags, which [`super::Request`] checked already).
pub fn limits(r: &Resources, file: Option<&Path>) -> Result<Limits, CgroupError> {
    let mut out = Out {
        limits: Limits::default(),
    };
    let value_error = |key: &'static str, reason: String| match file {
        Some(p) => CgroupError::Value {
            path: p.to_path_buf(),
            key,
            reason,
        },
        None => flag_error("apply-cgroups", key, reason),
    };
    if let Some(c) = &r.cpu {
        cpu(&mut out, c);
    }
    if let Some(m) = &r.memory {
        memory(&mut out, m).map_err(|reason| value_error("memory.swap", reason.into()))?;
    }
    if let Some(p) = r.pids.as_ref().filter(|p| p.limit != 0) {
        out.put("pids.max", max_or(p.limit));
    }
    if let Some(io) = &r.block_io {
        block_io(&mut out, io);
    }
    for h in &r.hugepage_limits {
        out.put(&format!("hugetlb.{}.max", h.page_size), h.limit.to_string());
    }
    for (dev, l) in &r.rdma {
        let mut v = dev.clone();
        if let Some(n) = l.hca_handles {
            v.push_str(&format!(" hca_handle={n}"));
        }
        if let Some(n) = l.hca_objects {
            v.push_str(&format!(" hca_object={n}"));
        }
        out.put("rdma.max", v);
    }
    if r.network.is_some() {
        out.limits.ignored.push("network");
    }
    for (key, value) in &r.unified {
        if key.is_empty() || key.contains('/') || !key.contains('.') || key.starts_with('.') {
            return Err(value_error(
                "unified",
                format!("`{key}` is not a cgroup interface file name"),
            ));
        }
        out.put(key, value.clone());
    }
    out.limits.device_rules = !r.devices.is_empty();
    Ok(out.limits)
}

/// `cpu.weight`, `cpu.max` (`max` for no quota; the period only when given), the cpuset.
fn cpu(out: &mut Out, c: &Cpu) {
    if let Some(s) = c.shares.filter(|s| *s != 0) {
        out.put("cpu.weight", shares_to_weight(s).to_string());
    }
    if c.quota.is_some_and(|q| q != 0) || c.period.is_some_and(|p| p != 0) {
        let quota = c
            .quota
            .filter(|q| *q > 0)
            .map_or("max".into(), |q| q.to_string());
        let value = match c.period.filter(|p| *p != 0) {
            Some(p) => format!("{quota} {p}"),
            None => quota,
        };
        out.put("cpu.max", value);
    }
    if c.realtime_runtime.is_some() || c.realtime_period.is_some() {
        out.limits
            .ignored
            .push("cpu.realtimeRuntime/realtimePeriod");
    }
    if let Some(cpus) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
        out.put("cpuset.cpus", cpus.to_string());
    }
    if let Some(mems) = c.mems.as_deref().filter(|s| !s.is_empty()) {
        out.put("cpuset.mems", mems.to_string());
    }
}

/// `memory.swap.max` (v1's memory+swap made swap alone), `memory.max`, `memory.low`; the error
/// is the reason a swap value cannot be used.
fn memory(out: &mut Out, m: &Memory) -> Result<(), &'static str> {
    let limit = m.limit.unwrap_or(0);
    let swap = match m.swap.unwrap_or(0) {
        0 if limit == -1 => -1,
        s @ (-1 | 0) => s,
        s => {
            if limit == 0 || limit == -1 {
                return Err("a swap limit needs a memory limit");
            }
            if s < limit {
                return Err("memory+swap limit should be >= memory limit");
            }
            s - limit
        }
    };
    if swap != 0 {
        out.put("memory.swap.max", max_or(swap));
    }
    if limit != 0 {
        out.put("memory.max", max_or(limit));
    }
    if let Some(res) = m.reservation.filter(|r| *r != 0) {
        out.put("memory.low", max_or(res));
    }
    if m.kernel.is_some() || m.kernel_tcp.is_some() {
        out.limits.ignored.push("memory.kernel/kernelTCP");
    }
    if m.swappiness.is_some() {
        out.limits.ignored.push("memory.swappiness");
    }
    // `disableOOMKiller` has no cgroup v2 file; Apptainer's manager skips it silently too.
    Ok(())
}

/// Weights (resolved at launch, [`Write::IoWeight`]) and `io.max` throttles.
fn block_io(out: &mut Out, io: &BlockIo) {
    if let Some(w) = io.weight.filter(|w| *w != 0) {
        out.limits.writes.push(Write::IoWeight {
            device: None,
            weight: w,
        });
    }
    for d in &io.weight_device {
        if let Some(w) = d.weight.filter(|w| *w != 0) {
            out.limits.writes.push(Write::IoWeight {
                device: Some((d.major, d.minor)),
                weight: w,
            });
        }
    }
    for (list, key) in [
        (&io.throttle_read_bps_device, "rbps"),
        (&io.throttle_write_bps_device, "wbps"),
        (&io.throttle_read_iops_device, "riops"),
        (&io.throttle_write_iops_device, "wiops"),
    ] {
        for d in list {
            let rate = if d.rate == 0 {
                "max".into()
            } else {
                d.rate.to_string()
            };
            out.put("io.max", format!("{}:{} {key}={rate}", d.major, d.minor));
        }
    }
    if io.leaf_weight.is_some() || io.weight_device.iter().any(|d| d.leaf_weight.is_some()) {
        out.limits.ignored.push("blockIO.leafWeight");
    }
}
