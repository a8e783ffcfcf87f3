//! `sifr exec --nv|--nvccli|--rocm` end to end against a fake GPU driver installed for real, with
//! no test hook in sifr: each command runs in a private mount namespace (`unshare -m`) where a
//! setup script puts real ELF shared objects with the driver's sonames into the host's library
//! directories (an overlay over `/usr` whose writes land in a tmpfs), stub programs into
//! `/usr/bin`, vendor JSON files, device nodes (a tmpfs `/dev` holding binds of the real nodes
//! plus `mknod`ed GPU ones), the persistenced socket, and a loader cache made by `ldconfig`
//! bound over `/etc/ld.so.cache`. sifr then runs as root, or as the test user through
//! `setpriv`, inside that namespace, and a probe in the container reports what it sees. The
//! namespace, and everything in it, ends with the command: nothing is left on the host.
//!
//! Needs root (mounts, `mknod`) and gcc; the 32-bit libraries need `gcc -m32` (no 32-bit libc
//! is needed: they are built without one). A test that cannot run says why, and fails under
//! `SIFR_TEST_STRICT` (`sifr_testkit::skip`).

mod gpu_driver;

use gpu_driver::*;
use sifr_testkit::{As, Fixture, TestCommand, TestOutput, stderr, stdout};

/// `sifr exec FLAGS IMG probe ARGS` through `cmd` (the fake host, as a user, with any
/// environment the test sets).
fn probe_in(cmd: TestCommand, flags: &[&str], img: &str, args: &[&str]) -> TestOutput {
    cmd.arg("exec")
        .args(flags)
        .arg(img)
        .arg("probe")
        .args(args)
        .output()
}

/// The identities to run as, the fake driver and the probe image, made in that order; `None`
/// (after [`sifr_testkit::skip`]) where the test cannot run.
fn setup() -> Option<(Vec<As>, FakeDriver, Fixture)> {
    let who = identities()?;
    let fake = FakeDriver::new();
    Some((who, fake, image()))
}

