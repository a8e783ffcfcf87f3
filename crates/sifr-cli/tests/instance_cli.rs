//! `instance start|run|list|stop` as Apptainer's users and scripts see them: the list's JSON
//! keys and columns, the log paths it reports, `--pid-file`, a relative image path, options
//! after the name reaching the start script, `stop --signal/--timeout`, globs and `--user`. Run
//! as root and as the test user, against the probe fixture packed into a SIF whose start script
//! and runscript are the probe (`args ...` prints its arguments and ends; `wait-signal` waits).
//! Expectations name the Apptainer e2e test (`e2e/instance/`) or code they come from.

mod images;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use images::*;
use sifr_testkit::{As, Fixture, stderr, stdout};

/// The probe fixture with the probe as its start script too, packed.
fn image() -> Images {
    let fx = Fixture::new();
    std::fs::copy(
        fx.image.join("bin/probe"),
        fx.image.join(".singularity.d/startscript"),
    )
    .unwrap();
    Images::pack(fx)
}

/// `who`'s home for these tests: a directory of the fixture, theirs.
fn home(im: &Images, who: As) -> PathBuf {
    let home = im.fx.dir.path().join(format!("home-{}", who.uid()));
    if !home.exists() {
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(who.uid()), Some(who.gid())).unwrap();
    }
    home
}

/// `sifr ARGS` as `who` in `dir` with the home of [`home`].
fn sifr_in(im: &Images, who: As, dir: &Path, args: &[&str]) -> Output {
    im.fx
        .command(env!("CARGO_BIN_EXE_sifr"), who)
        .current_dir(dir)
        .env("HOME", home(im, who))
        .args(args)
        .command()
        .output()
        .unwrap()
}

fn sifr(im: &Images, who: As, args: &[&str]) -> Output {
    sifr_in(im, who, &im.fx.work, args)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    o
}

fn listed(im: &Images, who: As, args: &[&str]) -> serde_json::Value {
    let o = ok(sifr(
        im,
        who,
        &[&["instance", "list", "--json"][..], args].concat(),
    ));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Poll `f` for up to 10 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops every instance of `who` when dropped, so that a failed assertion leaves none running.
struct StopAll<'a>(&'a Images, As);

impl Drop for StopAll<'_> {
    fn drop(&mut self) {
        let _ = sifr(self.0, self.1, &["instance", "stop", "--all", "--force"]);
    }
}

