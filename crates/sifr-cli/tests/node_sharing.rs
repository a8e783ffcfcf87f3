//! Launches on one node: ranks of one image started side by side share one attachment and one
//! user namespace (`sifr_launch::share`), and named instances (`instance start|stop|list`,
//! `instance://NAME`). Run as root and as the test user, against images packed at test time.

mod images;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use images::*;
use sifr_testkit::{As, Fixture, stderr, stdout};

/// One launch of `sifr exec IMG /bin/probe rank` that has started: its pid, the address of
/// its secret and its user namespace, as the probe printed them.
struct Rank {
    child: std::process::Child,
    pid: String,
    addr: String,
    user_ns: String,
}

impl Rank {
    fn start(fx: &Fixture, who: As, img: &Path, envs: &[(&str, &str)]) -> Rank {
        Rank::ready(Rank::spawn(fx, who, img, envs))
    }

    /// Start the launch without waiting for it.
    fn spawn(fx: &Fixture, who: As, img: &Path, envs: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = sifr_as(
            fx,
            who,
            &["exec", img.to_str().unwrap(), "/bin/probe", "rank"],
        );
        cmd.envs(envs.iter().copied());
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }

    /// Wait until a spawned launch's probe reports.
    fn ready(mut child: std::process::Child) -> Rank {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let field = |k: &str| {
            first
                .split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_else(|| panic!("no `{k}` in `{first}`"))
                .to_string()
        };
        Rank {
            pid: field("pid="),
            addr: field("addr="),
            user_ns: field("user="),
            child,
        }
    }

    /// SIGTERM, and the probe's exit status for it.
    fn stop(mut self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(self.child.wait().unwrap().code(), Some(115));
    }
}

/// How many times images below `dir` are attached: loop devices backed by them, plus FUSE
/// servers (by process name) naming `dir`.
fn attachments(dir: &Path) -> usize {
    loops_backed_by(dir).len() + named(dir, "sifr-fuse").len()
}

/// The pids of the node's holders of images below `dir`.
fn holders_of(dir: &Path) -> Vec<u32> {
    named(dir, "sifr-holder")
}

/// The MPI case: ranks of one image started side by side by one user share one attachment and
/// one user namespace, so one rank can read another's memory (`process_vm_readv`, which Open
/// MPI's shared-memory transport uses for large messages), and exit in any order.
fn ranks_share(im: &Images, who: As) {
    let fx = &im.fx;
    let a = Rank::start(fx, who, &im.sif, &[]);
    let b = Rank::start(fx, who, &im.sif, &[]);
    assert_eq!(a.user_ns, b.user_ns, "ranks in different user namespaces");
    if who.uid() != 0 {
        assert_ne!(
            a.user_ns,
            std::fs::read_link("/proc/self/ns/user")
                .unwrap()
                .to_string_lossy()
        );
    }
    assert_eq!(
        attachments(fx.dir.path()),
        1,
        "the image was attached twice"
    );
    assert_eq!(holders_of(fx.dir.path()).len(), 1);
    assert_eq!(vm_read(im, who, &a, &[]), "rank-secret\n");
    // The first rank leaves long before the last one; a later one still joins.
    a.stop();
    let c = Rank::start(fx, who, &im.sif, &[]);
    assert_eq!(c.user_ns, b.user_ns);
    b.stop();
    c.stop();
    assert_nothing_left(im);

    // Sharing off: each launch on its own, as Apptainer does.
    let a = Rank::start(fx, who, &im.sif, &[("SIFR_SHARE", "0")]);
    let b = Rank::start(fx, who, &im.sif, &[("SIFR_SHARE", "0")]);
    if who.uid() != 0 {
        assert_ne!(a.user_ns, b.user_ns);
        // Itself unshared too: a sharing launch would leave a holder that retires only
        // after it exits, which the checks below would race with.
        assert_eq!(
            vm_read(im, who, &a, &[("SIFR_SHARE", "0")]),
            "error=EPERM\n"
        );
    }
    assert_eq!(attachments(fx.dir.path()), 2);
    assert!(holders_of(fx.dir.path()).is_empty());
    a.stop();
    b.stop();
    assert_nothing_left(im);
}

