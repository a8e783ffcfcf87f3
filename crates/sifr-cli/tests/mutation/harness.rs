//! The mutation suite's runner: a seeded generator, the cases of one input kind run on a small
//! pool of threads, each command run as every identity with a deadline, and the judgement of
//! each run (its status, its error text, what it left on the host).
//!
//! Everything a case touches lives in its own directory (`case-N/`): the mutated input, a
//! private `TMPDIR` and an output directory per identity. Leftovers are looked for there only
//! (mounts, loop devices and processes that mention it, files left in its `TMPDIR` or output
//! directory), so cases run side by side without seeing each other's work, and debris of an
//! earlier run on the machine is never blamed on this one. `SIFR_MUTATION_VERBOSE` prints every
//! run (its case, the damage, the command, its status, time and last line of stderr).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sifr_testkit::{As, TestCommand};

/// The seed CI uses; `SIFR_MUTATION_SEED` replaces it.
const SEED: u64 = 0x5eed_2024_0024;
/// How long one command may run before it counts as hung (a debug build on a loaded 2-core
/// machine builds a small image in about a second); `SIFR_MUTATION_DEADLINE` (seconds)
/// replaces it.
fn deadline() -> Duration {
    Duration::from_secs(env_number("SIFR_MUTATION_DEADLINE").unwrap_or(30))
}

pub use sifr_testkit::Rng;

/// What a command must show when it exits 0 (a mutation may be harmless; then it must have
/// really worked).
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Exit 0 is enough (an inspection of a part the mutation left alone).
    Ran,
    /// stdout contains this.
    Stdout(&'static str),
    /// The command created `{out}`.
    Created,
    /// sifr refuses this even for a valid input (a feature it lacks): it must fail cleanly.
    Refused,
    /// `instance start ... {name}`: the instance `{name}` then stops cleanly, and its
    /// processes must be gone like any others.
    Instance,
}

/// One command line, with `{in}` (the mutated input), `{out}` (a path in the identity's output
/// directory), `{tmp}` (its `TMPDIR`), `{good}` (the suite's valid image) and `{name}` (the
/// case's name, for an instance) filled in per run.
#[derive(Debug, Clone, Copy)]
pub struct Cmd {
    pub args: &'static [&'static str],
    pub expect: Expect,
}

/// A mutated input of one case.
pub struct Input {
    /// The file or directory the commands read.
    pub path: PathBuf,
    /// How it was damaged, for the failure message.
    pub what: String,
}

/// One input kind's suite: its commands, the valid inputs its cases start from, and where the
/// cases live.
pub struct Suite {
    pub kind: &'static str,
    pub dir: tempfile::TempDir,
    pub seed: u64,
    pub count: usize,
    only: Option<usize>,
    who: Vec<As>,
    /// A valid SIF that the commands may name as `{good}`.
    pub good: PathBuf,
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

/// A directory the test user may read (and, with `owner`, one it owns).
pub fn make_dir(p: &Path, owner: Option<As>) {
    std::fs::create_dir_all(p).unwrap();
    let mode = if owner.is_some() { 0o700 } else { 0o755 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(who) = owner {
        std::os::unix::fs::chown(p, Some(who.uid()), Some(who.gid())).unwrap();
    }
}

/// Make everything under `p` readable by everyone (the test user reads the inputs).
pub fn share_tree(p: &Path) {
    let st = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "chmod -R a+rX {}", p.display());
}

impl Suite {
    /// A suite of `default_count` cases (`SIFR_MUTATION_COUNT` replaces it), seeded by
    /// `SIFR_MUTATION_SEED` or the fixed seed; `SIFR_MUTATION_CASE` runs that case alone.
    pub fn new(kind: &'static str, default_count: usize) -> Suite {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sifr-mutation-{kind}-"))
            .tempdir()
            .unwrap();
        make_dir(dir.path(), None);
        let who = sifr_testkit::runnable_identities();
        Suite {
            kind,
            seed: env_number("SIFR_MUTATION_SEED").unwrap_or(SEED),
            count: env_number("SIFR_MUTATION_COUNT").map_or(default_count, |n| n as usize),
            only: env_number("SIFR_MUTATION_CASE").map(|n| n as usize),
            good: dir.path().join("good.sif"),
            dir,
            who,
        }
    }

