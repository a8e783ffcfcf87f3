//! cgroup resource limits end to end (Apptainer's `e2e/cgroups`): the real binary on the probe
//! sandbox. As root on a cgroup v2 host, the container's own cgroup (`0::` of its
//! `/proc/self/cgroup`, read through `-B /sys/fs/cgroup` as the e2e tests do) holds the limits
//! the flags ask for, and is gone after the container. As the ordinary test user, who is not
//! delegated a cgroup here, limits are refused with Apptainer's `cannot use cgroups - ...`, and a
//! launch without limits still runs. `instance stats` reads an instance's cgroup.
//!
//! Tests that need root and busybox skip (failing under `SIFR_TEST_STRICT`) without them; those
//! that need cgroup v2 and a controller say they do not apply where the host's cgroup layout
//! lacks them.

use std::path::Path;

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities, stderr, stdout};

fn sifr(fx: &Fixture, who: As, args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .output()
}

/// Whether root can test `controllers` here; if not, says why and gives false. Not root, or no
/// shell in the image to read the files with, is a [`sifr_testkit::skip`] (CI runs as root with
/// busybox); cgroup v1, a read-only hierarchy or a controller the root cgroup lacks is
/// [`sifr_testkit::not_here`]: the kernel's and the machine manager's cgroup layout, which no
/// package changes, and which the host-independent tests of `sifr-launch` cover otherwise.
fn v2_root_ready(fx: &Fixture, controllers: &[&str]) -> bool {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("needs root to write cgroup limits");
        return false;
    }
    if !fx.has_shell {
        sifr_testkit::skip("no busybox for the image's /bin/sh (apt-get install busybox-static)");
        return false;
    }
    match v2_layout_missing(controllers) {
        Some(why) => {
            sifr_testkit::not_here(why);
            false
        }
        None => true,
    }
}

/// What the host's cgroup layout lacks for `controllers`, if anything.
fn v2_layout_missing(controllers: &[&str]) -> Option<String> {
    let Ok(have) = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") else {
        return Some("no cgroup v2 unified hierarchy at /sys/fs/cgroup".into());
    };
    // A container host may mount the hierarchy read-only.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let read_only = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"/sys/fs/cgroup")
            && f.get(3).is_some_and(|o| o.split(',').any(|o| o == "ro"))
    });
    if read_only {
        return Some("/sys/fs/cgroup is mounted read-only".into());
    }
    if let Some(c) = controllers
        .iter()
        .find(|c| !have.split_whitespace().any(|h| h == **c))
    {
        return Some(format!("the `{c}` controller is not available"));
    }
    None
}

/// The container cgroup's `file`, read inside a container launched with `flags`.
fn read_own(fx: &Fixture, flags: &[&str], file: &str) -> TestOutput {
    let img = fx.image.to_str().unwrap();
    let script = format!("cat /sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/{file}");
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend(["-B", "/sys/fs/cgroup", img, "/bin/sh", "-c", &script]);
    sifr(fx, As::Root, &args)
}

