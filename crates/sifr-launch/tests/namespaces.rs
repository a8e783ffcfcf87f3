//! Namespace tests of `launch`: real user and mount namespaces, a sandbox made at test time
//! around a static probe, the same checks as root and as an unprivileged user.
//!
//! `harness = false`: libtest runs tests on threads, and a process with threads cannot create a
//! user namespace. This binary's `main` is single-threaded; each case re-executes this binary in
//! `--child` mode (through `setpriv` for the test user), which builds a plan and runs it exactly
//! as `sifr exec` does.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sifr_testkit::{As, Fixture, TestCommand};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        std::process::exit(child(&args[2..]));
    }
    let filter: Option<&String> = args.iter().skip(1).find(|a| !a.starts_with('-'));
    if args.iter().any(|a| a == "--list") {
        // libtest's terse list format, as nextest asks for it; there are no ignored cases.
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in CASES {
                println!("{name}: test");
            }
        }
        return;
    }
    let identities = sifr_testkit::identities();
    if identities.iter().any(|w| matches!(w, As::User { .. }))
        && let Err(why) = sifr_testkit::userns_available()
    {
        sifr_testkit::skip(format_args!("the unprivileged namespace tests: {why}"));
    }
    let fx = Fixture::new();
    let mounts_before = sifr_testkit::host_mount_count();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in CASES {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        for &who in &identities {
            if matches!(who, As::User { .. }) && sifr_testkit::userns_available().is_err() {
                continue;
            }
            ran += 1;
            let label = format!(
                "{name} as {}",
                if who == As::Root {
                    "root".into()
                } else {
                    format!("uid {}", who.uid())
                }
            );
            let result = std::panic::catch_unwind(|| case(&fx, who));
            match result {
                Ok(()) => println!("test {label} ... ok"),
                Err(_) => {
                    println!("test {label} ... FAILED");
                    failed.push(label);
                }
            }
        }
    }
    // Nothing left behind: no host mount mentions the fixture, the mount table is as before,
    // and the image did not gain mount points.
    let leftovers = sifr_testkit::host_mounts_mentioning(fx.dir.path());
    if !leftovers.is_empty() {
        println!("mounts left behind: {leftovers:#?}");
        failed.push("no mounts left behind".into());
    }
    if sifr_testkit::host_mount_count() != mounts_before {
        println!(
            "host mount count changed: {mounts_before} -> {}",
            sifr_testkit::host_mount_count()
        );
        failed.push("host mount table unchanged".into());
    }
    let mut procs = sifr_testkit::processes_mentioning(fx.dir.path());
    procs.extend(sifr_testkit::processes_mentioning(Path::new("/bin/probe")));
    if !procs.is_empty() {
        println!("processes left behind: {procs:?}");
        failed.push("no processes left behind".into());
    }
    if std::panic::catch_unwind(|| fx.assert_image_untouched()).is_err() {
        failed.push("image untouched".into());
    }
    drop(fx);
    println!("\n{ran} namespace cases run, {} failed", failed.len());
    if !failed.is_empty() {
        for f in &failed {
            println!("  FAILED: {f}");
        }
        std::process::exit(1);
    }
}

type Case = fn(&Fixture, As);

const CASES: &[(&str, Case)] = &[
    (
        "uid_and_gid_inside_equal_outside",
        uid_and_gid_inside_equal_outside,
    ),
    ("default_mounts_are_present", default_mounts_are_present),
    (
        "cwd_outside_other_mounts_is_bound",
        cwd_outside_other_mounts_is_bound,
    ),
    ("image_root_is_read_only", image_root_is_read_only),
    (
        "ro_bind_is_read_only_and_rw_bind_writes_through",
        ro_bind_is_read_only_and_rw_bind_writes_through,
    ),
    (
        "environment_follows_apptainer_precedence",
        environment_follows_apptainer_precedence,
    ),
    (
        "cleanenv_drops_host_variables",
        cleanenv_drops_host_variables,
    ),
    ("exit_status_passes_through", exit_status_passes_through),
    (
        "sigterm_sigint_sighup_reach_the_command",
        sigterm_sigint_sighup_reach_the_command,
    ),
    (
        "contain_hides_host_tmp_and_uses_home_as_cwd",
        contain_hides_host_tmp_and_uses_home_as_cwd,
    ),
    (
        "pwd_sets_the_working_directory",
        pwd_sets_the_working_directory,
    ),
    (
        "generated_passwd_has_the_user",
        generated_passwd_has_the_user,
    ),
    ("no_new_privs_is_set", no_new_privs_is_set),
    (
        "run_and_test_use_the_image_scripts",
        run_and_test_use_the_image_scripts,
    ),
    (
        "writable_writes_into_the_sandbox_as_root",
        writable_writes_into_the_sandbox_as_root,
    ),
    (
        "image_symlink_cannot_redirect_a_bind_to_the_host",
        image_symlink_cannot_redirect_a_bind_to_the_host,
    ),
];

