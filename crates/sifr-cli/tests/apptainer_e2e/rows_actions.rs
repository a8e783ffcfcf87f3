//! Rows from Apptainer v1.5.3's `e2e/actions/actions.go` and `e2e/actions/regressions.go`:
//! exec/run/shell/test, exit statuses and signals, stdin and stdout, --pwd, --contain,
//! --workdir, --home, binds, --no-mount, --writable-tmpfs and the regressions that need neither
//! network nor setuid.

use super::table::*;

const F: &str = "e2e/actions/actions.go";
const R: &str = "e2e/actions/regressions.go";
const PTY: &str = "needs a terminal: Apptainer drives the interactive shell through a pty";

fn n(file: &str, func: &str, sub: &str) -> String {
    if sub.is_empty() {
        format!("{file} {func}")
    } else {
        format!("{file} {func}/{sub}")
    }
}

fn cmd(cmd: &str, args: &[&str]) -> Vec<String> {
    std::iter::once(cmd)
        .chain(args.iter().copied())
        .map(String::from)
        .collect()
}

fn r(name: String, argv: Vec<String>) -> Row {
    let mut r = row(&name, &[]);
    r.argv = argv;
    r
}

pub fn rows() -> Vec<Row> {
    let mut v = Vec::new();

    // actionRun ("run"): the test image's runscript is `echo "Running command: $*"; exec "$@"`.
    for (sub, args, exit, pending) in [
        ("NoCommand", &["{img}"][..], 0, None),
        ("True", &["{img}", "true"], 0, None),
        ("False", &["{img}", "false"], 1, None),
        ("ScifTestAppGood", &["--app", "testapp", "{img}"], 0, None),
        ("ScifTestAppBad", &["--app", "fakeapp", "{img}"], 1, None),
    ] {
        let mut row = r(n(F, "actionRun", sub), cmd("run", args)).exit(exit);
        if let Some(p) = pending {
            row = row.pending(p);
        }
        v.push(row);
    }

    // actionExec ("exec"), run from /tmp as Apptainer does.
    let exec: &[(&str, &[&str], i32, Option<&str>)] = &[
        ("NoCommand", &["{img}"], 1, None),
        ("True", &["{img}", "true"], 0, None),
        ("TrueAbsPAth", &["{img}", "/bin/true"], 0, None),
        ("False", &["{img}", "false"], 1, None),
        ("FalseAbsPath", &["{img}", "/bin/false"], 1, None),
        (
            "ScifTestAppGood",
            &["--app", "testapp", "{img}", "testapp.sh"],
            0,
            None,
        ),
        (
            "ScifTestAppBad",
            &["--app", "fakeapp", "{img}", "testapp.sh"],
            1,
            None,
        ),
        (
            "ScifTestfolderOrg /scif",
            &["{img}", "test", "-d", "/scif"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/apps",
            &["{img}", "test", "-d", "/scif/apps"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/data",
            &["{img}", "test", "-d", "/scif/data"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/apps/foo",
            &["{img}", "test", "-d", "/scif/apps/foo"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/apps/bar",
            &["{img}", "test", "-d", "/scif/apps/bar"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/apps/foo/filefoo.exec",
            &["{img}", "test", "-f", "/scif/apps/foo/filefoo.exec"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/apps/bar/filebar.exec",
            &["{img}", "test", "-f", "/scif/apps/bar/filebar.exec"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/data/foo/output",
            &["{img}", "test", "-d", "/scif/data/foo/output"],
            0,
            None,
        ),
        (
            "ScifTestfolderOrg /scif/data/foo/input",
            &["{img}", "test", "-d", "/scif/data/foo/input"],
            0,
            None,
        ),
    ];
    for (sub, args, exit, pending) in exec {
        let mut row = r(n(F, "actionExec", sub), cmd("exec", args))
            .exit(*exit)
            .cwd("/tmp");
        if let Some(p) = pending {
            row = row.pending(p);
        }
        v.push(row);
    }
    // The user's home exists in the image only because sifr/Apptainer mount it; root's /root
    // is part of the image, so Apptainer runs this one under its user profile only.
    v.push(
        r(
            n(F, "actionExec", "NoHome"),
            cmd("exec", &["--no-home", "{img}", "ls", "-ld", "{home}"]),
        )
        .exit(1)
        .cwd("/tmp")
        .who(Who::User),
    );
    v.push(
        r(
            n(F, "actionExec", "ContainAllPID"),
            cmd(
                "exec",
                &["--containall", "--no-init", "{img}", "sh", "-c", "echo $$"],
            ),
        )
        .out(exact("1"))
        .cwd("/tmp"),
    );
    v.push(
        r(
            n(F, "actionExec", "ContainAllNoPID"),
            cmd(
                "exec",
                &[
                    "--containall",
                    "--no-init",
                    "--no-pid",
                    "{img}",
                    "sh",
                    "-c",
                    "echo $$",
                ],
            ),
        )
        .out(not_exact("1"))
        .cwd("/tmp")
        .adapted("Apptainer's UnwantedExactMatch \"1\\n\" can never fail (it trims the newline); checked as not \"1\""),
    );

    // actionExecMultiProfile: a testdata dir with tmp/, var_tmp/ and home/ each holding a file.
    let layout = |row: Row| {
        row.file("testdata/tmp/testApptainerExec.t", "")
            .file("testdata/var_tmp/testApptainerExec.v", "")
            .file("testdata/home/testApptainerExec.h", "")
            .cwd("/tmp")
    };
    let multi: &[(&str, &[&str], i32)] = &[
        (
            "ContainOnly",
            &[
                "--contain",
                "{img}",
                "test",
                "-f",
                "/tmp/testApptainerExec.t",
            ],
            1,
        ),
        (
            "WorkdirOnly",
            &[
                "--workdir",
                "{tmp}/testdata",
                "{img}",
                "test",
                "-f",
                "/tmp/testApptainerExec.t",
            ],
            1,
        ),
        (
            "WorkdirContainTmp",
            &[
                "--workdir",
                "{tmp}/testdata",
                "--contain",
                "{img}",
                "test",
                "-f",
                "/tmp/testApptainerExec.t",
            ],
            0,
        ),
        (
            "WorkdirContainVarTmp",
            &[
                "--workdir",
                "{tmp}/testdata",
                "--contain",
                "{img}",
                "test",
                "-f",
                "/var/tmp/testApptainerExec.v",
            ],
            0,
        ),
        (
            "WorkdirContainHome",
            &[
                "--workdir",
                "{tmp}/testdata",
                "--contain",
                "{img}",
                "sh",
                "-c",
                "test -f $HOME/testApptainerExec.h",
            ],
            0,
        ),
        ("CwdGood", &["--cwd", "/etc", "{img}", "true"], 0),
        ("PwdGood", &["--pwd", "/etc", "{img}", "true"], 0),
        (
            "Home",
            &[
                "--home",
                "{tmp}/testdata",
                "{img}",
                "test",
                "-f",
                "{tmp}/testdata/tmp/testApptainerExec.t",
            ],
            0,
        ),
        (
            "HomePath",
            &[
                "--home",
                "{tmp}/testdata/tmp:/home",
                "{img}",
                "test",
                "-f",
                "/home/testApptainerExec.t",
            ],
            0,
        ),
        ("HomeTmp", &["--home", "/tmp", "{img}", "true"], 0),
        (
            "HomeTmpExplicit",
            &["--home", "/tmp:/home", "{img}", "true"],
            0,
        ),
        (
            "UserBindTmp",
            &[
                "--bind",
                "{tmp}/testdata/tmp:/tmp",
                "{img}",
                "test",
                "-f",
                "/tmp/testApptainerExec.t",
            ],
            0,
        ),
        (
            "UserBindVarTmp",
            &[
                "--bind",
                "{tmp}/testdata/tmp:/var/tmp",
                "{img}",
                "test",
                "-f",
                "/var/tmp/testApptainerExec.t",
            ],
            0,
        ),
    ];
    for (sub, args, exit) in multi {
        v.push(layout(r(n(F, "actionExecMultiProfile", sub), cmd("exec", args))).exit(*exit));
    }

    // actionShell: Apptainer types into a pty; the two checks that need no prompt are made
    // here by feeding the shell's stdin.
    v.push(
        r(n(F, "actionShell", "ShellExit"), cmd("shell", &["{img}"]))
            .stdin("cd /\nexit\n")
            .out(contains("Singularity"))
            .pending(PTY),
    );
    v.push(
        r(
            n(F, "actionShell", "ShellHostname"),
            cmd("shell", &["{img}"]),
        )
        .stdin("hostname\nexit\n")
        .out(contains("{hostname}"))
        .adapted("commands on stdin instead of a pty"),
    );
    v.push(
        r(
            n(F, "actionShell", "ShellBadCommand"),
            cmd("shell", &["{img}"]),
        )
        .stdin("_a_fake_command\nexit\n")
        .exit(127)
        .adapted("commands on stdin instead of a pty"),
    );

    // STDPipe
    v.push(
        r(
            n(F, "STDPipe", "TrueSTDIN"),
            cmd("exec", &["{img}", "grep", "hi"]),
        )
        .stdin("hi"),
    );
    v.push(
        r(
            n(F, "STDPipe", "FalseSTDIN"),
            cmd("exec", &["{img}", "grep", "hi"]),
        )
        .stdin("bye")
        .exit(1),
    );
    v.push(
        r(n(F, "STDPipe", "TrueLibrary"), cmd("shell", &["{img}"]))
            .stdin("true")
            .adapted("the local test image instead of oras://ghcr.io/apptainer/busybox"),
    );
    v.push(
        r(n(F, "STDPipe", "FalseLibrary"), cmd("shell", &["{img}"]))
            .stdin("false")
            .exit(1)
            .adapted("the local test image instead of oras://ghcr.io/apptainer/busybox"),
    );
    v.push(
        r(
            n(F, "STDPipe", "AppsFoo"),
            cmd("run", &["--app", "foo", "{img}"]),
        )
        .out(exact("RUNNING FOO")),
    );
    v.push(
        r(
            n(F, "STDPipe", "CwdPath"),
            cmd("exec", &["--cwd", "/etc", "{img}", "pwd"]),
        )
        .out(exact("/etc")),
    );
    v.push(
        r(
            n(F, "STDPipe", "PwdPath"),
            cmd("exec", &["--pwd", "/etc", "{img}", "pwd"]),
        )
        .out(exact("/etc")),
    );
    v.push(
        r(n(F, "STDPipe", "Arguments"), cmd("run", &["{img}", "foo"]))
            .out(exact("Running command: foo"))
            .exit(127),
    );
    v.push(
        r(
            n(F, "STDPipe", "Permissions"),
            cmd("exec", &["{img}", "id", "-un"]),
        )
        .out(exact("{user}")),
    );

    // actionBasicProfiles
    for (sub, c, args, exit) in [
        ("ExecTrue", "exec", &["{img}", "true"][..], 0),
        ("ExecPidNsTrue", "exec", &["--pid", "{img}", "true"], 0),
        ("ExecFalse", "exec", &["{img}", "false"], 1),
        ("ExecPidNsFalse", "exec", &["--pid", "{img}", "false"], 1),
        ("RunTrue", "run", &["{img}", "true"], 0),
        ("RunPidNsTrue", "run", &["--pid", "{img}", "true"], 0),
        ("RunFalse", "run", &["{img}", "false"], 1),
        ("RunPidNsFalse", "run", &["--pid", "{img}", "false"], 1),
        (
            "RunBindTrue",
            "run",
            &["--bind", "/etc/passwd", "{img}", "true"],
            0,
        ),
        (
            "RunBindFalse",
            "run",
            &["--bind", "/etc/passwd", "{img}", "false"],
            1,
        ),
    ] {
        v.push(r(n(F, "actionBasicProfiles", sub), cmd(c, args)).exit(exit));
    }

    // exitSignals
    for (sub, script, exit) in [
        ("Exit0", "exit 0", 0),
        ("Exit1", "exit 1", 1),
        ("Exit134", "exit 134", 134),
        ("SignalKill", "kill -KILL $$", 137),
        ("SignalAbort", "kill -ABRT $$", 134),
    ] {
        v.push(
            r(
                n(F, "exitSignals", sub),
                cmd("exec", &["{img}", "/bin/sh", "-c", script]),
            )
            .exit(exit),
        );
    }

    v.extend(super::rows_binds::rows());

    // actionNoMount: `mount` inside must not show the mount left out.
    let nomount: &[(&str, &str, &str, bool, bool, &str, i32)] = &[
        ("proc", "proc", "on /proc", true, true, "", 1),
        ("sys", "sys", "on /sys", true, true, "", 0),
        ("dev", "dev", "on /dev", true, true, "", 0),
        ("devpts", "devpts", "on /dev/pts", false, true, "", 0),
        ("tmp", "tmp", "on /tmp", true, true, "", 0),
        ("home", "home", "on /home", true, true, "/", 0),
        ("home,cwd", "home,cwd", "on /home", true, true, "", 0),
        ("cwd", "cwd", "on /srv", true, true, "/srv", 0),
        (
            "/etc/hosts",
            "/etc/hosts",
            "on /etc/hosts",
            true,
            true,
            "",
            0,
        ),
        (
            "/etc/localtime",
            "/etc/localtime",
            "on /etc/localtime",
            true,
            true,
            "",
            0,
        ),
        (
            "/etc/resolv.conf",
            "/etc/resolv.conf",
            "on /etc/resolv.conf",
            true,
            true,
            "",
            0,
        ),
        (
            "binds-paths-hosts",
            "bind-paths",
            "on /etc/hosts",
            true,
            true,
            "",
            0,
        ),
        (
            "bind-paths-localtime",
            "bind-paths",
            "on /etc/localtime",
            true,
            true,
            "",
            0,
        ),
    ];
    for (sub, what, unwanted, default, contained, cwd, exit) in nomount {
        for (on, suffix, extra) in [
            (*default, "", None),
            (*contained, "Contained", Some("--contain")),
        ] {
            if !on {
                continue;
            }
            let mut args: Vec<&str> = extra.into_iter().collect();
            args.extend(["--no-mount", what, "{img}", "mount"]);
            let mut row = r(
                n(F, "actionNoMount", &format!("{sub}{suffix}")),
                cmd("exec", &args),
            )
            .exit(*exit)
            .out(not_contains(unwanted));
            if !cwd.is_empty() {
                row = row.cwd(cwd);
            }
            v.push(row);
        }
    }

    // regressions.go
    v.push(
        r(
            n(R, "issue4488", ""),
            cmd("exec", &["{img}", "ls", "-1", "/proc/self/fd"]),
        )
        .out(exact("0\n1\n2\n3")),
    );
    v.push(
        r(n(R, "issue4768", ""), cmd("exec", &["{img}", "pwd"]))
            .file("home/symlink", "->.")
            .cwd("{tmp}/home/symlink")
            .out(exact("{tmp}/home")),
    );
    for (sub, target, test) in [
        (
            "RelativeUsrBin",
            "/etc/relative-slink",
            &["-d", "/usr/bin"][..],
        ),
        (
            "RelativeUTC",
            "/etc/relative-slink",
            &["-f", "/usr/share/zoneinfo/Etc/UTC"],
        ),
        ("AbsoluteUsrBin", "/etc/absolute-slink", &["-d", "/usr/bin"]),
        (
            "AbsoluteUTC",
            "/etc/absolute-slink",
            &["-f", "/usr/share/zoneinfo/Etc/UTC"],
        ),
    ] {
        let bind = format!("/etc/passwd:{target}");
        let mut args = vec!["--bind", bind.as_str(), "{img}", "test"];
        args.extend(test);
        v.push(r(n(R, "issue4797", sub), cmd("exec", &args)));
    }
    v.push(
        r(n(R, "issue4836", ""), cmd("exec", &["{img}", "pwd"]))
            .file("dir/child/.keep", "")
            .file("symlink", "->{tmp}/dir")
            .cwd("{tmp}/symlink/child")
            .out(exact("{tmp}/dir/child")),
    );
    v.push(r(
        n(R, "issue5228", ""),
        cmd("exec", &["--home", "/", "{img}", "/bin/true"]),
    ));
    v.push(r(
        n(R, "issue5271", ""),
        cmd("exec", &["--writable-tmpfs", "{img}", "mkdir", "/e2e-dir"]),
    ));
    v.push(
        r(
            n(R, "issue5455", ""),
            cmd(
                "exec",
                &[
                    "--writable-tmpfs",
                    "{rootsandbox}",
                    "mkdir",
                    "/perm/issue5455",
                ],
            ),
        )
        .pending(
            "deliberate difference: kernel overlayfs refuses an unprivileged write under a \
             directory of an unmapped owner (EOVERFLOW); Apptainer uses fuse-overlayfs \
             (docs/runtime.md, Where sifr differs)",
        ),
    );
    v.push(
        r(
            n(R, "issue5599", ""),
            cmd("exec", &["--bind", "{tmp}:/mnt", "{img}", "/usr/bin/env"]),
        )
        .env("APPTAINER_BIND", "{tmp}:/srv")
        .out(contains("/mnt,/srv")),
    );
    v.push(r(
        n(R, "issue5690", ""),
        cmd("exec", &["{img}", "/bin/true"]),
    ));
    v.push(
        r(
            n(R, "issue3501", "nonested"),
            cmd(
                "exec",
                &[
                    "--mount",
                    "type=bind,source={tmp},destination=/hidden,nonested",
                    "{img}",
                    "/usr/bin/env",
                ],
            ),
        )
        .out(not_contains("APPTAINER_BIND=/hidden")),
    );
    v.push(
        r(
            n(R, "issue3501", "mixed"),
            cmd(
                "exec",
                &[
                    "--bind",
                    "{tmp}:/visible",
                    "--mount",
                    "type=bind,source={tmp},destination=/hidden,nonested",
                    "{img}",
                    "/usr/bin/env",
                ],
            ),
        )
        .out(contains("APPTAINER_BIND=/visible"))
        .out(not_contains("/hidden")),
    );
    v
}
