//! The runner of the Apptainer e2e table: builds the test images once with sifr, prepares each
//! identity's workspace, fills a row's placeholders, runs it with a time limit and checks it.

use std::io::{Read, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sifr_testkit::{As, Fixture, TestCommand};

use super::table::{Row, Who};

/// How long one row may run before it counts as hung and is killed.
const ROW_LIMIT: Duration = Duration::from_secs(60);

/// Close every descriptor above 2 and run the command: a job script's `apptainer` starts with
/// stdin, stdout and stderr only, while this test inherits the harness's (`issue4488` counts the
/// descriptors the container sees). bash, since dash cannot name descriptors above 9; no
/// redirection on the loop, whose saved stderr it would close.
const CLOSE_FDS: [&str; 4] = [
    "bash",
    "-c",
    r#"for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done; exec "$@""#,
    "bash",
];

fn sifr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifr"))
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn must(cmd: &mut Command, what: &str) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn build(args: &[&str], what: &str) {
    let mut c = Command::new(sifr());
    sifr_testkit::remove_caller_settings(&mut c);
    must(c.arg("build").args(args), what);
}

/// Apptainer's `e2e/testdata/Apptainer`, less its network packages: the startscripts (the
/// image's and the `foo` app's) sleep instead of serving TCP.
const TEST_DEF: &str = concat!(
    r#"Bootstrap: localimage
From: {busybox}

%labels
    maintainer "Apptainer Team <tsc@apptainer.org>"

%help
    export BAD_GUY=Thanos
    export SMART_GUY=tony

%environment
    GOPATH=/go
    PATH=$PATH:$GOPATH/bin:/usr/local/go/bin
    CGO_ENABLED=0
    AVENGERS=assemble
    export GOPATH PATH CGO_ENABLED AVENGERS

"#,
    include_str!("../data/scif_apps.def"),
    r#"
%appstart foo
    echo "STARTING FOO"
    exec sleep 3600

%startscript
    exec sleep 3600

%runscript
    echo "Running command: $*"
    exec "$@"

%post
    mkdir -p /var
    ln -s /etc /var/etc
    mkdir /madness
    ln -s /madness /var/etc/madness
    ln -s ../usr/share/zoneinfo/Etc/UTC /etc/relative-slink
    ln -s /usr/share/zoneinfo/Etc/UTC /etc/absolute-slink

%test
    exec "$@"
"#
);

const BUSYBOX_DEF: &str = r#"Bootstrap: localimage
From: {base}

%post
    /bin/busybox mkdir -p /usr/bin /usr/sbin /sbin /usr/local/bin /usr/local/sbin /tmp /var/tmp /home /srv /root /mnt /opt /usr/share/zoneinfo/Etc
    /bin/busybox --install -s
    # the testkit sandbox's own %environment files are not part of a busybox image
    rm -f /.singularity.d/env/90-environment.sh /.singularity.d/env/91-environment.sh
    echo UTC0 > /usr/share/zoneinfo/Etc/UTC
"#;

/// Apptainer's `legacy-environment` (e2e/testdata/regressions) for `issue5426`.
const LEGACY_ENV: &str = r#"if test -z "$APPTAINER_INIT"; then
    PATH="/canary/path:$PATH"
    PS1="$PS1"
    APPTAINER_INIT=1
    export PATH PS1 APPTAINER_INIT
fi
"#;

/// The images, built once per run.
pub struct Images {
    /// Owns the base sandbox.
    _fx: Fixture,
    /// Owns the directory the images and workspaces live in.
    _dir: tempfile::TempDir,
    dir: PathBuf,
    link: PathBuf,
    vars: Vec<(&'static str, String)>,
}

impl Images {
    /// Build everything, or say why the table cannot run here and give `None`.
    pub fn build() -> Option<Images> {
        let fx = Fixture::new();
        if !fx.has_shell {
            sifr_testkit::skip(
                "busybox is needed for the test images (apt-get install busybox-static)",
            );
            return None;
        }
        if !sifr_testkit::is_root() {
            sifr_testkit::skip("the images are built as root (run the tests as root)");
            return None;
        }
        // Not under /tmp or /home: the rows' working directory is mounted into the container,
        // and `actionNoMount` looks for "on /tmp" and "on /home" in the mount table (Apptainer
        // runs its suite from its source tree).
        let tmp = tempfile::Builder::new()
            .prefix("sifr-e2e-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        chmod(&dir, 0o755);
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let link = bin.join("apptainer");
        std::os::unix::fs::symlink(sifr(), &link).unwrap();

        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        let write = |n: &str, text: &str| {
            let path = dir.join(n);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        let base = fx.image.to_string_lossy().into_owned();
        let busybox = p("busybox.sif");
        let def = write("busybox.def", &BUSYBOX_DEF.replace("{base}", &base));
        build(&[&busybox, &def], "building the busybox image");
        let img = p("test.sif");
        let def = write("test.def", &TEST_DEF.replace("{busybox}", &busybox));
        build(&[&img, &def], "building the test image");

        let legacy = p("legacy");
        build(
            &["--sandbox", &legacy, &busybox],
            "building the legacy sandbox",
        );
        std::fs::remove_dir_all(Path::new(&legacy).join(".singularity.d")).unwrap();
        let _ = std::fs::remove_file(Path::new(&legacy).join("environment"));
        let env = Path::new(&legacy).join("environment");
        std::fs::write(&env, LEGACY_ENV).unwrap();
        chmod(&env, 0o755);

        let rootsandbox = p("rootsandbox");
        build(
            &["--sandbox", &rootsandbox, &img],
            "building root's sandbox",
        );
        let perm = Path::new(&rootsandbox).join("perm");
        std::fs::create_dir(&perm).unwrap();
        chmod(&perm, 0o777);

        let inspect = p("inspect.sif");
        let inspector =
            std::fs::read_to_string(fixtures().join("e2e/testdata/inspector_container.def"))
                .expect("the shared deffile fixtures hold inspector_container.def");
        let inspector = inspector
            .replace("bootstrap: oras", "bootstrap: localimage")
            .replace(
                "from: ghcr.io/apptainer/alpine:3.15.0",
                &format!("from: {busybox}"),
            );
        let def = write("inspect.def", &inspector);
        build(&[&inspect, &def], "building the inspect image");
        let inspect_sqfs = p("inspect.sqfs");
        extract_partition(Path::new(&inspect), Path::new(&inspect_sqfs));
        // unsquashfs, as Apptainer's test does: a sandbox built by sifr would carry its own
        // definition file and labels.
        let inspect_dir = p("inspect-dir");
        must(
            Command::new("unsquashfs").args(["-no-xattrs", "-d", &inspect_dir, &inspect_sqfs]),
            "unsquashfs of the inspect image (apt-get install squashfs-tools)",
        );

        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string();
        let vars = vec![
            ("busybox", busybox),
            ("img", img),
            ("legacy", legacy),
            ("rootsandbox", rootsandbox),
            ("inspect_sqfs", inspect_sqfs),
            ("inspect_dir", inspect_dir),
            ("inspect", inspect),
            ("hostname", hostname),
            ("debian", p("no-debian-image")),
        ];
        Some(Images {
            _fx: fx,
            _dir: tmp,
            dir,
            link,
            vars,
        })
    }

    /// The context rows run in for `who`: its workspace and its own sandbox of the test image.
    pub fn for_identity(&self, who: As) -> Ctx<'_> {
        let (user, home) = passwd(who.uid());
        let ws = self.dir.join(format!("ws-{}", who.uid()));
        for d in [
            "canary",
            "home",
            "workdir",
            "inst",
            "work",
            "rows",
            "build",
            "configdir",
            "ba/work",
            "ba/test/build-args",
        ] {
            std::fs::create_dir_all(ws.join(d)).unwrap();
        }
        for f in ["canary/file", "canary/file,comma", "canary/file:colon"] {
            std::fs::write(ws.join(f), "").unwrap();
        }
        chmod(&ws.join("canary/file"), 0o777);
        std::fs::write(ws.join("inst/hello"), "world").unwrap();
        let script = ws.join("ba/test/build-args/script.sh");
        std::fs::write(&script, "#!/bin/sh\n\necho \"hello world\"\n").unwrap();
        chmod(&script, 0o755);
        std::fs::copy(
            fixtures().join("test/build-args/single-stage.def"),
            ws.join("ba/single-stage.def"),
        )
        .unwrap();
        let sandbox = self.dir.join(format!("sandbox-{}", who.uid()));
        must(
            Command::new("cp")
                .arg("-a")
                .arg(self.dir.join("rootsandbox"))
                .arg(&sandbox),
            "copying the sandbox",
        );
        for p in [&ws, &sandbox] {
            chown(p, who);
        }
        let mut vars = self.vars.clone();
        vars.push(("sandbox", sandbox.to_string_lossy().into_owned()));
        vars.push(("ws", ws.to_string_lossy().into_owned()));
        vars.push(("home", home.clone()));
        vars.push(("user", user.clone()));
        vars.push(("uid", who.uid().to_string()));
        Ctx {
            images: self,
            who,
            ws,
            user,
            home,
            vars,
        }
    }
}

/// `shared/fixtures/deffile` beside the checkout.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/deffile")
}

fn chown(p: &Path, who: As) {
    must(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", who.uid(), who.gid()))
            .arg(p),
        "chown",
    );
}

/// The name and home directory of `uid`, from `getent passwd`.
fn passwd(uid: u32) -> (String, String) {
    let o = Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    let f: Vec<&str> = line.trim().split(':').collect();
    (f[0].to_string(), f[5].to_string())
}

/// The squashfs partition of a SIF, written to `dest` (Apptainer's inspect test does the same
/// with `image.NewPartitionReader`).
fn extract_partition(sif: &Path, dest: &Path) {
    let img = sifr_sif::Image::open(sif).unwrap();
    let part = img.primary_partition().expect("primary partition");
    let (start, len) = (part.offset() as usize, part.size() as usize);
    let bytes = std::fs::read(sif).unwrap();
    std::fs::write(dest, &bytes[start..start + len]).unwrap();
    chmod(dest, 0o644);
}

/// One identity's view: runs its rows and cleans up after them.
pub struct Ctx<'a> {
    images: &'a Images,
    who: As,
    ws: PathBuf,
    user: String,
    home: String,
    vars: Vec<(&'static str, String)>,
}

impl Ctx<'_> {
    pub fn label(&self) -> &'static str {
        match self.who {
            As::Root => "root",
            As::User { .. } => "user",
        }
    }

    pub fn runs(&self, w: Who) -> bool {
        matches!(
            (w, self.who),
            (Who::Both, _) | (Who::Root, As::Root) | (Who::User, As::User { .. })
        )
    }

    fn expand(&self, s: &str, tmp: &str) -> String {
        let mut s = s.replace("{tmp}", tmp);
        for (k, v) in &self.vars {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }

    /// Run row number `i`; `None` when it passes, else what went wrong.
    pub fn run(&self, i: usize, r: &Row) -> Option<String> {
        let tmp = self.ws.join("rows").join(i.to_string());
        std::fs::create_dir_all(&tmp).unwrap();
        let t = tmp.to_string_lossy().into_owned();
        for (path, content) in &r.files {
            let p = tmp.join(self.expand(path, &t));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let content = self.expand(content, &t);
            match content.strip_prefix("->") {
                Some(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
                None => std::fs::write(&p, content).unwrap(),
            }
            // A file outside the row's directory (an absolute `{ws}/...` path) makes a
            // directory of the workspace, which belongs to whoever runs the row too.
            if !p.starts_with(&tmp) {
                chown(p.parent().unwrap(), self.who);
            }
        }
        chown(&tmp, self.who);
        let argv: Vec<String> = r.argv.iter().map(|a| self.expand(a, &t)).collect();
        let cwd = match &r.cwd {
            Some(c) => PathBuf::from(self.expand(c, &t)),
            None => self.ws.join("work"),
        };
        let mut tc = TestCommand::new(&self.images.link)
            .launcher(CLOSE_FDS)
            .as_user(self.who)
            .current_dir(&cwd)
            .without_caller_settings()
            .env("HOME", &self.home)
            .env("USER", &self.user)
            .env("LOGNAME", &self.user)
            .args(&argv);
        for (k, v) in &r.env {
            tc = tc.env(k, self.expand(v, &t));
        }
        let (code, out, err) = match run_limited(tc.command(), r.stdin.as_deref()) {
            Ok(x) => x,
            Err(e) => return Some(e),
        };
        let mut why = Vec::new();
        if code != Some(r.exit) {
            why.push(format!("exit status {code:?}, expected {}", r.exit));
        }
        for (stream, text, checks) in [("stdout", &out, &r.stdout), ("stderr", &err, &r.stderr)] {
            for m in checks {
                if let Some(w) = m.expand(&|s| self.expand(s, &t)).check(text) {
                    why.push(format!("{stream} {w}"));
                }
            }
        }
        if why.is_empty() {
            return None;
        }
        Some(format!(
            "{}\n    argv: {}\n    stdout: {}\n    stderr: {}",
            why.join("; "),
            argv.join(" "),
            tail(&out),
            tail(&err)
        ))
    }

    /// Stop the identity's instances, so none outlives the test.
    pub fn clean_up(&self) {
        for configdir in [None, Some(self.ws.join("configdir"))] {
            let mut tc = TestCommand::new(&self.images.link)
                .as_user(self.who)
                .current_dir(self.ws.join("work"))
                .without_caller_settings()
                .env("HOME", &self.home)
                .args(["instance", "stop", "--all"]);
            if let Some(d) = configdir {
                tc = tc.env("APPTAINER_CONFIGDIR", d);
            }
            let _ = run_limited(tc.command(), None);
        }
    }
}

/// The last lines of a stream, for the failure report.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(8);
    let t = lines[start..].join(" | ");
    if t.is_empty() { "(empty)".into() } else { t }
}

/// Run `c` with `stdin` (or none), kill it after [`ROW_LIMIT`]; its status and both streams.
fn run_limited(
    mut c: Command,
    stdin: Option<&str>,
) -> Result<(Option<i32>, String, String), String> {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("spawn {c:?}: {e}"))?;
    if let Some(s) = stdin {
        let mut w = child.stdin.take().unwrap();
        let s = s.to_string();
        std::thread::spawn(move || {
            let _ = w.write_all(s.as_bytes());
        });
    }
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > ROW_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hung: killed after {}s", ROW_LIMIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A daemon left holding the pipes (an instance) must not block the report.
    let join = |h: std::thread::JoinHandle<String>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            "(stream still held open by a child)".into()
        }
    };
    // Go's ExitCode(), which Apptainer's e2e compares: -1 when a signal ended the process.
    let code = Some(status.code().unwrap_or(-1));
    Ok((code, join(out), join(err)))
}