// ---- the child: what `sifr exec` does, driven by a tiny flag parser ----

fn child(args: &[String]) -> i32 {
    let image = PathBuf::from(&args[0]);
    let mut opts = sifr_launch::Options::default();
    let mut action = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args[i].clone()
        };
        match a {
            "--bind" => opts
                .binds
                .extend(sifr_launch::bind::parse_list(&val()).unwrap()),
            "--env" => {
                let v = val();
                let (k, v) = v.split_once('=').unwrap();
                opts.env.push((k.into(), v.into()));
            }
            "--cleanenv" => opts.cleanenv = true,
            "--contain" => opts.contain = true,
            "--no-home" => opts.no_home = true,
            "--writable" => opts.writable = true,
            "--pwd" => opts.cwd = Some(val().into()),
            "--home" => opts.home = Some(sifr_launch::plan::HomeSpec::parse(&val()).unwrap()),
            "--run" => action = Some("run"),
            "--test" => action = Some("test"),
            "--" => {
                i += 1;
                break;
            }
            other => panic!("child: unknown flag {other}"),
        }
        i += 1;
    }
    let rest: Vec<String> = args[i..].to_vec();
    let action = match action {
        Some("run") => sifr_launch::Action::Run(rest),
        Some("test") => sifr_launch::Action::Test(rest),
        _ => sifr_launch::Action::Exec(rest),
    };
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let host = sifr_launch::host::gather(env).unwrap();
    let plan = sifr_launch::build(&opts, &image, action, &host).unwrap();
    match sifr_launch::run(&plan) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("child error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            e.exit_code().unwrap_or(200)
        }
    }
}

// ---- helpers ----

fn launch_cmd(fx: &Fixture, who: As, flags: &[&str], cmd: &[&str]) -> Command {
    TestCommand::new(std::env::current_exe().unwrap())
        .as_user(who)
        .arg("--child")
        .arg(&fx.image)
        .args(flags)
        .arg("--")
        .args(cmd)
        .current_dir(&fx.work)
        .command()
}

fn sifr(fx: &Fixture, who: As, flags: &[&str], cmd: &[&str]) -> Output {
    sifr_env(fx, who, flags, cmd, &[])
}

