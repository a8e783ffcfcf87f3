//! `sifr instance stats [--json] [--no-stream] [-u USER] NAME`: the CPU, memory, block I/O and
//! process counts of a running instance's cgroup, as Apptainer's table (refreshed every second
//! unless `--no-stream`) or its JSON (the `opencontainers/cgroups` stats keys).
//!
//! The instance's cgroup is found from its launcher's pid (`sifr_launch::cgroup::apply::
//! instance_cgroup`), as Apptainer finds it from the instance's pid; the state file is read
//! here directly (its layout is `instance.rs`'s) so that `-u USER` can look in another user's
//! home.

use std::time::{Duration, Instant};

use clap::Args;

use super::instance_state::{Owner, State};
use crate::report::Hinted;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The instance.
    pub name: String,
    /// Print one sample as JSON.
    #[arg(short, long)]
    pub json: bool,
    /// Print one sample and exit instead of refreshing every second.
    #[arg(long)]
    pub no_stream: bool,
    /// Look at an instance of this user (root only; also APPTAINER_USER).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
}

pub fn run(a: &StatsArgs, s: &Settings) -> anyhow::Result<u8> {
    // The flag's twin, as Apptainer's `EnvKeys: USER`.
    let user = a.user.clone().or_else(|| {
        ["SIFR_USER", "APPTAINER_USER", "SINGULARITY_USER"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    });
    if user.is_some() && sifr_sys::process::ids().0 != 0 {
        anyhow::bail!("Only the root user can look at stats of a user's instance");
    }
    let st = find(&a.name, user.as_deref(), s)?;
    if !a.json && !s.quiet && !s.silent {
        eprintln!(
            "INFO:    Stats for {} instance of {} (PID={})",
            st.name,
            st.image.display(),
            st.pid
        );
    }
    let mut no_stream = a.no_stream;
    if a.json && !no_stream {
        tracing::warn!("JSON output is only available for a single timepoint (--no-stream)");
        no_stream = true;
    }
    let Some(dir) = sifr_launch::cgroup::apply::instance_cgroup(st.pid) else {
        return Err(Hinted::new(
            "stats are only available if cgroups are enabled",
            "start the instance as root, or in a cgroup delegated to you (docs/runtime.md, Resource limits)",
        )
        .into());
    };
    let mut prev = (Instant::now(), sifr_launch::cgroup::stats::read(&dir));
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = (Instant::now(), sifr_launch::cgroup::stats::read(&dir));
        if a.json {
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(&now.1, &mut ser)?;
            println!("{}", String::from_utf8_lossy(&out));
            return Ok(crate::exit::OK);
        }
        if !no_stream {
            // Apptainer clears the terminal and redraws.
            print!("\x1b[2J\x1b[1;1H");
        }
        print!("{}", table(&st.name, &prev, &now));
        if no_stream {
            return Ok(crate::exit::OK);
        }
        prev = now;
    }
}

/// The running instance `name` of `user` (default: the caller), from its record.
fn find(name: &str, user: Option<&str>, s: &Settings) -> anyhow::Result<State> {
    let owner = match user {
        Some(u) => Owner::named(u, s)?,
        None => Owner::current(s)?,
    };
    owner.running(name).ok_or_else(|| {
        Hinted::new(
            format!("no instance `{name}` runs"),
            "`sifr instance list` shows the running instances",
        )
        .into()
    })
}

type Sample = (Instant, sifr_launch::cgroup::stats::Stats);

/// Apptainer's table: a header and one row, columns as Go's `tabwriter` (padding 4) aligns them.
fn table(name: &str, prev: &Sample, now: &Sample) -> String {
    let s = &now.1;
    let cpu_ns = s.cpu_stats.cpu_usage.total_usage;
    let delta_cpu = cpu_ns.saturating_sub(prev.1.cpu_stats.cpu_usage.total_usage) as f64;
    let delta_t = now.0.duration_since(prev.0).as_nanos().max(1) as f64;
    let cpu = delta_cpu / delta_t * 100.0;
    let usage = s.memory_stats.usage.usage as f64;
    let mut limit = s.memory_stats.usage.limit as f64;
    if s.memory_stats.usage.limit == u64::MAX {
        limit = total_ram().unwrap_or(limit);
    }
    let mem_pct = if limit != 0.0 {
        usage / limit * 100.0
    } else {
        0.0
    };
    let (read, write) = s.blkio_stats.read_write();
    let header = [
        "INSTANCE NAME",
        "CPU USAGE",
        "MEM USAGE / LIMIT",
        "MEM %",
        "BLOCK I/O",
        "PIDS",
    ]
    .map(String::from);
    let row = [
        name.to_string(),
        format!("{cpu:.2}%"),
        format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        format!("{mem_pct:.2}%"),
        format!("{} / {}", bytes_size(read as f64), bytes_size(write as f64)),
        s.pids_stats.current.to_string(),
    ];
    tabulate(&[header.to_vec(), row.to_vec()])
}

/// Cells padded to their column's widest plus 4 spaces; the last column is not padded.
fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                + 4
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// Docker's `units.BytesSize`: powers of 1024 with binary prefixes, 4 significant digits
/// (Go's `%.4g`): `250MiB`, `1.5GiB`, `0B`.
fn bytes_size(mut v: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", g4(v), UNITS[i])
}

/// `%.4g` for 0 <= v < 10000.
fn g4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The host's RAM in bytes (`MemTotal`), shown as the limit of a cgroup with none.
fn total_ram() -> Option<f64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_docker_s_bytes_size() {
        // e2e/cgroups instanceStats: `--memory 250M` shows `/ 250MiB`.
        assert_eq!(bytes_size(262_144_000.0), "250MiB");
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(1_234_567.0), "1.177MiB");
        assert_eq!(bytes_size(1023.0), "1023B");
    }

    #[test]
    fn the_table_has_apptainer_s_columns() {
        let mut s = sifr_launch::cgroup::stats::Stats::default();
        s.memory_stats.usage.usage = 1 << 20;
        s.memory_stats.usage.limit = 262_144_000;
        s.pids_stats.current = 2;
        s.cpu_stats.cpu_usage.total_usage = 500_000_000;
        let t0 = Instant::now();
        let prev = (t0, sifr_launch::cgroup::stats::Stats::default());
        let now = (t0 + Duration::from_secs(1), s);
        assert_eq!(
            table("web", &prev, &now),
            "INSTANCE NAME    CPU USAGE    MEM USAGE / LIMIT    MEM %    BLOCK I/O    PIDS\n\
             web              50.00%       1MiB / 250MiB        0.40%    0B / 0B      2\n"
        );
    }
}
