//! `sifr build` records what an image's programs need from the CPU, and `sifr exec|run` judge
//! it against *this* host before the program starts: programs compiled with gcc at
//! `-march=x86-64-v2/v3/v4` (with and without the ISA note), plus one using AVX512-FP16,
//! which few CPUs have. Each expectation is derived from the real host's features, so the
//! test holds on any x86-64 machine; the "older node" cases are pinned with fake hosts in the
//! unit tests of `sifr_launch::isa_check`.
//!
//! Starting a container needs root or unprivileged user namespaces; the refusals in `error`
//! mode happen before any namespace and need neither.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sifr_isa::{Feature, HostFacts, ImageFacts, Level};

const FP16_LOOP: &str = r#"
#include <stdio.h>
#define N 4096
static _Float16 a[N], b[N], c[N];
int main(int argc, char **argv) {
    for (int i = 0; i < N; i++) { a[i] = (_Float16)(i & 63) + argc; b[i] = (_Float16)(N - i); }
    for (int i = 0; i < N; i++) c[i] = a[i] * b[i] + c[i];
    printf("ran %s %f\n", argv[0], (double)c[argc]);
    return 0;
}
"#;

struct Image {
    _dir: tempfile::TempDir,
    sif: PathBuf,
}

fn gcc(args: &[&str], src: &Path, out: &Path) {
    let o = Command::new("gcc")
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .expect("gcc");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The image, or `None` (reason printed) off x86-64 or without gcc.
fn image() -> Option<Image> {
    if !sifr_testkit::x86_64_gcc("the programs are compiled for the host, which is not x86-64") {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("sifr-isa-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("root");
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    let src = dir.path().join("loop.c");
    std::fs::write(
        &src,
        sifr_testkit::vector_loop_c(r#"printf("ran %s %lld\n", argv[0], la[argc]);"#),
    )
    .unwrap();
    // Static, so the image needs no libc of its own.
    for v in 2..=4 {
        let march = format!("-march=x86-64-v{v}");
        gcc(
            &["-static", "-O2", &march],
            &src,
            &bin.join(format!("prog-v{v}")),
        );
        gcc(
            &["-static", "-O2", &march, "-mneeded"],
            &src,
            &bin.join(format!("prog-v{v}-note")),
        );
    }
    let fp16 = dir.path().join("fp16.c");
    std::fs::write(&fp16, FP16_LOOP).unwrap();
    gcc(
        &["-static", "-O2", "-march=x86-64-v4", "-mavx512fp16"],
        &fp16,
        &bin.join("prog-fp16"),
    );
    std::fs::copy(bin.join("prog-v2"), root.join(".singularity.d/runscript")).unwrap();
    // A `sleep` for the test whose launch joins a running one.
    if Path::new("/bin/busybox").exists() {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    let sif = dir.path().join("img.sif");
    let o = sifr(&["build", sif.to_str().unwrap(), root.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    Some(Image { _dir: dir, sif })
}

fn sifr(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sifr"));
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("APPTAINER") || k.starts_with("SINGULARITY") || k.starts_with("SIFR_") {
            c.env_remove(k);
        }
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether this process may start containers, or why not.
fn can_launch() -> Result<(), String> {
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    if uid.trim() == "0" {
        return Ok(());
    }
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err("user namespaces are disabled and this is not root".into());
    }
    Ok(())
}

fn stored(sif: &Path) -> ImageFacts {
    let img = sifr_sif::Image::open(sif).unwrap();
    let d = img
        .descriptors_of(sifr_sif::DataType::GenericJson)
        .find(|d| d.name() == sifr_isa::SIF_OBJECT_NAME)
        .expect("the build stored ISA facts");
    ImageFacts::from_json(std::str::from_utf8(&img.read_object(d.id()).unwrap()).unwrap()).unwrap()
}

#[test]
fn build_stores_each_programs_level_and_the_isa_note() {
    let Some(im) = image() else { return };
    let facts = stored(&im.sif);
    for v in 2..=4 {
        let level = Level::ALL[v - 1];
        let plain = facts.lookup(&format!("/bin/prog-v{v}")).unwrap();
        assert_eq!(plain.needs.level, Some(level), "{plain:#?}");
        assert!(plain.isa_note_level <= Some(Level::V1), "{plain:#?}");
        let noted = facts.lookup(&format!("/usr/bin/prog-v{v}-note")).unwrap();
        assert_eq!(noted.isa_note_level, Some(level), "{noted:#?}");
        assert_eq!(noted.needs.level, Some(level));
    }
    let fp16 = facts.file("usr/bin/prog-fp16").unwrap();
    assert!(fp16.needs.features.contains(&Feature::Avx512Fp16));
}

#[test]
fn exec_warns_only_for_programs_this_cpu_cannot_run() {
    let Some(im) = image() else { return };
    if let Err(why) = can_launch() {
        sifr_testkit::skip(why);
        return;
    }
    let host = HostFacts::detect();
    let sif = im.sif.to_str().unwrap();
    for v in 2..=4 {
        for suffix in ["", "-note"] {
            let prog = format!("prog-v{v}{suffix}");
            let o = sifr(&["exec", sif, &prog]);
            let err = stderr(&o);
            let fits = host.level >= Some(Level::ALL[v - 1]);
            if fits {
                assert!(!err.contains("WARNING"), "{prog}: {err}");
                assert_eq!(o.status.code(), Some(0), "{prog}: {err}");
                assert!(stdout(&o).starts_with("ran "), "{prog}: {err}");
            } else {
                assert!(
                    err.starts_with(&format!("WARNING: `/usr/bin/{prog}` in image `")),
                    "{prog}: {err}"
                );
            }
        }
    }
}

/// A launch that joins the node's holder of its image (another launch of the image is running)
/// is judged as a first launch is: the warning was skipped on that path, so whether a job's
/// ranks were warned depended on their timing.
#[test]
fn a_launch_joining_a_running_one_of_the_image_is_judged_too() {
    let Some(im) = image() else { return };
    if let Err(why) = can_launch() {
        sifr_testkit::skip(why);
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        sifr_testkit::skip("/bin/busybox (busybox-static) not installed");
        return;
    }
    let host = HostFacts::detect();
    let Some(prog) = [(3, "prog-v3"), (4, "prog-v4")]
        .into_iter()
        .find(|(v, _)| host.level < Some(Level::ALL[v - 1]))
        .map(|(_, p)| p)
        .or((!host.has(Feature::Avx512Fp16)).then_some("prog-fp16"))
    else {
        // The warning needs a program this CPU cannot run; a CPU with x86-64-v4 and
        // AVX512-FP16 runs them all, and no package changes the CPU.
        sifr_testkit::not_here("this CPU runs every program of the image");
        return;
    };
    let sif = im.sif.to_str().unwrap();
    let mut running = Command::new(env!("CARGO_BIN_EXE_sifr"))
        .args(["exec", sif, "busybox", "sleep", "5"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let o = sifr(&["-d", "exec", sif, prog]);
    let _ = running.kill();
    let _ = running.wait();
    let err = stderr(&o);
    assert!(err.contains("joined the node's holder"), "{err}");
    assert!(
        err.contains(&format!("WARNING: `/usr/bin/{prog}` in image `")),
        "{err}"
    );
}

#[test]
fn error_mode_refuses_a_program_needing_what_this_cpu_lacks_before_it_starts() {
    let Some(im) = image() else { return };
    let host = HostFacts::detect();
    if host.has(Feature::Avx512Fp16) {
        // The refusal needs a program this CPU lacks features for; the CPU is the machine's.
        // The unit tests of `sifr_launch::isa_check` pin refusals with fake hosts.
        sifr_testkit::not_here("this CPU has AVX512-FP16, so no program of the image is too new");
        return;
    }
    let sif = im.sif.to_str().unwrap();
    let o = sifr(&["exec", "--isa-check=error", sif, "/bin/prog-fp16"]);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(i32::from(sifr_cli::exit::FAILURE)),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "the program must not start");
    assert!(
        err.starts_with(&format!(
            "FATAL:   `/usr/bin/prog-fp16` in image `{sif}` needs CPU features this host"
        )),
        "{err}"
    );
    assert!(err.contains("AVX512_FP16"), "{err}");
    assert!(err.contains("hint: "), "{err}");

    // A runscript names no program: the image as a whole is judged, naming the file.
    let o = sifr(&["run", "--isa-check=error", sif]);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(i32::from(sifr_cli::exit::FAILURE)),
        "{err}"
    );
    assert!(
        err.contains(&format!("FATAL:   programs in image `{sif}` need")),
        "{err}"
    );
    assert!(err.contains("/usr/bin/prog-fp16: "), "{err}");

    // The setting (here from the environment) applies when the flag is absent.
    let mut c = Command::new(env!("CARGO_BIN_EXE_sifr"));
    let o = c
        .env("SIFR_ISA_CHECK", "error")
        .args(["exec", sif, "prog-fp16"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(i32::from(sifr_cli::exit::FAILURE)),
        "{}",
        stderr(&o)
    );

    if let Err(why) = can_launch() {
        sifr_testkit::skip(format_args!("the warn/off runs: {why}"));
        return;
    }
    // In warn mode the warning comes first, then the program dies as predicted.
    let o = sifr(&["exec", sif, "prog-fp16"]);
    let err = stderr(&o);
    assert!(err.starts_with("WARNING: `/usr/bin/prog-fp16`"), "{err}");
    assert!(err.contains("AVX512_FP16"), "{err}");
    assert_eq!(o.status.code(), Some(128 + 4), "SIGILL expected: {err}");
    // Off: no word.
    let o = sifr(&["exec", "--isa-check=off", sif, "prog-fp16"]);
    assert!(!stderr(&o).contains("WARNING"), "{}", stderr(&o));
    // A program that fits is not flagged although the image holds prog-fp16.
    let o = sifr(&["exec", "--isa-check=error", sif, "prog-v2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ran "));
}

// Portability before the job runs (issue 25): the build says what the image needs and judges
// it against `--target-isa`; `inspect --isa --target` judges it against another CPU.

#[test]
fn build_names_the_level_the_image_needs_and_judges_it_against_target_isa() {
    let Some(im) = image() else { return };
    let root = im._dir.path().join("root");
    let out = im._dir.path().join("t.sif");
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "-F"];
        args.extend_from_slice(extra);
        args.extend([out.to_str().unwrap(), root.to_str().unwrap()]);
        sifr(&args)
    };
    let o = build(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("INFO:    CPU: the image needs x86-64-v4 (/usr/bin/prog-"),
        "{e}"
    );
    assert!(!e.contains("WARNING"), "no target, no judgement: {e}");

    // v2 programs fit a v2 target; v3, v4 and FP16 ones do not.
    let o = build(&["--target-isa", "x86-64-v2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("needs more than --target-isa x86-64-v2") || e.contains("programs in"),
        "{e}"
    );
    assert!(
        e.contains("/usr/bin/prog-v3: ") && e.contains("/usr/bin/prog-fp16: "),
        "{e}"
    );
    assert!(!e.contains("/usr/bin/prog-v2: "), "{e}");
    // On a v4 target only the FP16 program is beyond it.
    let e = stderr(&build(&["--target-isa", "x86-64-v4"]));
    assert!(
        e.contains("1 program in") && e.contains("/usr/bin/prog-fp16: AVX512_FP16"),
        "{e}"
    );

    // `--isa-check error`: the build fails and leaves no image.
    let o = build(&["--target-isa", "x86-64-v3", "--isa-check", "error"]);
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    let e = stderr(&o);
    assert!(
        e.contains("FATAL:   ") && e.contains("the image was removed"),
        "{e}"
    );
    assert!(e.contains("/usr/bin/prog-v4: "), "{e}");
    assert!(!out.exists(), "the image is left after a failed check");
    let o = build(&["--target-isa", "x86-64-v3", "--isa-check", "off"]);
    assert!(
        o.status.success() && !stderr(&o).contains("WARNING"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn inspect_judges_the_image_against_a_named_cpu() {
    let Some(im) = image() else { return };
    let sif = im.sif.to_str().unwrap();
    let o = sifr(&["inspect", "--isa", "--target", "nehalem", sif]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("Target nehalem:      amd64, x86-64-v2: 5 files need features it lacks"),
        "{s}"
    );
    let verdict = &s[s.find("Target nehalem:").unwrap()..];
    assert!(
        verdict.contains("  /usr/bin/prog-v3: ") && !verdict.contains("  /usr/bin/prog-v2: "),
        "{s}"
    );
    assert!(
        !s.contains("This host:"),
        "the target replaces this host: {s}"
    );
    let s = stdout(&sifr(&[
        "inspect",
        "--isa",
        "--target",
        "sapphirerapids",
        sif,
    ]));
    assert!(
        s.contains("Target sapphirerapids: amd64, x86-64-v4: every program can run"),
        "{s}"
    );
    // Zen 3 is v3: the v4 programs and FP16 are beyond it.
    let s = stdout(&sifr(&["inspect", "--isa", "--target", "zen3", sif]));
    assert!(
        s.contains("/usr/bin/prog-v4: ") && s.contains("/usr/bin/prog-fp16: "),
        "{s}"
    );
    let o = sifr(&["inspect", "--isa", "--target", "pentium4", sif]);
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    assert!(
        stderr(&o).contains("unknown CPU or level `pentium4`"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("hint: known: x86-64-v1"),
        "{}",
        stderr(&o)
    );
}
