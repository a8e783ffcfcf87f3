//! Fault injection on the node's shared attachments (issue 24, deliverable 4): while 32 launches
//! of one image start side by side, the image's holder (`sifr-holder`) and, for a user, its FUSE
//! server (`sifr-fuse`) are killed with SIGKILL at random moments. Every launch must either
//! complete or fail with a message, none may hang, and the next launch must work again; once
//! the holder retires, nothing is left (mounts, loop devices, servers, holder files).
//!
//! The moments come from a fixed seed (printed; `SIFR_FAULT_SEED` replays another), so a
//! failure can be rerun. Root attaches with a loop device (only the holder can be killed); the
//! test user attaches with FUSE (`/dev/fuse` set to 0666 for the test, as on HPC nodes).
#![allow(clippy::print_stdout)]

mod images;

use std::process::Stdio;
use std::time::{Duration, Instant};

use images::*;
use sifr_testkit::{As, Rng, stderr, stdout};

const LAUNCHES: usize = 32;
/// A launch that takes longer has hung (32 launches share two cores in CI).
const HANG: Duration = Duration::from_secs(90);
/// What each launch runs: about two seconds of reading the image (programs and files), so
/// that kills land while containers use their attachment.
const WORK: &str = "i=0; while [ $i -lt 12 ]; do /bin/probe cat /etc/passwd >/dev/null || exit 3; \
                    i=$((i+1)); /bin/busybox sleep 0.15; done; /bin/probe cat /etc/passwd";
/// The holder's idle time (seconds), short so that it retires soon after each round.
const IDLE: &str = "2";

fn seed() -> u64 {
    std::env::var("SIFR_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F417)
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// One round: `LAUNCHES` launches of `probe cat /etc/passwd` started together while a killer
/// thread SIGKILLs the processes called one of `victims` at moments drawn from `rng`. Returns
/// how many launches succeeded and how many kills landed.
fn round(im: &Images, who: As, victims: &[&str], rng: &mut Rng) -> (usize, usize) {
    let dir = im.fx.dir.path().to_path_buf();
    let sif = im.sif.to_str().unwrap().to_string();
    let started = Instant::now();
    let children: Vec<_> = (0..LAUNCHES)
        .map(|_| {
            sifr_as(&im.fx, who, &["exec", &sif, "/bin/sh", "-c", WORK])
                .env("SIFR_SHARE_IDLE", IDLE)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill moments within the first three seconds, while launches attach, join and run.
    let mut moments: Vec<(u64, &str)> = (0..6)
        .map(|_| (rng.below(3000) as u64, *rng.pick(victims)))
        .collect();
    moments.sort();
    let killer = {
        let dir = dir.clone();
        let moments: Vec<(u64, String)> =
            moments.iter().map(|(t, v)| (*t, v.to_string())).collect();
        std::thread::spawn(move || {
            let mut landed = 0;
            for (t, victim) in moments {
                let at = started + Duration::from_millis(t);
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                for pid in named(&dir, &victim) {
                    kill(pid);
                    println!(
                        "{:>5} ms: killed {victim} {pid}",
                        started.elapsed().as_millis()
                    );
                    landed += 1;
                }
            }
            landed
        })
    };
    let mut ok = 0;
    for mut child in children {
        let deadline = Instant::now() + HANG;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "a launch hung for {HANG:?} while holders/servers were killed (seed {})",
                    seed()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(!e.contains("panicked"), "a launch panicked: {e}");
        match status.code() {
            Some(0) => {
                assert!(
                    o.contains("root:x:0:0"),
                    "succeeded without output: {o}\n{e}"
                );
                ok += 1;
            }
            Some(code) => {
                println!("a launch failed ({code}): {}", e.trim());
                // The image vanished under the command (its server was killed), or the launch
                // could not attach: either way it says what happened.
                assert!(
                    // sifr's error, or the command's own report of its image going away.
                    e.contains("FATAL:")
                        || e.contains("stopped answering")
                        || e.contains("not connected")
                        || e.contains("Bus error"),
                    "a launch failed ({status}) without saying why (seed {}): {e}",
                    seed()
                );
                assert!(
                    !e.contains("overlay unavailable"),
                    "a launch went on with a dead image (seed {}): {e}",
                    seed()
                );
            }
            None => panic!(
                "a launch was killed by a signal ({status}): {e} (seed {})",
                seed()
            ),
        }
    }
    let landed = killer.join().unwrap();
    println!("round took {} ms", started.elapsed().as_millis());
    (ok, landed)
}

/// After the faults: a fresh launch works, and once the holder retires nothing is left.
fn recovers(im: &Images, who: As) {
    let sif = im.sif.to_str().unwrap();
    let o = sifr_as(
        &im.fx,
        who,
        &["exec", sif, "/bin/probe", "cat", "/etc/passwd"],
    )
    .env("SIFR_SHARE_IDLE", IDLE)
    .output()
    .unwrap();
    assert!(
        o.status.success() && stdout(&o).contains("root:x:0:0"),
        "the launch after the faults failed: {}",
        stderr(&o)
    );
    let dir = im.fx.dir.path();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !named(dir, "sifr-holder").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_nothing_left(im);
}

fn inject(who: As, victims: &[&str]) {
    let im = Images::new();
    if !im.fx.has_shell {
        sifr_testkit::skip("busybox is needed in the test image (apt-get install busybox-static)");
        return;
    }
    let mut rng = Rng::new(seed());
    println!("seed {} (SIFR_FAULT_SEED replays it)", seed());
    let mut total = (0, 0);
    for _ in 0..3 {
        let (ok, landed) = round(&im, who, victims, &mut rng);
        println!("{ok}/{LAUNCHES} launches completed, {landed} kills landed");
        total = (total.0 + ok, total.1 + landed);
        recovers(&im, who);
    }
    assert!(total.1 > 0, "no kill landed: the test tested nothing");
}

#[test]
fn launches_survive_a_killed_holder_as_root() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("the loop-device path needs root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    inject(As::Root, &["sifr-holder"]);
}

#[test]
fn launches_survive_a_killed_holder_and_fuse_server_as_a_user() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    inject(user, &["sifr-holder", "sifr-fuse"]);
}
