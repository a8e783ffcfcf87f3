//! Checks that a launch left nothing on the host (mounts, processes), and the probe-side checks
//! of signals and of the container's root mount.

use std::path::Path;

/// Mount lines of the host that mention `needle` (to prove nothing is left mounted).
pub fn host_mounts_mentioning(needle: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle.to_str().unwrap()))
        .map(str::to_string)
        .collect()
}

/// Host mount count, to compare before and after a suite.
pub fn host_mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// `f()` once it is empty, polling for up to 3 s: what a launch leaves to wind down after it
/// exits (the node's holder of a shared image retires, its FUSE server sees the mount go, loop
/// devices auto-clear) goes asynchronously, within milliseconds.
pub fn settled<T>(f: impl Fn() -> Vec<T>) -> Vec<T> {
    for _ in 0..150 {
        let v = f();
        if v.is_empty() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// Pids of live processes whose command line mentions `needle` (to prove none is left behind).
pub fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let me = std::process::id();
    let n = needle.to_str().unwrap().as_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.windows(n.len()).any(|w| w == n))
                .unwrap_or(false)
        })
        .collect()
}

/// Start `cmd` (a launch of `probe wait-signal`), send SIGTERM to it once the probe is ready,
/// and check that the probe got it and that its status (115) is the launch's.
pub fn assert_sigterm_reaches_probe(mut cmd: std::process::Command) {
    use std::io::{BufRead as _, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(lines.next().unwrap().unwrap(), "got signal 15");
    assert_eq!(child.wait().unwrap().code(), Some(115));
}

/// The filesystem type and per-mount options of the container's `/` (its last mount there) in
/// a mountinfo text.
pub fn root_mount(mountinfo: &str) -> (&str, Vec<&str>) {
    let line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no mount at / in:\n{mountinfo}"));
    let opts = line.split(' ').nth(5).unwrap().split(',').collect();
    let fstype = line.split(" - ").nth(1).unwrap().split(' ').next().unwrap();
    (fstype, opts)
}