fn lifecycle(im: &Images, who: As) {
    let _stop = StopAll(im, who);
    let img_dir = im.sif.parent().unwrap();
    let pid_file = home(im, who).join("web.pid");
    // Issue 19: `instance start image.sif web` from the image's directory (a relative path);
    // everything after the name goes to the start script, options included.
    let o = ok(sifr_in(
        im,
        who,
        img_dir,
        &[
            "instance",
            "start",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "image.sif",
            "web",
            "args",
            "--foo",
            "-c",
            "x",
        ],
    ));
    // internal/pkg/runtime/launch/launcher_linux.go's message.
    assert!(
        stderr(&o).contains("instance started successfully"),
        "{}",
        stderr(&o)
    );

    // singularity-compose's `ps` and e2e/instance/instance_utils.go read these keys.
    let o = ok(sifr(im, who, &["instance", "list", "--json"]));
    let text = stdout(&o);
    let keys = [
        "\"instance\"",
        "\"pid\"",
        "\"img\"",
        "\"ip\"",
        "\"logErrPath\"",
        "\"logOutPath\"",
    ];
    let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "key order: {text}");
    assert!(text.starts_with("{\n\t\"instances\": [\n\t\t{\n"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let web = &v["instances"][0];
    assert_eq!(v["instances"].as_array().unwrap().len(), 1);
    assert_eq!(web["instance"], "web");
    assert_eq!(web["ip"], "");
    assert_eq!(
        Path::new(web["img"].as_str().unwrap()),
        im.sif.canonicalize().unwrap()
    );
    let pid = web["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{pid}\n")
    );
    // The logs are where Apptainer's e2e testInstanceRun reads them, and the list says so.
    let out_log = PathBuf::from(web["logOutPath"].as_str().unwrap());
    let err_log = PathBuf::from(web["logErrPath"].as_str().unwrap());
    let user = passwd_home(who).map(|(n, _)| n).unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let logs = home(im, who)
        .join(".apptainer/instances/logs")
        .join(host.trim())
        .join(user);
    assert_eq!(out_log, logs.join("web.out"));
    assert_eq!(err_log, logs.join("web.err"));
    eventually("the start script's output", || {
        std::fs::read_to_string(&out_log).is_ok_and(|t| t == "--foo\n-c\nx\n")
    });

    // The columns of PrintInstanceList, and the log paths with --logs.
    let o = ok(sifr(im, who, &["instance", "list"]));
    // Go's tabwriter, padding 4: each column as wide as its widest cell plus 4.
    let pw = pid.to_string().len().max(3) + 4;
    let img = web["img"].as_str().unwrap();
    assert_eq!(
        stdout(&o),
        format!(
            "{:<17}{:<pw$}{:<6}IMAGE\n{:<17}{:<pw$}{:<6}{img}\n",
            "INSTANCE NAME", "PID", "IP", "web", pid, ""
        )
    );
    let o = ok(sifr(im, who, &["instance", "list", "--logs"]));
    assert!(stdout(&o).contains(&format!("{}\n", err_log.display())));
    assert!(stdout(&o).contains(&format!("{}\n", out_log.display())));

    // instance run: the runscript (the probe, which prints its arguments after its name when
    // started as `runscript`) with the arguments.
    ok(sifr_in(
        im,
        who,
        img_dir,
        &["instance", "run", "image.sif", "web2", "args", "run", "-x"],
    ));
    let run_log = logs.join("web2.out");
    eventually("the runscript's output", || {
        std::fs::read_to_string(&run_log).is_ok_and(|t| t == "runscript: args run -x\n")
    });

    // Names are globs, as Go's filepath.Match reads them.
    let names = |v: serde_json::Value| -> Vec<String> {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["instance"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(listed(im, who, &[])), ["web", "web2"]);
    assert_eq!(names(listed(im, who, &["web?"])), ["web2"]);
    assert_eq!(names(listed(im, who, &["w[a-e]b"])), ["web"]);
    assert!(names(listed(im, who, &["nope*"])).is_empty());

    // e2e/instance/instance.go, testGhostInstance: a running name cannot start again.
    let o = sifr(
        im,
        who,
        &["instance", "start", im.sif.to_str().unwrap(), "web"],
    );
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    assert!(stderr(&o).contains("instance web already exists"));

    // `--user` is root's (cmd/internal/cli/instance_list_linux.go).
    if who.uid() == 0 {
        assert_eq!(names(listed(im, who, &["--user", "root"])), ["web", "web2"]);
    } else {
        let o = sifr(im, who, &["instance", "list", "--user", "root"]);
        assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
        assert!(stderr(&o).contains("only root user can list user's instances"));
        let o = sifr(im, who, &["instance", "stop", "--user", "root", "web"]);
        assert!(stderr(&o).contains("only root user can stop user's instances"));
    }

    // e2e/instance/instance_utils.go stopInstance, testStopAll: a pattern, then --all.
    let o = ok(sifr(im, who, &["instance", "stop", "web?"]));
    assert!(
        stderr(&o).contains("Stopping web2 instance of "),
        "{}",
        stderr(&o)
    );
    assert_eq!(names(listed(im, who, &[])), ["web"]);
    ok(sifr(im, who, &["instance", "stop", "--all"]));
    assert!(names(listed(im, who, &["--all"])).is_empty());
    // StopInstance: nothing to stop is the command layer's error, status 1.
    let o = sifr(im, who, &["instance", "stop", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no instance found"));
}

/// `stop --signal` sends that signal; one that does not end the instance is followed by
/// SIGKILL after `--timeout`, which takes the start script too.
fn signals(im: &Images, who: As) {
    let sif = im.sif.to_str().unwrap();
    ok(sifr(
        im,
        who,
        &["instance", "start", sif, "sig", "wait-signal"],
    ));
    let log = home(im, who).join(".apptainer/instances/logs");
    let out = |name: &str| {
        let v = listed(im, who, &[name]);
        PathBuf::from(v["instances"][0]["logOutPath"].as_str().unwrap())
    };
    let sig_out = out("sig");
    eventually("the probe to wait", || {
        std::fs::read_to_string(&sig_out).is_ok_and(|t| t == "ready\n")
    });
    ok(sifr(
        im,
        who,
        &["instance", "stop", "--signal", "SIGUSR1", "sig"],
    ));
    assert_eq!(
        std::fs::read_to_string(&sig_out).unwrap(),
        "ready\ngot signal 10\n"
    );

    // SIGCONT is forwarded and ignored: the timeout's SIGKILL ends it all.
    ok(sifr(
        im,
        who,
        &["instance", "start", sif, "stubborn", "wait-signal"],
    ));
    let t = Instant::now();
    let o = ok(sifr(
        im,
        who,
        &["instance", "stop", "-s", "cont", "-t", "1", "stubborn"],
    ));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(
        stderr(&o).contains("Killing stubborn instance of ") && stderr(&o).contains("(Timeout)"),
        "{}",
        stderr(&o)
    );
    assert!(
        listed(im, who, &["--all"])["instances"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // signal.Convert's refusals.
    let o = sifr(im, who, &["instance", "stop", "-s", "FOO", "x"]);
    assert!(stderr(&o).contains("FOO is not a number"));
    let o = sifr(im, who, &["instance", "stop", "-s", "40", "x"]);
    assert!(stderr(&o).contains("can't convert 40 to signal number"));
    assert!(log.exists());
    assert_nothing_left(im);
}

#[test]
fn instance_list_start_run_and_stop_as_apptainer_as_root() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("the loop-device path needs root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let im = image();
    lifecycle(&im, As::Root);
    signals(&im, As::Root);
}

#[test]
fn instance_list_start_run_and_stop_as_apptainer_as_a_user() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let im = image();
    lifecycle(&im, user);
    signals(&im, user);
}

/// Root sees and stops another user's instances with `--user`, in that user's own
/// `~/.apptainer` (their passwd home, as Apptainer's `ConfigDirForUsername`).
#[test]
fn root_lists_and_stops_a_users_instances_with_user() {
    let Some(user) = test_user() else { return };
    let Some((user_name, entry)) = passwd_home(user) else {
        sifr_testkit::skip("the test user has no home directory of their own");
        return;
    };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let im = image();
    let as_user = |args: &[&str]| {
        im.fx
            .command(env!("CARGO_BIN_EXE_sifr"), user)
            .env("HOME", &entry)
            .args(args)
            .command()
            .output()
            .unwrap()
    };
    let name = format!("sifr-test-{}", std::process::id());
    ok(as_user(&[
        "instance",
        "start",
        im.sif.to_str().unwrap(),
        &name,
        "wait-signal",
    ]));
    let o = ok(sifr(
        &im,
        As::Root,
        &["instance", "list", "--json", "--user", &user_name, &name],
    ));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instances"][0]["instance"], name.as_str());
    let log = PathBuf::from(v["instances"][0]["logOutPath"].as_str().unwrap());
    assert!(log.starts_with(&entry));
    ok(sifr(
        &im,
        As::Root,
        &["instance", "stop", "--user", &user_name, &name],
    ));
    let o = ok(as_user(&["instance", "list", "--json", &name]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["instances"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(log.with_extension("err"));
    assert_nothing_left(&im);
}

/// `who`'s name and home directory from the host's user database, when the directory is theirs.
fn passwd_home(who: As) -> Option<(String, PathBuf)> {
    use std::os::unix::fs::MetadataExt as _;
    let o = std::process::Command::new("getent")
        .args(["passwd", &who.uid().to_string()])
        .output()
        .ok()?;
    let line = String::from_utf8(o.stdout).ok()?;
    let fields: Vec<&str> = line.trim().split(':').collect();
    let home = PathBuf::from(fields.get(5)?);
    let owned = std::fs::metadata(&home).is_ok_and(|m| m.is_dir() && m.uid() == who.uid());
    owned.then(|| (fields[0].to_string(), home))
}