fn sifr_env(fx: &Fixture, who: As, flags: &[&str], cmd: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = launch_cmd(fx, who, flags, cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// stdout of a successful run.
fn ok(out: &Output) -> String {
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{so}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

fn home_of(who: As) -> String {
    let out = Command::new("getent")
        .args(["passwd", &who.uid().to_string()])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .split(':')
        .nth(5)
        .unwrap()
        .to_string()
}

fn probe<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["/bin/probe"];
    v.extend_from_slice(args);
    v
}

fn var<'a>(env: &'a str, name: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
}

// ---- the cases ----

fn uid_and_gid_inside_equal_outside(fx: &Fixture, who: As) {
    let out = ok(&sifr(fx, who, &[], &probe(&["id"])));
    let (u, g) = (who.uid(), who.gid());
    assert_eq!(out.trim(), format!("uid={u} gid={g} euid={u} egid={g}"));
}

fn default_mounts_are_present(fx: &Fixture, who: As) {
    let marker = fx.dir.path().join("tmp-marker");
    std::fs::write(&marker, "x").unwrap();
    let home = home_of(who);
    let work = fx.work.to_str().unwrap();
    let paths = [
        "/proc/self/status",
        "/sys/kernel",
        "/dev/null",
        marker.to_str().unwrap(),
        home.as_str(),
        work,
        "/etc/hosts",
        "/var/tmp",
    ];
    let mut args = vec!["exists"];
    args.extend_from_slice(&paths);
    let out = ok(&sifr(fx, who, &[], &probe(&args)));
    for p in paths {
        assert!(
            out.contains(&format!("{p} yes")),
            "{p} missing in the container:\n{out}"
        );
    }
    let cwd = ok(&sifr(fx, who, &[], &probe(&["cwd"])));
    assert_eq!(cwd.trim(), work);
}

fn cwd_outside_other_mounts_is_bound(fx: &Fixture, who: As) {
    // Under the target dir: not below /tmp, $HOME or any default mount.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cwd-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    support_chmod(&base, 0o777);
    std::fs::write(base.join("here"), "x").unwrap();
    let mut c = launch_cmd(fx, who, &[], &probe(&["exists", "here"]));
    c.current_dir(&base).env("PWD", &base);
    let out = ok(&c.output().unwrap());
    assert_eq!(out.trim(), "here yes");
    std::fs::remove_dir_all(&base).unwrap();
}

fn support_chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn image_root_is_read_only(fx: &Fixture, who: As) {
    let out = ok(&sifr(fx, who, &[], &probe(&["write", "/new-file"])));
    assert_eq!(out.trim(), "error=EROFS");
    let out = ok(&sifr(fx, who, &[], &probe(&["write", "/bin/new-file"])));
    assert_eq!(out.trim(), "error=EROFS");
    // The test image has no /proc and --writable creates no mount points, so host /proc is
    // bound over the image's /etc to read the mount table in both modes.
    for flags in [
        &["--bind", "/proc:/etc"][..],
        &["--writable", "--bind", "/proc:/etc"][..],
    ] {
        let info = ok(&sifr(
            fx,
            who,
            flags,
            &probe(&["cat", "/etc/self/mountinfo"]),
        ));
        let opts = sifr_testkit::root_mount(&info).1;
        assert!(
            opts.contains(&"nosuid") && opts.contains(&"nodev"),
            "{flags:?}: {opts:?}"
        );
        assert_eq!(
            opts.contains(&"ro"),
            !flags.contains(&"--writable"),
            "{flags:?}: {opts:?}"
        );
    }
}

fn ro_bind_is_read_only_and_rw_bind_writes_through(fx: &Fixture, who: As) {
    let data = fx.data.to_str().unwrap();
    let ro = format!("{data}:/data:ro");
    let out = ok(&sifr(
        fx,
        who,
        &["--bind", &ro],
        &probe(&["cat", "/data/hello"]),
    ));
    assert_eq!(out, "hello from the host\n");
    let out = ok(&sifr(
        fx,
        who,
        &["--bind", &ro],
        &probe(&["write", "/data/x"]),
    ));
    assert_eq!(out.trim(), "error=EROFS");
    let rw = format!("{data}:/rw");
    let name = format!("/rw/written-by-{}", who.uid());
    let out = ok(&sifr(fx, who, &["--bind", &rw], &probe(&["write", &name])));
    assert_eq!(out.trim(), "ok");
    let host = fx.data.join(format!("written-by-{}", who.uid()));
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "written\n");
    std::fs::remove_file(host).unwrap();
}