#[test]
fn nv_binds_exactly_the_listed_driver_files_and_puts_container_libraries_first() {
    let Some((who, fake, fx)) = setup() else {
        return;
    };
    let img = fx.image.to_str().unwrap();
    let conf = fake.site_config();
    let site = [("SIFR_CONFIG", conf.to_str().unwrap())];
    for who in who {
        let o = probe_in(
            fake.sifr(&fx, who).envs(site),
            &["--nv"],
            img,
            &["ls", "/.singularity.d/libs"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!(
                "libEGL_nvidia.so.0\nlibcuda.so\nlibcuda.so.1\nlibnvidia-glcore.so.{VERSION}\nlibnvidia-ml.so.1\nlibnvidia-ptxjitcompiler.so.1\n"
            ),
            "uid {}",
            who.uid()
        );
        assert!(!stderr(&o).contains("WARN"), "{}", stderr(&o));

        // The bound files are the driver's, of the right class, read through the links.
        let o = probe_in(
            fake.sifr(&fx, who).envs(site),
            &["--nv"],
            img,
            &[
                "cat",
                "/.singularity.d/libs/libcuda.so.1",
                "/.singularity.d/libs/libnvidia-ml.so.1",
            ],
        );
        let out = stdout(&o);
        assert!(out.contains("fake-driver libcuda 64"), "{}", stderr(&o));
        assert!(out.contains("fake-driver libnvidia-ml 64"));
        assert!(
            !out.contains("fake-driver libcuda 32"),
            "a 32-bit file in libs"
        );

        let o = probe_in(fake.sifr(&fx, who).envs(site), &["--nv"], img, &["env"]);
        let out = stdout(&o);
        let libs32 = if fake.has32 {
            ":/.singularity.d/libs32"
        } else {
            ""
        };
        assert_eq!(
            line_of(&out, "LD_LIBRARY_PATH="),
            Some(
                format!(
                    "/opt/imglib:/usr/lib/{}:/usr/lib:/.singularity.d/libs{libs32}",
                    triplet()
                )
                .as_str()
            ),
            "{out}"
        );

        let mut cat = vec!["exec", "--nv", img, "probe", "cat"];
        let bins: Vec<String> = PROGRAMS.iter().map(|p| format!("/usr/bin/{p}")).collect();
        cat.extend(bins.iter().map(String::as_str));
        cat.extend([ICD, EGL_VENDOR]);
        let o = fake.sifr(&fx, who).envs(site).args(&cat).output();
        let expected: String = PROGRAMS
            .iter()
            .map(|p| format!("#!/bin/sh\necho fake {p}\n"))
            .collect();
        let out = stdout(&o);
        assert!(out.starts_with(&expected), "{out}\n{}", stderr(&o));
        assert!(out.contains("libGLX_nvidia.so.0") && out.contains("libEGL_nvidia.so.0"));

        let o = probe_in(
            fake.sifr(&fx, who).envs(site),
            &["--nv"],
            img,
            &[
                "node",
                "/var/run/nvidia-persistenced/socket",
                "/usr/share/nvidia/nvoptix.bin",
                "/usr/bin/rocm-smi",
            ],
        );
        assert_eq!(
            stdout(&o),
            "/var/run/nvidia-persistenced/socket socket\n/usr/share/nvidia/nvoptix.bin missing\n/usr/bin/rocm-smi missing\n"
        );
    }
    fx.assert_image_untouched();
    assert!(sifr_testkit::host_mounts_mentioning(fake.dir.path()).is_empty());
}

#[test]
fn nv_binds_32_bit_driver_libraries_into_libs32() {
    let Some(who) = identities() else { return };
    let fake = FakeDriver::new();
    if !fake.has32 {
        // `FakeDriver::new` said why (a failure under SIFR_TEST_STRICT on x86-64).
        return;
    }
    let fx = image();
    let img = fx.image.to_str().unwrap();
    let conf = fake.site_config();
    for who in who {
        let site = [("SIFR_CONFIG", conf.to_str().unwrap())];
        let o = probe_in(
            fake.sifr(&fx, who).envs(site),
            &["--nv"],
            img,
            &["ls", "/.singularity.d/libs32"],
        );
        assert_eq!(
            stdout(&o),
            "libcuda.so.1\nlibnvidia-ml.so.1\n",
            "{}",
            stderr(&o)
        );
        let o = probe_in(
            fake.sifr(&fx, who).envs(site),
            &["--nv"],
            img,
            &["cat", "/.singularity.d/libs32/libcuda.so.1"],
        );
        assert!(stdout(&o).contains("fake-driver libcuda 32"));
    }
}

#[test]
fn the_builtin_list_takes_the_driver_but_not_the_cuda_runtime() {
    let Some((who, fake, fx)) = setup() else {
        return;
    };
    let img = fx.image.to_str().unwrap();
    for who in who {
        let o = probe_in(
            fake.sifr(&fx, who),
            &["--nv"],
            img,
            &["ls", "/.singularity.d/libs"],
        );
        let out = stdout(&o);
        for (_, soname) in LIBS64 {
            assert!(out.lines().any(|l| l == *soname), "{soname} in {out}");
        }
        assert!(!out.contains("libcudart"), "{out}");
    }
}

#[test]
fn devices_are_the_hosts_and_contain_binds_only_the_selected_gpus() {
    let Some((who, fake, fx)) = setup() else {
        return;
    };
    let img = fx.image.to_str().unwrap();
    let nodes = [
        "/dev/nvidia0",
        "/dev/nvidia1",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-caps/nvidia-cap1",
    ];
    let node_args = |flags: &[&'static str]| {
        let mut a = vec!["exec"];
        a.extend(flags);
        a.extend([img, "probe", "node"]);
        a.extend(nodes);
        a
    };
    let all = "/dev/nvidia0 c 195:0\n/dev/nvidia1 c 195:1\n/dev/nvidiactl c 195:255\n\
               /dev/nvidia-uvm c 509:0\n/dev/nvidia-caps/nvidia-cap1 c 508:1\n";
    for who in who {
        for flags in [&["--nv"][..], &["--nv", "--contain"], &["--nv", "-C"]] {
            let o = fake.sifr(&fx, who).args(node_args(flags)).output();
            assert_eq!(stdout(&o), all, "{flags:?}: {}", stderr(&o));
        }
        // --contain without --nv: a minimal /dev without GPUs.
        let o = fake.sifr(&fx, who).args(node_args(&["--contain"])).output();
        assert!(
            stdout(&o).lines().all(|l| l.ends_with(" missing")),
            "{}",
            stdout(&o)
        );

        let pick = [
            ("NVIDIA_VISIBLE_DEVICES", "1"),
            ("CUDA_VISIBLE_DEVICES", "0"),
        ];
        let o = fake
            .sifr(&fx, who)
            .envs(pick)
            .args(node_args(&["--nv", "-c"]))
            .output();
        assert_eq!(
            stdout(&o),
            "/dev/nvidia0 missing\n/dev/nvidia1 c 195:1\n/dev/nvidiactl c 195:255\n\
             /dev/nvidia-uvm c 509:0\n/dev/nvidia-caps/nvidia-cap1 c 508:1\n"
        );
        // The scheduler's GPU choice reaches the program even with --cleanenv.
        let o = probe_in(
            fake.sifr(&fx, who).envs(pick),
            &["--nv", "--cleanenv"],
            img,
            &["env"],
        );
        let out = stdout(&o);
        assert_eq!(line_of(&out, "CUDA_VISIBLE_DEVICES="), Some("0"), "{out}");
        assert_eq!(line_of(&out, "NVIDIA_VISIBLE_DEVICES="), Some("1"));
        // Without --contain every node shows, so CUDA is told which GPU to use.
        let o = probe_in(
            fake.sifr(&fx, who).env("NVIDIA_VISIBLE_DEVICES", "1"),
            &["--nv"],
            img,
            &["env"],
        );
        assert_eq!(line_of(&stdout(&o), "CUDA_VISIBLE_DEVICES="), Some("1"));
    }
}

#[test]
fn without_a_driver_nv_warns_naming_what_is_missing_and_runs() {
    let Some((who, fake, fx)) = setup() else {
        return;
    };
    let img = fx.image.to_str().unwrap();
    let conf = fake.site_config();
    for who in who {
        let o = probe_in(
            fake.sifr_without_driver(&fx, who)
                .envs([("SIFR_CONFIG", conf.to_str().unwrap())]),
            &["--nv"],
            img,
            &["ls", "/.singularity.d"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(
                "--nv: no NVIDIA driver found on this host (no `libcuda.so` in the loader cache `/etc/ld.so.cache`, no `nvidia-smi` on PATH)"
            ),
            "{err}"
        );
        assert!(
            err.contains("no `/dev/nvidia*` device nodes on this host"),
            "{err}"
        );
        assert!(!stdout(&o).contains("libs"), "{}", stdout(&o));
    }
}

#[test]
fn nvccli_binds_what_nvidia_container_cli_lists() {
    let Some((who, fake, fx)) = setup() else {
        return;
    };
    let img = fx.image.to_str().unwrap();
    for who in who {
        let o = probe_in(
            fake.sifr_with_nvccli(&fx, who),
            &["--nvccli"],
            img,
            &["ls", "/.singularity.d/libs"],
        );
        assert_eq!(
            stdout(&o),
            format!("libcuda.so\nlibcuda.so.1\nlibcuda.so.{VERSION}\n"),
            "{}",
            stderr(&o)
        );
        let args = std::fs::read_to_string(fake.dir.path().join("out/nvccli-args")).unwrap();
        assert_eq!(args, "list --binaries --libraries --ipcs\n");
        let o = probe_in(
            fake.sifr(&fx, who),
            &["--nvccli"],
            img,
            &["ls", "/.singularity.d/libs"],
        );
        assert!(
            stderr(&o).contains("--nvccli: `nvidia-container-cli` is not installed"),
            "{}",
            stderr(&o)
        );
        assert!(stdout(&o).contains("libnvidia-ml.so.1"), "{}", stdout(&o));
    }
}

#[test]
fn rocm_binds_kfd_and_dri_under_contain() {
    let Some((who, fake, fx)) = setup() else {
        return;
    };
    let img = fx.image.to_str().unwrap();
    for who in who {
        let o = probe_in(
            fake.sifr(&fx, who).env("ROCR_VISIBLE_DEVICES", "0"),
            &["--rocm", "-C"],
            img,
            &[
                "node",
                "/dev/kfd",
                "/dev/dri/renderD128",
                "/dev/dri/card0",
                "/dev/nvidiactl",
                "/usr/bin/rocm-smi",
            ],
        );
        assert_eq!(
            stdout(&o),
            "/dev/kfd c 507:0\n/dev/dri/renderD128 c 226:128\n/dev/dri/card0 c 226:0\n\
             /dev/nvidiactl missing\n/usr/bin/rocm-smi file\n",
            "{}",
            stderr(&o)
        );
        let o = probe_in(
            fake.sifr(&fx, who).env("ROCR_VISIBLE_DEVICES", "0"),
            &["--rocm", "-C"],
            img,
            &["env"],
        );
        assert_eq!(line_of(&stdout(&o), "ROCR_VISIBLE_DEVICES="), Some("0"));
    }
}

#[test]
fn build_nv_gives_post_the_driver_and_leaves_nothing_in_the_image() {
    if identities().is_none() {
        return;
    }
    let fake = FakeDriver::new();
    let fx = image();
    let conf = fake.site_config();
    std::fs::write(
        fx.work.join("gpu.def"),
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    \
         probe cat /.singularity.d/libs/libcuda.so.1 > /opt/seen-in-post\n    \
         probe env | grep ^LD_LIBRARY_PATH= >> /opt/seen-in-post\n",
    )
    .unwrap();
    let o = fake
        .sifr(&fx, As::Root)
        .envs([("SIFR_CONFIG", conf.to_str().unwrap())])
        .args(["build", "--nv", "--sandbox", "out", "gpu.def"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = fx.work.join("out");
    let seen =
        String::from_utf8_lossy(&std::fs::read(out.join("opt/seen-in-post")).unwrap()).into_owned();
    assert!(seen.contains("fake-driver libcuda 64"), "{seen}");
    assert!(seen.contains("/.singularity.d/libs"), "{seen}");
    assert_eq!(
        std::fs::read_dir(out.join(".singularity.d/libs"))
            .unwrap()
            .count(),
        0,
        "the host libraries are bound, never copied into the image"
    );
    // Without --nv, %post has no driver.
    std::fs::remove_dir_all(&out).unwrap();
    let o = fake
        .sifr(&fx, As::Root)
        .args(["build", "--sandbox", "out", "gpu.def"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen =
        String::from_utf8_lossy(&std::fs::read(out.join("opt/seen-in-post")).unwrap()).into_owned();
    assert!(!seen.contains("fake-driver"), "{seen}");
}
