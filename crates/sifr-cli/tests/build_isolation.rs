//! What a definition-file build may not do to the host, as root and as an ordinary user
//! (fakeroot): a build stopped by a signal removes its work and writes nothing, `%post` dies
//! with a build killed by SIGKILL (issue 24, finding 1), and a base image's symlinks cannot aim
//! `%post`'s writes at the host's `/tmp`, `/var/tmp` or `/dev/shm` (finding 6).

mod build_case;

use std::path::Path;
use std::process::Command;

use build_case::{Case, builders, ok, sifr};
use sifr_testkit::{stderr, stdout};

#[test]
fn a_build_stopped_by_a_signal_removes_its_work_and_writes_nothing() {
    use std::io::{BufRead as _, BufReader};
    let Some(c) = Case::new() else { return };
    c.write(
        "slow.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    probe wait-signal\n    echo not-reached\n",
    );
    for who in builders() {
        let mut child =
            c.fx.command(sifr(), who)
                .args(["build", "slow.sif", "slow.def"])
                .env("SIFR_TMPDIR", &c.tmp)
                .command()
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert_eq!(first, "ready", "%post started");
        // Only sifr is signalled, as a batch system or `kill PID` does.
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(128 + 15), "{e}");
        assert!(e.contains("interrupted by signal 15"), "{e}");
        assert!(!c.fx.work.join("slow.sif").exists());
        c.assert_clean();
    }
}

/// The pids of processes whose command line is exactly `argv` (NUL-separated in /proc).
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// A started build that is killed if the test fails before it kills it itself (a failed
/// assertion must not leave the build running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Issue 24, finding 1: `kill -9` of `sifr build` left `%post` running (a `sleep` outlived the
// build, as root and with fakeroot). The section now runs in a PID namespace whose init dies
// with the build, so the kernel ends everything `%post` started, backgrounded or not.
#[test]
fn post_dies_with_a_build_killed_by_sigkill() {
    use std::io::{BufRead as _, BufReader};
    let Some(c) = Case::new() else { return };
    for (n, who) in builders().into_iter().enumerate() {
        // Numbers no other test uses, so the processes found are this build's.
        let bg = format!("{}", 424_200 + std::process::id() % 1000 * 10 + n as u32);
        let fg = format!("{}", 434_200 + std::process::id() % 1000 * 10 + n as u32);
        let def = format!(
            "Bootstrap: localimage\nFrom: ../image\n\n%post\n    sleep {bg} &\n    echo ready\n    sleep {fg}\n"
        );
        c.write("killed.def", &def);
        let mut child = KillOnDrop(
            c.fx.command(sifr(), who)
                .args(["build", "killed.sif", "killed.def"])
                .env("SIFR_TMPDIR", &c.tmp)
                .command()
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert_eq!(first, "ready", "%post started");
        let both = |a: &str| processes_running(&["sleep", a]);
        // Both sleeps are forked by now; each shows its command line once it has exec'd.
        let t0 = std::time::Instant::now();
        while (both(&bg).len(), both(&fg).len()) != (1, 1) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "%post's two sleeps do not show"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let t0 = std::time::Instant::now();
        let left = loop {
            let left = [both(&bg), both(&fg)].concat();
            if left.is_empty() || t0.elapsed() > std::time::Duration::from_secs(10) {
                break left;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        for pid in &left {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(
            left.is_empty(),
            "%post's processes {left:?} outlived the build killed with SIGKILL ({who:?})"
        );
        assert!(!c.fx.work.join("killed.sif").exists());
    }
}

// Issue 24, finding 6: Apptainer binds the host's /tmp and /var/tmp into `%post`, so a base
// image with `/opt -> /tmp/x` aims the build's writes at the host. The sections get their own
// /tmp, /var/tmp and /dev/shm in the build's work directory, removed with it.
#[test]
fn a_base_image_cannot_aim_post_writes_at_host_tmp() {
    let Some(c) = Case::new() else { return };
    let tag = format!("sifr-aim-{}", std::process::id());
    let targets = [
        ("aim-tmp", Path::new("/tmp").join(&tag)),
        ("aim-vartmp", Path::new("/var/tmp").join(&tag)),
        ("aim-shm", Path::new("/dev/shm").join(&tag)),
    ];
    for (link, host) in &targets {
        std::os::unix::fs::symlink(host, c.fx.image.join(link)).unwrap();
    }
    c.write(
        "aim.def",
        &format!(
            "Bootstrap: localimage\nFrom: ../image\n\n%post\n    \
             for d in /tmp /var/tmp /dev/shm; do mkdir $d/{tag}; done\n    \
             for l in aim-tmp aim-vartmp aim-shm; do echo planted > /$l/file; done\n    \
             cat /aim-tmp/file /aim-shm/file\n"
        ),
    );
    for who in builders() {
        let o = c.sifr(who, &["build", "aim.sif", "aim.def"]);
        let leaked: Vec<_> = targets.iter().filter(|(_, h)| h.exists()).collect();
        for (_, h) in &leaked {
            let _ = std::fs::remove_dir_all(h);
        }
        ok(&o, "build");
        assert!(
            leaked.is_empty(),
            "%post wrote to the host through the base image's symlinks: {leaked:?} ({who:?})"
        );
        assert!(stdout(&o).contains("planted\nplanted"), "{}", stdout(&o));
        std::fs::remove_file(c.fx.work.join("aim.sif")).unwrap();
        c.assert_clean();
    }
}