fn environment_follows_apptainer_precedence(fx: &Fixture, who: As) {
    let env = [
        ("HOST_ONLY", "from-host"),
        ("IMG_VAR", "from-host"),
        ("EMPTIED", "from-host"),
        ("APPTAINERENV_OVR", "apptainer"),
        ("SINGULARITYENV_OVR", "singularity"),
        ("SINGULARITYENV_ONLY_SING", "sing"),
        ("APPTAINERENV_BOTH", "apptainer"),
        ("APPTAINERENV_FROM_IMG", "$IMG_VAR-seen"),
        ("APPTAINERENV_PREPEND_PATH", "/pre"),
        ("APPTAINERENV_APPEND_PATH", "/post"),
        ("APPTAINER_SECRET", "never"),
        ("SINGULARITY_SECRET", "never"),
        ("LD_LIBRARY_PATH", "/host/lib"),
        ("PATH", "/host/bin:/usr/bin:/bin"),
    ];
    let out = ok(&sifr_env(
        fx,
        who,
        &["--env", "BOTH=cli", "--env", "CLI=c"],
        &probe(&["env"]),
        &env,
    ));
    let get = |n| var(&out, n);
    assert_eq!(
        get("HOST_ONLY"),
        Some("from-host"),
        "host env passes through:\n{out}"
    );
    assert_eq!(get("IMG_VAR"), Some("image"), "image beats host");
    assert_eq!(
        get("EMPTIED"),
        None,
        "image setting a variable empty removes it"
    );
    assert_eq!(
        get("OVR"),
        Some("apptainer"),
        "APPTAINERENV_ beats SINGULARITYENV_"
    );
    assert_eq!(get("ONLY_SING"), Some("sing"));
    assert_eq!(get("BOTH"), Some("cli"), "--env beats APPTAINERENV_");
    assert_eq!(get("CLI"), Some("c"));
    assert_eq!(
        get("FROM_IMG"),
        Some("image-seen"),
        "override values are evaluated"
    );
    assert_eq!(get("DEF"), Some("dflt"));
    assert_eq!(get("QUOTED"), Some("single quoted"));
    assert_eq!(
        get("PATH"),
        Some(
            "/pre:/opt/img/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/post"
        )
    );
    assert_eq!(
        get("LD_LIBRARY_PATH"),
        Some("/.singularity.d/libs"),
        "host LD_LIBRARY_PATH is blocked"
    );
    assert_eq!(get("APPTAINER_SECRET"), None);
    assert_eq!(get("SINGULARITY_SECRET"), None);
    assert_eq!(get("HOME"), Some(home_of(who).as_str()));
    assert_eq!(get("APPTAINER_CONTAINER"), Some(fx.image.to_str().unwrap()));
    assert_eq!(get("APPTAINER_NAME"), Some("image"));
    assert_eq!(get("PS1"), Some("Apptainer> "));
    assert_eq!(
        get("FROM_SHELL"),
        Some("yes-image"),
        "the script with an `if` ran in sifr's interpreter"
    );
}

fn cleanenv_drops_host_variables(fx: &Fixture, who: As) {
    let env = [
        ("HOST_ONLY", "x"),
        ("TERM", "xterm-test"),
        ("APPTAINERENV_KEPT", "k"),
    ];
    let out = ok(&sifr_env(fx, who, &["--cleanenv"], &probe(&["env"]), &env));
    assert_eq!(var(&out, "HOST_ONLY"), None);
    assert_eq!(var(&out, "TERM"), Some("xterm-test"));
    assert_eq!(var(&out, "LANG"), Some("C"));
    assert_eq!(var(&out, "KEPT"), Some("k"));
    assert_eq!(var(&out, "IMG_VAR"), Some("image"));
}