/// The container cgroups root's launches leave under `/sys/fs/cgroup/sifr`.
fn root_cgroups_left() -> Vec<String> {
    std::fs::read_dir("/sys/fs/cgroup/sifr")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn root_limits_land_in_the_container_s_own_cgroup_v2_files() {
    let fx = Fixture::new();
    if !v2_root_ready(&fx, &["memory", "pids"]) {
        return;
    }
    // e2e/cgroups resourceFlagTests, the cgroup v2 column.
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--memory", "64M"], "memory.max", "67108864"),
        (&["--memory", "500M"], "memory.max", "524288000"),
        (&["--memory-reservation", "500M"], "memory.low", "524288000"),
        (&["--pids-limit", "123"], "pids.max", "123"),
    ];
    for (flags, file, want) in cases {
        let o = read_own(&fx, flags, file);
        assert_eq!(stdout(&o).trim(), *want, "{flags:?}: {}", stderr(&o));
    }
    // The container's process is in a new cgroup of its own, `/sifr/PID`.
    let img = fx.image.to_str().unwrap();
    let o = sifr(
        &fx,
        As::Root,
        &[
            "exec",
            "--pids-limit",
            "50",
            img,
            "/bin/probe",
            "cat",
            "/proc/self/cgroup",
        ],
    );
    let line = stdout(&o);
    assert!(
        line.lines().any(|l| l.starts_with("0::/sifr/")),
        "{line}{}",
        stderr(&o)
    );
    // The same limit from its environment twin.
    let o = fx
        .command(env!("CARGO_BIN_EXE_sifr"), As::Root)
        .env("APPTAINER_PIDS_LIMIT", "77")
        .args([
            "exec",
            "-B",
            "/sys/fs/cgroup",
            img,
            "/bin/sh",
            "-c",
            "cat /sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/pids.max",
        ])
        .output();
    assert_eq!(stdout(&o).trim(), "77", "{}", stderr(&o));
    let left = sifr_testkit::settled(root_cgroups_left);
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

#[test]
fn root_cpu_flags_map_as_apptainer_s() {
    let fx = Fixture::new();
    if !v2_root_ready(&fx, &["cpu", "cpuset"]) {
        return;
    }
    let o = read_own(&fx, &["--cpus", "0.5"], "cpu.max");
    assert_eq!(stdout(&o).trim(), "50000 100000", "{}", stderr(&o));
    // opencontainers/cgroups' conversion of 123 shares (e2e accepts the older `5` too).
    let o = read_own(&fx, &["--cpu-shares", "123"], "cpu.weight");
    assert!(
        ["5", "20"].contains(&stdout(&o).trim()),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = read_own(
        &fx,
        &["--cpuset-cpus", "0", "--cpuset-mems", "0"],
        "cpuset.cpus",
    );
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    let left = sifr_testkit::settled(root_cgroups_left);
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

#[test]
fn root_toml_files_apply_or_fail_as_apptainer_s() {
    let fx = Fixture::new();
    if !v2_root_ready(&fx, &["memory", "pids"]) {
        return;
    }
    let img = fx.image.to_str().unwrap();
    let toml = |name: &str, text: &str| {
        let p = fx.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // e2e/cgroups actionApply, "memory limit": 1024 bytes, the command is OOM-killed.
    let limit = toml("memory_limit.toml", "[memory]\n  limit = 1024\n");
    let o = sifr(
        &fx,
        As::Root,
        &["exec", "--apply-cgroups", &limit, img, "/bin/probe", "id"],
    );
    o.assert_code(137);
    let pids = toml("pids_limit.toml", "[pids]\n  limit = 1024\n");
    let o = read_own(&fx, &["--apply-cgroups", &pids], "pids.max");
    assert_eq!(stdout(&o).trim(), "1024", "{}", stderr(&o));
    // "nonexistent toml", "invalid toml".
    let o = sifr(
        &fx,
        As::Root,
        &[
            "exec",
            "--apply-cgroups",
            "/nonexistent/x.toml",
            img,
            "/bin/probe",
            "id",
        ],
    );
    o.assert_code(sifr_cli::exit::FAILURE.into())
        .assert_stderr_contains("cannot read the cgroups file `/nonexistent/x.toml`");
    let bad = toml("invalid.toml", "memory]\n  limit = 1024\n");
    let o = sifr(
        &fx,
        As::Root,
        &["exec", "--apply-cgroups", &bad, img, "/bin/probe", "id"],
    );
    o.assert_code(sifr_cli::exit::FAILURE.into())
        .assert_stderr_contains("invalid cgroups file")
        .assert_stderr_contains("line 1");
    // A file and limit flags at once.
    let o = sifr(
        &fx,
        As::Root,
        &[
            "exec",
            "--apply-cgroups",
            &pids,
            "--memory",
            "1G",
            img,
            "/bin/probe",
            "id",
        ],
    );
    o.assert_code(sifr_cli::exit::FAILURE.into())
        .assert_stderr_contains("cannot apply a cgroups TOML file while using limit flags");
    let left = sifr_testkit::settled(root_cgroups_left);
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

#[test]
fn a_bad_limit_value_names_the_flag_before_anything_starts() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in runnable_identities() {
        let o = sifr(
            &fx,
            who,
            &["exec", "--memory", "lots", img, "/bin/probe", "id"],
        );
        o.assert_code(sifr_cli::exit::FAILURE.into())
            .assert_stderr_contains("invalid `--memory` value `lots`");
        let o = sifr(
            &fx,
            who,
            &["exec", "--cpus", "0.001", img, "/bin/probe", "id"],
        );
        o.assert_code(sifr_cli::exit::FAILURE.into())
            .assert_stderr_contains(
                "invalid `--cpus` value `0.001`: the value must be in range 0.01 - ",
            );
    }
}

#[test]
fn an_undelegated_user_is_refused_limits_but_runs_without_them() {
    // e2e/cgroups actionDbusXDG: limits need a usable cgroup, a launch without them does not.
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in runnable_identities() {
        if who == As::Root {
            continue;
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let delegated = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .and_then(|rel| Path::new(rel.trim()).parent().map(Path::to_path_buf))
            .map(|p| Path::new("/sys/fs/cgroup").join(p.strip_prefix("/").unwrap_or(&p)))
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|md| {
                use std::os::unix::fs::MetadataExt as _;
                md.uid() == who.uid()
            });
        if delegated {
            // The premise is that the user has no cgroup of its own: a systemd session that
            // delegates one makes the refusal meaningless, and no package changes that.
            sifr_testkit::not_here(format_args!(
                "uid {}: its cgroup's parent is delegated to it",
                who.uid()
            ));
            continue;
        }
        let o = sifr(&fx, who, &["exec", "--cpus", "1", img, "/bin/probe", "id"]);
        o.assert_code(sifr_cli::exit::FAILURE.into())
            .assert_stderr_contains("while applying cgroups config")
            .assert_stderr_contains("cannot use cgroups - ");
        let o = sifr(&fx, who, &["exec", img, "/bin/probe", "id"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[test]
fn instance_stats_show_the_instance_s_memory_limit() {
    // e2e/cgroups instanceStats.
    let fx = Fixture::new();
    if !v2_root_ready(&fx, &["memory", "pids"]) {
        return;
    }
    let img = fx.image.to_str().unwrap();
    let name = format!("cgstats-{}", std::process::id());
    sifr(
        &fx,
        As::Root,
        &["instance", "start", "--memory", "250M", img, &name],
    )
    .assert_success();
    let o = sifr(&fx, As::Root, &["instance", "stats", "--no-stream", &name]);
    let out = stdout(&o);
    for col in [
        "INSTANCE NAME",
        "CPU USAGE",
        "MEM USAGE / LIMIT",
        "MEM %",
        "BLOCK I/O",
        "PIDS",
        &name,
        "/ 250MiB",
    ] {
        assert!(out.contains(col), "{col}: {out}{}", stderr(&o));
    }
    let o = sifr(&fx, As::Root, &["instance", "stats", "--json", &name]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["memory_stats"]["usage"]["limit"], 262_144_000u64);
    sifr(&fx, As::Root, &["instance", "stop", &name]).assert_success();
    let left = sifr_testkit::settled(root_cgroups_left);
    assert!(left.is_empty(), "cgroups left: {left:?}");
}