    /// The generator of case `n`: the seed, the kind and the number, so a case is replayed by
    /// its seed and number alone.
    pub fn rng(&self, n: usize) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.kind.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng::new(self.seed ^ h ^ (n as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        r.next();
        r
    }

    /// Run every case: `make` writes case `n`'s input into its directory, then `per_case` of
    /// the commands run as every identity. Panics with every failure, each naming its seed and
    /// case, once all cases ran.
    ///
    /// First, with `baseline`, every command runs on the undamaged input (`make` with `damage`
    /// false) as the first identity and must succeed: a base that already fails would make
    /// every case fail for the same dull reason, and the suite would test nothing.
    pub fn run(
        &self,
        commands: &[Cmd],
        per_case: usize,
        baseline: bool,
        make: impl Fn(&mut Rng, &Path, bool) -> Input + Sync,
    ) {
        let started = Instant::now();
        if baseline && self.only.is_none() {
            let dir = self.dir.path().join("baseline");
            make_dir(&dir, None);
            let input = make(&mut self.rng(usize::MAX), &dir, false);
            share_tree(&dir);
            for cmd in commands {
                let refused = matches!(cmd.expect, Expect::Refused);
                match self.check(&dir, &input, cmd, self.who[0]) {
                    Ok(ran) if ran != refused => {}
                    Ok(_) => panic!(
                        "`sifr {}` does not do what it should on the undamaged input:\n{}",
                        cmd.args.join(" "),
                        input.path.display()
                    ),
                    Err(why) => panic!("on the undamaged input: {why}"),
                }
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let cases: Vec<usize> = match self.only {
            Some(n) => vec![n],
            None => (0..self.count).collect(),
        };
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::<String>::new());
        let runs = AtomicUsize::new(0);
        let harmless = AtomicUsize::new(0);
        let jobs = env_number("SIFR_MUTATION_JOBS").map_or(2, |n| n.max(1) as usize);
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&n) = cases.get(i) else { break };
                        let case_dir = self.dir.path().join(format!("case-{n}"));
                        make_dir(&case_dir, None);
                        let mut rng = self.rng(n);
                        let input = make(&mut rng, &case_dir, true);
                        share_tree(&case_dir);
                        // The commands of this case: a window of the list that moves with the
                        // case number, so a run of `len` cases uses every command.
                        let cmds = (0..per_case.min(commands.len()))
                            .map(|k| &commands[(n * per_case + k) % commands.len()]);
                        for cmd in cmds {
                            for w in &self.who {
                                runs.fetch_add(1, Ordering::SeqCst);
                                match self.check(&case_dir, &input, cmd, *w) {
                                    Ok(true) => {
                                        harmless.fetch_add(1, Ordering::SeqCst);
                                    }
                                    Ok(false) => {}
                                    Err(why) => failures.lock().unwrap().push(format!(
                                        "seed {:#x} case {n} ({}) as uid {}: {why}\n  replay: \
                                         SIFR_MUTATION_SEED={:#x} SIFR_MUTATION_CASE={n}",
                                        self.seed,
                                        input.what,
                                        w.uid(),
                                        self.seed
                                    )),
                                }
                            }
                        }
                        let _ = std::fs::remove_dir_all(&case_dir);
                    }
                });
            }
        });
        let failures = failures.into_inner().unwrap();
        println!(
            "mutation suite `{}`: seed {:#x}, {} cases, {} runs ({} exited 0), {} failures, {:.1} s",
            self.kind,
            self.seed,
            cases.len(),
            runs.load(Ordering::SeqCst),
            harmless.load(Ordering::SeqCst),
            failures.len(),
            started.elapsed().as_secs_f64()
        );
        // The first twenty in full: a broken base fails every run the same way.
        assert!(
            failures.is_empty(),
            "{} of the mutation suite's runs failed (the first {} here):\n\n{}",
            failures.len(),
            failures.len().min(20),
            failures[..failures.len().min(20)].join("\n\n")
        );
    }

    /// Run `cmd` on `input` as `who` and judge it; Ok(true) when it exited 0.
    fn check(&self, case_dir: &Path, input: &Input, cmd: &Cmd, who: As) -> Result<bool, String> {
        let tmp = case_dir.join(format!("tmp-{}", who.uid()));
        let out_dir = case_dir.join(format!("out-{}", who.uid()));
        // A home of its own (the image cache of `oci:` launches, instances' state), to judge
        // what a failed run left there.
        let home = case_dir.join(format!("home-{}", who.uid()));
        for d in [&tmp, &out_dir, &home] {
            make_dir(d, Some(who));
        }
        let out = out_dir.join("out.sif");
        let name = case_dir.file_name().unwrap().to_str().unwrap().to_string();
        let args: Vec<OsString> = cmd
            .args
            .iter()
            .map(|a| {
                a.replace("{in}", input.path.to_str().unwrap())
                    .replace("{out}", out.to_str().unwrap())
                    .replace("{good}", self.good.to_str().unwrap())
                    .replace("{tmp}", tmp.to_str().unwrap())
                    .replace("{name}", &name)
                    .into()
            })
            .collect();
        let shown = format!("`sifr {}`", cmd.args.join(" "));
        let before = fingerprint(&input.path);
        let started = Instant::now();
        let sifr = |args: &[OsString]| {
            run_with_deadline(
                TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
                    .as_user(who)
                    .current_dir(case_dir)
                    .without_caller_settings()
                    .env("TMPDIR", &tmp)
                    .env("HOME", &home)
                    .args(args),
                case_dir,
            )
        };
        let ran = sifr(&args);
        if std::env::var_os("SIFR_MUTATION_VERBOSE").is_some() {
            println!(
                "{} ({}) as uid {}: {shown} {} in {:.2} s: {}",
                case_dir.display(),
                input.what,
                who.uid(),
                ran.describe(),
                started.elapsed().as_secs_f64(),
                tail(&ran.stderr, 1)
            );
        }
        let verdict = judge(&ran, cmd, input, &out);
        let mut problems: Vec<String> = verdict.err().into_iter().collect();
        if fingerprint(&input.path) != before {
            problems.push("the input was changed".into());
        }
        let ok = ran.code == Some(0);
        if ok && matches!(cmd.expect, Expect::Instance) {
            let stop = sifr(&["instance".into(), "stop".into(), name.clone().into()]);
            if stop.code != Some(0) {
                problems.push(format!(
                    "`instance stop {name}` {}: {}",
                    stop.describe(),
                    tail(&stop.stderr, 5)
                ));
            }
        }
        problems.extend(leftovers(case_dir, &tmp, &out_dir, ok.then_some(&out)));
        // The cache keeps what it converted and its lock files, never a partial image (a
        // hidden `.KEY.tmp`) or other hidden debris.
        let partial: Vec<PathBuf> = tree(&home)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                p.is_file() && name.starts_with('.') && !name.ends_with(".lock")
            })
            .collect();
        if !partial.is_empty() {
            problems.push(format!("partial files left in HOME: {partial:?}"));
        }
        // The next command starts clean whatever this one left.
        for d in [&tmp, &out_dir, &home] {
            let _ = std::fs::remove_dir_all(d);
        }
        if problems.is_empty() {
            Ok(ok)
        } else {
            Err(format!(
                "{shown} {}: {}\n--- stderr\n{}",
                ran.describe(),
                problems.join("; "),
                tail(&ran.stderr, 40)
            ))
        }
    }
}