fn exit_status_passes_through(fx: &Fixture, who: As) {
    let out = sifr(fx, who, &[], &probe(&["exit", "42"]));
    assert_eq!(out.status.code(), Some(42));
    let out = sifr(fx, who, &[], &["no-such-command"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sigterm_sigint_sighup_reach_the_command(fx: &Fixture, who: As) {
    for (name, num) in [("TERM", 15), ("INT", 2), ("HUP", 1)] {
        let mut c = launch_cmd(fx, who, &[], &probe(&["wait-signal"]));
        let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let pid = child.id().to_string();
        let st = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(lines.next().unwrap().unwrap(), format!("got signal {num}"));
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(100 + num), "SIG{name}");
    }
}

fn contain_hides_host_tmp_and_uses_home_as_cwd(fx: &Fixture, who: As) {
    let marker = fx.dir.path().join("tmp-marker-contain");
    std::fs::write(&marker, "x").unwrap();
    let m = marker.to_str().unwrap();
    let out = ok(&sifr(
        fx,
        who,
        &["--contain"],
        &probe(&[
            "exists",
            m,
            "/dev/null",
            "/dev/urandom",
            "/dev/shm",
            "/dev/vda",
            "/tmp",
            "/dev/pts/ptmx",
            "/dev/ptmx",
        ]),
    ));
    assert!(out.contains(&format!("{m} no")), "{out}");
    for p in [
        "/dev/null yes",
        "/dev/urandom yes",
        "/dev/shm yes",
        "/dev/vda no",
        "/tmp yes",
        "/dev/pts/ptmx yes",
        "/dev/ptmx yes",
    ] {
        assert!(out.contains(p), "expected `{p}`:\n{out}");
    }
    let cwd = ok(&sifr(fx, who, &["--contain"], &probe(&["cwd"])));
    assert_eq!(cwd.trim(), home_of(who));
    let out = ok(&sifr(
        fx,
        who,
        &["--contain"],
        &probe(&["write", "/tmp/scratch"]),
    ));
    assert_eq!(out.trim(), "ok");
}

fn pwd_sets_the_working_directory(fx: &Fixture, who: As) {
    let out = ok(&sifr(fx, who, &["--pwd", "/bin"], &probe(&["cwd"])));
    assert_eq!(out.trim(), "/bin");
    let out = sifr(fx, who, &["--pwd", "/does/not/exist"], &probe(&["cwd"]));
    assert!(
        !out.status.success(),
        "an explicit --pwd that fails is an error"
    );
}

fn generated_passwd_has_the_user(fx: &Fixture, who: As) {
    let out = ok(&sifr(
        fx,
        who,
        &[],
        &probe(&["cat", "/etc/passwd", "/etc/group"]),
    ));
    let needle = format!(":x:{}:{}:", who.uid(), who.gid());
    assert!(out.lines().any(|l| l.contains(&needle)), "{out}");
    assert!(
        out.contains(&format!(":{}:/bin/sh", home_of(who))) || who == As::Root,
        "{out}"
    );
}

fn no_new_privs_is_set(fx: &Fixture, who: As) {
    let out = ok(&sifr(fx, who, &[], &probe(&["cat", "/proc/self/status"])));
    assert!(
        out.lines().any(|l| l.replace(' ', "") == "NoNewPrivs:\t1"),
        "{out}"
    );
}

fn run_and_test_use_the_image_scripts(fx: &Fixture, who: As) {
    let out = ok(&sifr(fx, who, &["--run"], &["a", "b c"]));
    assert_eq!(out, "runscript: a b c\n");
    let out = ok(&sifr(fx, who, &["--test"], &[]));
    assert_eq!(out, "test:\n");
}

fn writable_writes_into_the_sandbox_as_root(fx: &Fixture, who: As) {
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(fx.image.join("bin")).unwrap().uid();
    if who.uid() != 0 && who.uid() != owner {
        // Someone else's sandbox: --writable can only fail to write.
        let out = ok(&sifr(
            fx,
            who,
            &["--writable"],
            &probe(&["write", "/bin/w"]),
        ));
        assert_eq!(out.trim(), "error=EACCES");
        return;
    }
    let out = ok(&sifr(
        fx,
        who,
        &["--writable"],
        &probe(&["write", "/written"]),
    ));
    assert_eq!(out.trim(), "ok");
    let f = fx.image.join("written");
    assert!(f.exists());
    std::fs::remove_file(f).unwrap();
}

fn image_symlink_cannot_redirect_a_bind_to_the_host(fx: &Fixture, who: As) {
    // The image's `/evil` points at a host directory by absolute path; resolved inside the image
    // it is dangling, so the mount point is made in the overlay and the host dir stays untouched.
    let host_dir = fx.dir.path().join("hostdir");
    std::fs::create_dir_all(&host_dir).unwrap();
    support_chmod(&host_dir, 0o777);
    let link = fx.image.join("evil");
    std::os::unix::fs::symlink(&host_dir, &link).unwrap();
    let bind = format!("{}:/evil/sub", fx.data.display());
    let out = sifr(
        fx,
        who,
        &["--bind", &bind],
        &probe(&["cat", "/evil/sub/hello"]),
    );
    std::fs::remove_file(&link).unwrap();
    assert_eq!(ok(&out), "hello from the host\n");
    assert!(
        !host_dir.join("sub").exists(),
        "a mount point was created on the host"
    );
    assert!(sifr_testkit::host_mounts_mentioning(&host_dir).is_empty());
}
