//! Flag values and TOML files to cgroup v2 writes, with the expectations of Apptainer's
//! `e2e/cgroups` (`resourceFlagTests`: `--cpus 0.5` -> `cpu.max` `50000 100000`, `--memory 500M`
//! -> `memory.max` `524288000`, ...), and the errors of bad values.

use std::path::Path;

use super::*;

fn files(r: &Request) -> Vec<(String, String)> {
    let l = r.resolve().unwrap().unwrap();
    l.writes
        .into_iter()
        .map(|w| match w {
            Write::File { file, value } => (file, value),
            Write::IoWeight { device, weight } => {
                (format!("io weight {device:?}"), weight.to_string())
            }
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn flag(set: impl FnOnce(&mut Request)) -> Request {
    let mut r = Request::default();
    set(&mut r);
    r
}

fn err(r: &Request) -> String {
    r.resolve().unwrap_err().to_string()
}

#[test]
fn apptainer_e2e_flag_expectations_hold() {
    // e2e/cgroups resourceFlagTests, cgroup v2 column.
    let cases: Vec<(Request, Vec<(&str, &str)>)> = vec![
        (
            flag(|r| r.cpus = Some("0.5".into())),
            vec![("cpu.max", "50000 100000")],
        ),
        (
            flag(|r| r.cpu_shares = Some("123".into())),
            vec![("cpu.weight", "20")],
        ),
        (
            flag(|r| {
                r.cpuset_cpus = Some("0".into());
                r.cpuset_mems = Some("0".into());
            }),
            vec![("cpuset.cpus", "0"), ("cpuset.mems", "0")],
        ),
        (
            flag(|r| r.memory = Some("500M".into())),
            vec![("memory.max", "524288000")],
        ),
        (
            flag(|r| r.memory_reservation = Some("500M".into())),
            vec![("memory.low", "524288000")],
        ),
        (
            flag(|r| {
                r.memory_swap = Some("500M".into());
                r.memory = Some("250M".into());
            }),
            vec![
                ("memory.swap.max", "262144000"),
                ("memory.max", "262144000"),
            ],
        ),
        (
            flag(|r| r.pids_limit = Some("123".into())),
            vec![("pids.max", "123")],
        ),
        (
            flag(|r| r.pids_limit = Some("-1".into())),
            vec![("pids.max", "max")],
        ),
        (
            flag(|r| {
                r.memory = Some("1g".into());
                r.memory_swap = Some("-1".into());
            }),
            vec![("memory.swap.max", "max"), ("memory.max", "1073741824")],
        ),
        (
            flag(|r| r.blkio_weight = Some("50".into())),
            vec![("io weight None", "50")],
        ),
    ];
    for (r, want) in cases {
        assert_eq!(files(&r), pairs(&want), "{r:?}");
    }
}

#[test]
fn flags_that_ask_for_nothing_give_no_cgroup() {
    // Apptainer's defaults: 0 / -1 mean "not set".
    let r = flag(|r| {
        r.pids_limit = Some("0".into());
        r.cpu_shares = Some("-1".into());
        r.blkio_weight = Some("0".into());
    });
    assert_eq!(r.resolve().unwrap(), None);
    // `--oom-kill-disable` has no v2 file: a cgroup is made, with nothing written.
    let l = flag(|r| r.oom_kill_disable = true)
        .resolve()
        .unwrap()
        .unwrap();
    assert!(l.writes.is_empty());
}

#[test]
fn conversions_match_opencontainers_cgroups() {
    assert_eq!(shares_to_weight(1024), 100);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(512), 59);
    assert_eq!(blkio_to_io_weight(10), 1);
    assert_eq!(blkio_to_io_weight(1000), 10_000);
    assert_eq!(blkio_to_io_weight(500), 4950);
}

#[test]
fn sizes_read_as_docker_s_ram_in_bytes() {
    for (text, bytes) in [
        ("1024", 1024),
        ("64M", 64 << 20),
        ("64m", 64 << 20),
        ("2GiB", 2 << 30),
        ("1.5g", 3 << 29),
        ("10 kb", 10 << 10),
        ("1b", 1),
    ] {
        assert_eq!(ram_bytes(text, "memory").unwrap(), bytes, "{text}");
    }
    for bad in ["", "-1", "M", "12Q", ".5g", "1.g", "5 MBs"] {
        assert!(ram_bytes(bad, "memory").is_err(), "{bad}");
    }
}

#[test]
fn cpus_are_bounded_by_the_cpus_available() {
    assert_eq!(cpus_quota("1", 4).unwrap(), 100_000);
    assert_eq!(cpus_quota("0.01", 4).unwrap(), 1000);
    assert_eq!(cpus_quota("4", 4).unwrap(), 400_000);
    assert_eq!(cpus_quota(".25", 4).unwrap(), 25_000);
    assert_eq!(
        cpus_quota("0.001", 4).unwrap_err().to_string(),
        "invalid `--cpus` value `0.001`: the value must be in range 0.01 - 4"
    );
    assert!(cpus_quota("4.5", 4).is_err());
    assert!(cpus_quota("two", 4).is_err());
}

#[test]
fn bad_flag_values_name_the_flag_and_the_value() {
    assert_eq!(
        err(&flag(|r| r.memory = Some("lots".into()))),
        "invalid `--memory` value `lots`: not a size such as `512M` or `2G`"
    );
    assert_eq!(
        err(&flag(|r| r.pids_limit = Some("-5".into()))),
        "invalid `--pids-limit` value `-5`: use a number of processes, or -1 for no limit"
    );
    assert_eq!(
        err(&flag(|r| r.blkio_weight = Some("5".into()))),
        "invalid `--blkio-weight` value `5`: the weight must be in range 10-1000"
    );
    assert_eq!(
        err(&flag(|r| r.blkio_weight_device = vec!["/dev/null".into()])),
        "invalid `--blkio-weight-device` value `/dev/null`: the form is `<device>:<weight>`, e.g. `/dev/sda:200`"
    );
    assert_eq!(
        err(&flag(
            |r| r.blkio_weight_device = vec!["/etc/hostname:100".into()]
        )),
        "invalid `--blkio-weight-device` value `/etc/hostname:100`: `/etc/hostname` is not a device"
    );
    assert_eq!(
        err(&flag(|r| r.memory_swap = Some("1G".into()))),
        "invalid `--memory-swap` value `1G`: a swap limit needs a `--memory` limit"
    );
    assert_eq!(
        err(&flag(|r| {
            r.memory = Some("2G".into());
            r.memory_swap = Some("1G".into());
        })),
        "invalid `--memory-swap` value `1G`: memory+swap must be at least the `--memory` limit"
    );
    assert_eq!(
        err(&flag(|r| {
            r.memory = Some("1G".into());
            r.apply_cgroups = Some("/x.toml".into());
        })),
        "cannot apply a cgroups TOML file while using limit flags"
    );
}

#[test]
fn a_device_weight_reads_the_device_numbers() {
    // /dev/null is char device 1:3 on every Linux.
    let r = flag(|r| r.blkio_weight_device = vec!["/dev/null:300".into()]);
    assert_eq!(files(&r), pairs(&[("io weight Some((1, 3))", "300")]));
}

fn toml_limits(text: &str) -> Result<Limits, CgroupError> {
    let p = Path::new("/t/limits.toml");
    limits(&parse_toml(p, text)?, Some(p))
}

#[test]
fn apptainer_s_test_files_map_to_v2_files() {
    // e2e/testdata/cgroups/*.toml
    let l = toml_limits("[memory]\n  limit = 1024\n").unwrap();
    assert_eq!(
        l.writes,
        [Write::File {
            file: "memory.max".into(),
            value: "1024".into()
        }]
    );
    let l = toml_limits("[cpu]\n  shares = 512\n").unwrap();
    assert_eq!(
        l.writes,
        [Write::File {
            file: "cpu.weight".into(),
            value: "59".into()
        }]
    );
    let l = toml_limits("[pids]\n  limit = 1024\n").unwrap();
    assert_eq!(l.controllers(), ["pids"]);
    let l = toml_limits("").unwrap();
    assert_eq!(l, Limits::default());
    let l = toml_limits(
        "[[devices]]\n  access = \"rw\"\n  allow = false\n  major = 1\n  minor = 3\n  type = \"c\"\n",
    )
    .unwrap();
    assert!(l.device_rules && l.writes.is_empty());
}

#[test]
fn the_whole_layout_maps_in_runc_s_order() {
    let l = toml_limits(
        r#"
[cpu]
  quota = 20000
  period = 100000
  cpus = "0-1"
[memory]
  limit = 536870912
  reservation = 268435456
  swap = 1073741824
  swappiness = 10
[pids]
  limit = 50
[blockIO]
  weight = 100
  [[blockIO.throttleReadBpsDevice]]
    major = 8
    minor = 0
    rate = 1048576
[[hugepageLimits]]
  pageSize = "2MB"
  limit = 0
[rdma.mlx5_0]
  hcaHandles = 3
[unified]
  "memory.high" = "400000000"
"#,
    )
    .unwrap();
    let got: Vec<String> = l
        .writes
        .iter()
        .map(|w| match w {
            Write::File { file, value } => format!("{file}={value}"),
            Write::IoWeight { weight, .. } => format!("io={weight}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "cpu.max=20000 100000",
            "cpuset.cpus=0-1",
            "memory.swap.max=536870912",
            "memory.max=536870912",
            "memory.low=268435456",
            "pids.max=50",
            "io=100",
            "io.max=8:0 rbps=1048576",
            "hugetlb.2MB.max=0",
            "rdma.max=mlx5_0 hca_handle=3",
            "memory.high=400000000",
        ]
    );
    assert_eq!(l.ignored, ["memory.swappiness"]);
    assert_eq!(
        l.controllers(),
        ["cpu", "cpuset", "hugetlb", "io", "memory", "pids", "rdma"]
    );
}

#[test]
fn bad_toml_names_the_file_line_and_key() {
    // e2e/testdata/cgroups/invalid.toml
    let e = toml_limits("memory]\n  limit = 1024\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid cgroups file `/t/limits.toml`: "),
        "{e}"
    );
    assert!(e.contains("line 1"), "{e}");
    let e = toml_limits("[memory]\nlimit = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("limit"), "{e}");
    let e = toml_limits("[memory]\nswap = 1024\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid cgroups file `/t/limits.toml`: `memory.swap`: a swap limit needs a memory limit"
    );
    let e = toml_limits("[unified]\n\"../x\" = \"1\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`../x` is not a cgroup interface file name"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let r = flag(|r| r.apply_cgroups = Some("/nonexistent/sifr.toml".into()));
    assert_eq!(
        err(&r),
        "cannot read the cgroups file `/nonexistent/sifr.toml`"
    );
}

#[test]
fn the_cgroup_goes_next_to_the_launcher_s_own() {
    let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope\n";
    assert_eq!(
        apply::place(42, false, own),
        Some(apply::Place {
            parent: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice".into(),
            name: "sifr-42".into()
        })
    );
    assert_eq!(
        apply::place(42, true, own),
        Some(apply::Place {
            parent: "/sys/fs/cgroup/sifr".into(),
            name: "42".into()
        })
    );
    // A launcher in the root cgroup (a container's own namespace): its "parent" is the root,
    // which the delegation check then finds not writable.
    assert_eq!(
        apply::place(42, false, "0::/\n").map(|p| p.parent),
        Some("/sys/fs/cgroup".into())
    );
    // cgroup v1 only: no unified line.
    assert_eq!(apply::place(42, false, "4:memory:/user.slice\n"), None);
}