/// What one run did.
pub struct Ran {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn describe(&self) -> String {
        match (self.timed_out, self.code, self.signal) {
            (true, _, _) => format!("hung (killed after {} s)", deadline().as_secs()),
            (_, Some(c), _) => format!("exited {c}"),
            (_, _, Some(s)) => format!("killed by signal {s}"),
            _ => "ended somehow".into(),
        }
    }
}

/// Run `cmd` in a process group of its own, killing the group past the deadline; both streams
/// go to files in `dir`, so a daemon that keeps a descriptor open cannot stall the read.
fn run_with_deadline(cmd: TestCommand, dir: &Path) -> Ran {
    let (out_path, err_path) = (dir.join(".stdout"), dir.join(".stderr"));
    let mut c = cmd.command();
    c.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0);
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > deadline() {
            timed_out = true;
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into();
    let ran = Ran {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    ran
}

/// The assertions on one run's status and streams.
fn judge(ran: &Ran, cmd: &Cmd, input: &Input, out: &Path) -> Result<(), String> {
    if ran.timed_out || ran.signal.is_some() {
        return Err("no exit status".into());
    }
    if ran.stderr.contains("panicked at") || ran.code == Some(101) {
        return Err("a panic".into());
    }
    let failure = i32::from(sifr_cli::exit::FAILURE);
    match ran.code {
        Some(0) => match cmd.expect {
            Expect::Ran => Ok(()),
            Expect::Stdout(want) if ran.stdout.contains(want) => Ok(()),
            Expect::Stdout(want) => Err(format!(
                "exit 0 without `{want}` on stdout: {:?}",
                tail(&ran.stdout, 5)
            )),
            Expect::Created if out.exists() => Ok(()),
            Expect::Created => Err(format!("exit 0 but `{}` was not created", out.display())),
            Expect::Refused => Err("exit 0, but sifr does not support this".into()),
            Expect::Instance => Ok(()),
        },
        Some(c) if c == failure => names_the_input(&ran.stderr, &input.path),
        // The container started but its command could not be executed (an image without the
        // program or its interpreter): the shell's statuses, as Apptainer's `run` gives
        // (e2e/actions "Arguments": 127).
        Some(126 | 127)
            if matches!(cmd.args[0], "exec" | "run" | "test")
                && ran.stderr.contains("FATAL:   cannot execute") =>
        {
            Ok(())
        }
        // The container's command was killed by a signal, its status passed through: a
        // damaged block the kernel's squashfs reads without complaint (an uncompressed image
        // has no checksum) can make the program itself crash. sifr said nothing.
        Some(129..=192)
            if matches!(cmd.args[0], "exec" | "run" | "test") && !ran.stderr.contains("FATAL:") =>
        {
            Ok(())
        }
        Some(c) => Err(format!("exit status {c}, neither 0 nor {failure}")),
        None => Err("no exit status".into()),
    }
}

/// The error report (the first `FATAL:` line and the `caused by:` lines after it) names the
/// input, by its path or its file name.
fn names_the_input(stderr: &str, input: &Path) -> Result<(), String> {
    let Some(at) = stderr
        .lines()
        .position(|l| l.starts_with("FATAL:"))
        .map(|i| stderr.lines().skip(i).collect::<Vec<_>>().join("\n"))
    else {
        return Err("failed without a `FATAL:` line".into());
    };
    let name = input.file_name().unwrap().to_str().unwrap();
    if at.contains(input.to_str().unwrap()) || at.contains(name) {
        Ok(())
    } else {
        Err(format!("the error does not name `{name}`"))
    }
}

/// Bytes of a file, or of every file under a directory, to see that a reader changed nothing.
fn fingerprint(p: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(p) = stack.pop() {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
            Ok(_) => {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
            Err(_) => {}
        }
    }
    out.sort();
    out
}

/// What a run left behind, judged once it had a moment to wind down (holders retire, loop
/// devices auto-clear and FUSE servers exit asynchronously).
fn leftovers(case_dir: &Path, tmp: &Path, out_dir: &Path, created: Option<&Path>) -> Vec<String> {
    let mut found = Vec::new();
    let mounts = sifr_testkit::settled(|| sifr_testkit::host_mounts_mentioning(case_dir));
    if !mounts.is_empty() {
        found.push(format!("mounts left: {mounts:?}"));
    }
    let loops = sifr_testkit::settled(|| crate::images::loops_backed_by(case_dir));
    if !loops.is_empty() {
        found.push(format!("loop devices left: {loops:?}"));
    }
    let procs = sifr_testkit::settled(|| processes(case_dir));
    if !procs.is_empty() {
        found.push(format!("processes left: {procs:?}"));
    }
    let files = sifr_testkit::settled(|| {
        let mut v = tree(tmp);
        v.extend(
            tree(out_dir)
                .into_iter()
                .filter(|p| created.is_none_or(|c| !p.starts_with(c))),
        );
        v
    });
    if !files.is_empty() {
        found.push(format!("files left: {files:?}"));
    }
    found
}

/// Pids and command lines of the processes that mention `dir`.
fn processes(dir: &Path) -> Vec<String> {
    sifr_testkit::processes_mentioning(dir)
        .into_iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            )
        })
        .collect()
}

/// Every path under `dir` except a user's empty runtime directory (`sifr-UID`, which sifr
/// keeps: it is made `0700` once and checked on every launch).
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let runtime = e.file_name().to_string_lossy().starts_with("sifr-")
            && std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
        if runtime {
            continue;
        }
        if p.is_dir() && !p.is_symlink() {
            let inner = tree(&p);
            if inner.is_empty() {
                out.push(p);
            } else {
                out.extend(inner);
            }
        } else {
            out.push(p);
        }
    }
    out
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