/// What a new launch of the image as `who`, with `envs`, reads of `rank`'s secret with
/// `process_vm_readv` (the rank's secret, or `error=...`).
fn vm_read(im: &Images, who: As, rank: &Rank, envs: &[(&str, &str)]) -> String {
    let sif = im.sif.to_str().unwrap();
    let o = sifr_as(
        &im.fx,
        who,
        &["exec", sif, "/bin/probe", "vm-read", &rank.pid, &rank.addr],
    )
    .envs(envs.iter().copied())
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// `mpirun -np 8`: launches started at the same moment wait for the first one's holder
/// instead of each attaching the image.
fn simultaneous_ranks_share(im: &Images, who: As) {
    let children: Vec<_> = (0..8)
        .map(|_| Rank::spawn(&im.fx, who, &im.sif, &[]))
        .collect();
    let ranks: Vec<Rank> = children.into_iter().map(Rank::ready).collect();
    let spaces: std::collections::BTreeSet<&str> =
        ranks.iter().map(|r| r.user_ns.as_str()).collect();
    assert_eq!(spaces.len(), 1, "{spaces:?}");
    assert_eq!(attachments(im.fx.dir.path()), 1);
    for r in ranks {
        r.stop();
    }
    assert_nothing_left(im);
}

/// A holder killed while ranks run: they keep their image (the FUSE server outlives it), and
/// the next launch starts a new holder instead of failing on the dead one's socket.
fn killed_holder_is_replaced(im: &Images, who: As) {
    let fx = &im.fx;
    let a = Rank::start(fx, who, &im.sif, &[]);
    let holders = holders_of(fx.dir.path());
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert!(
        Command::new("kill")
            .args(["-KILL", &holders[0].to_string()])
            .status()
            .unwrap()
            .success()
    );
    let c = Rank::start(fx, who, &im.sif, &[]);
    let now = holders_of(fx.dir.path());
    assert!(
        now.len() == 1 && now[0] != holders[0],
        "{holders:?} then {now:?}"
    );
    let o = run(
        fx,
        who,
        &[
            "exec",
            im.sif.to_str().unwrap(),
            "/bin/probe",
            "cat",
            "/etc/passwd",
        ],
    );
    assert!(stdout(&o).contains("root:x:0:0"), "{}", stderr(&o));
    c.stop();
    a.stop();
    assert_nothing_left(im);
}

/// What outlives a launch (the holder, the FUSE server) keeps none of the launch's descriptors:
/// a pipe the launch inherited (as `mpirun` and `srun` hand ranks) reaches its end when the
/// launch exits, while the holder still runs.
fn outliving_processes_keep_no_inherited_pipe(im: &Images, who: As) {
    let fx = &im.fx;
    let sif = im.sif.to_str().unwrap();
    let launch = sifr_as(fx, who, &["exec", sif, "/bin/probe", "cat", "/etc/passwd"]);
    // The same command with its stdout pipe also on descriptor 7, which nothing closes.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec \"$@\" 7>&1", "sh"])
        .arg(launch.get_program())
        .args(launch.get_args())
        .current_dir(launch.get_current_dir().unwrap_or(Path::new("/")));
    for (k, v) in launch.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("SIFR_SHARE_IDLE", "3");
    // `output` returns once every copy of the stdout pipe is closed.
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        holders_of(fx.dir.path()).len(),
        1,
        "the pipe ended only once the holder had gone"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !holders_of(fx.dir.path()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_nothing_left(im);
}

#[test]
fn ranks_of_one_image_share_one_loop_mount_as_root() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("the loop-device path needs root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let im = Images::new();
    ranks_share(&im, As::Root);
    simultaneous_ranks_share(&im, As::Root);
    killed_holder_is_replaced(&im, As::Root);
    outliving_processes_keep_no_inherited_pipe(&im, As::Root);
}

#[test]
fn ranks_of_one_image_share_one_fuse_server_and_user_namespace_as_a_user() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let im = Images::new();
    ranks_share(&im, user);
    simultaneous_ranks_share(&im, user);
    killed_holder_is_replaced(&im, user);
    outliving_processes_keep_no_inherited_pipe(&im, user);
}

/// The fixture with a start script that reports its arguments and then serves (waits for a
/// signal, as a daemon would).
fn with_startscript() -> Images {
    use std::os::unix::fs::PermissionsExt as _;
    let fx = Fixture::new();
    let p = fx.image.join(".singularity.d/startscript");
    std::fs::write(
        &p,
        "#!/bin/sh\necho \"started $*\"\nexec /bin/probe wait-signal\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    Images::pack(fx)
}

/// `sifr` as `who` with a home of their own (where instances keep their state and logs).
fn sifr_home(im: &Images, who: As, args: &[&str]) -> std::process::Output {
    let home = im.fx.dir.path().join(format!("home-{}", who.uid()));
    if !home.exists() {
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(who.uid()), Some(who.gid())).unwrap();
    }
    sifr_as(&im.fx, who, args)
        .env("HOME", &home)
        .output()
        .unwrap()
}

fn instance_lifecycle(im: &Images, who: As) {
    let sif = im.sif.to_str().unwrap();
    let o = sifr_home(im, who, &["instance", "start", sif, "web", "a", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("INFO:    instance started successfully"),
        "{}",
        stderr(&o)
    );

    let o = sifr_home(im, who, &["instance", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pid = listed["instances"][0]["pid"].as_i64().unwrap();
    assert_eq!(listed["instances"][0]["instance"], "web");
    assert_eq!(listed["instances"].as_array().unwrap().len(), 1);

    // A command in the instance runs in its mount namespace, with the image's environment.
    let o = sifr_home(
        im,
        who,
        &["exec", "instance://web", "/bin/probe", "ns", "mnt"],
    );
    let inst_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(
        stdout(&o).trim(),
        inst_mnt.to_string_lossy(),
        "{}",
        stderr(&o)
    );
    let o = sifr_home(im, who, &["exec", "instance://web", "/bin/probe", "env"]);
    assert!(
        stdout(&o).contains("APPTAINER_INSTANCE=web\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("IMG_PATHVAR=/opt/img\n"),
        "{}",
        stdout(&o)
    );
    let o = sifr_home(im, who, &["run", "instance://web", "x"]);
    assert_eq!(stdout(&o), "runscript: x\n", "{}", stderr(&o));

    // The instance and an ordinary launch of the same image share the node's attachment.
    let o = sifr_home(im, who, &["exec", sif, "/bin/probe", "ns", "user"]);
    let inst_user = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(stdout(&o).trim(), inst_user.to_string_lossy());
    assert_eq!(attachments(im.fx.dir.path()), 1);

    // e2e/instance/instance.go, testGhostInstance: starting a running name again fails.
    let o = sifr_home(im, who, &["instance", "start", sif, "web"]);
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    assert!(
        stderr(&o).contains("instance web already exists"),
        "{}",
        stderr(&o)
    );

    let o = sifr_home(im, who, &["instance", "stop", "web"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = im.fx.dir.path().join(format!("home-{}", who.uid()));
    let out = walk_find(&log, "web.out");
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        // SIGINT: Apptainer's `instance stop` signal.
        "started a b\nready\ngot signal 2\n"
    );
    let o = sifr_home(im, who, &["instance", "list"]);
    assert!(!stdout(&o).contains("web"), "{}", stdout(&o));
    let o = sifr_home(im, who, &["exec", "instance://web", "/bin/probe", "id"]);
    assert!(
        stderr(&o).contains("no instance `web` runs"),
        "{}",
        stderr(&o)
    );
    assert_nothing_left(im);
}

/// The first file called `name` below `dir`.
fn walk_find(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() == name {
                return p;
            }
        }
    }
    panic!("no `{name}` below `{}`", dir.display());
}

#[test]
fn instances_run_the_start_script_take_commands_and_stop_as_root() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("the loop-device path needs root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    instance_lifecycle(&with_startscript(), As::Root);
}

#[test]
fn instances_run_the_start_script_take_commands_and_stop_as_a_user() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    instance_lifecycle(&with_startscript(), user);
}

#[test]
fn ranks_share_one_extraction_when_dev_fuse_is_not_usable() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o600);
    let im = Images::new();
    let fx = &im.fx;
    let a = Rank::start(fx, user, &im.sif, &[]);
    let b = Rank::start(fx, user, &im.sif, &[]);
    assert_eq!(a.user_ns, b.user_ns);
    assert_eq!(extraction_dirs().len(), 1, "{:?}", extraction_dirs());
    assert_eq!(vm_read(&im, user, &a, &[]), "rank-secret\n");
    a.stop();
    b.stop();
    assert_nothing_left(&im);
}

// Issue 24's probe: another user cannot take over a user's holders by making their runtime
// directory first. A `$TMPDIR/sifr-UID` that another user owns, that others may enter, or
// that is a symlink is refused: the launch runs on its own (unshared), puts nothing there
// and starts no holder.
#[test]
fn a_runtime_directory_made_by_another_user_is_not_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let im = Images::new();
    let fx = &im.fx;
    let sif = im.sif.to_str().unwrap();
    let trap = fx.dir.path().join("trap");
    std::fs::create_dir(&trap).unwrap();
    std::fs::set_permissions(&trap, std::fs::Permissions::from_mode(0o777)).unwrap();
    let planted = |tmp: &Path, how: &str| {
        let dir = tmp.join(format!("sifr-{}", user.uid()));
        match how {
            // Root's, world-writable: what another user could make first in a shared /tmp.
            "foreign" => {
                std::fs::create_dir(&dir).unwrap();
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            }
            // The user's own, but open to others.
            "open" => {
                std::fs::create_dir(&dir).unwrap();
                std::os::unix::fs::chown(&dir, Some(user.uid()), None).unwrap();
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            // A symlink to a directory of the attacker's.
            _ => std::os::unix::fs::symlink(&trap, &dir).unwrap(),
        }
        dir
    };
    for how in ["foreign", "open", "symlink"] {
        let tmp = fx.dir.path().join(format!("tmp-{how}"));
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let dir = planted(&tmp, how);
        let o = sifr_as(fx, user, &["exec", sif, "/bin/probe", "cat", "/etc/passwd"])
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        assert!(
            o.status.success() && stdout(&o).contains("root:x:0:0"),
            "{how}: {}",
            stderr(&o)
        );
        let inside: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(inside.is_empty(), "{how}: the launch wrote into {dir:?}");
        assert!(
            std::fs::read_dir(&trap).unwrap().next().is_none(),
            "{how}: the launch wrote through the symlink"
        );
        assert!(
            holders_of(fx.dir.path()).is_empty(),
            "{how}: a holder started"
        );
    }
    assert_nothing_left(&im);
}

// Issue 24 ("stale temporary files of a dead sifr are swept by the next run ... never while
// their owner lives"): an unpacked image (no usable /dev/fuse) whose launch was killed with
// SIGKILL is removed by the next unpacking launch once it is stale, while the tree of a
// launch that still runs stays, however old.
#[test]
fn a_killed_launchs_unpacked_image_is_swept_by_the_next_one_but_a_live_ones_is_kept() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o600);
    let im = Images::new();
    let fx = &im.fx;
    let tmp = fx.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let trees = || -> Vec<String> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("sifr-extract-"))
            .collect()
    };
    let unshared = [("SIFR_SHARE", "0"), ("TMPDIR", tmp.to_str().unwrap())];
    let live = Rank::start(fx, user, &im.sif, &unshared);
    let killed = Rank::start(fx, user, &im.sif, &unshared);
    assert_eq!(trees().len(), 2, "{:?}", trees());
    let before = trees();
    let mut killed = killed;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    // Its container outlives it (no PID namespace); end it too, as a batch system would.
    let _ = Command::new("kill").args(["-KILL", &killed.pid]).status();
    // Both trees look stale.
    for t in &before {
        let st = Command::new("touch")
            .args(["-h", "-d", "2 minutes ago"])
            .arg(tmp.join(t))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let o = sifr_as(
        fx,
        user,
        &["exec", im.sif.to_str().unwrap(), "/bin/probe", "id"],
    )
    .envs(unshared)
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let after = trees();
    assert_eq!(
        after.len(),
        1,
        "the killed launch's tree goes, the live one's stays: {after:?}"
    );
    assert!(before.contains(&after[0]));
    // The live launch still has its image: it ends normally (and removes its own tree).
    live.stop();
    assert!(trees().is_empty(), "{:?}", trees());
    assert_nothing_left(&im);
}
