//! SCIF apps end to end (issue 22): `--app` for `run`, `exec`, `shell` and `test`,
//! `run-help --app`, `inspect --list-apps`, the app's environment and the SCIF variables, and
//! `build`'s `%app*` sections laid out as Apptainer lays them out, in its order; as root and as
//! the test user. Each expectation names the Apptainer v1.5.3 e2e test it comes from
//! (`e2e/actions/actions.go`, `e2e/runhelp/runhelp.go`, `e2e/imgbuild/imgbuild.go` with
//! `e2e/internal/e2e/imageverify.go`, `e2e/imgbuild/regressions.go`); `inspect --app` on
//! Apptainer's inspector image is ported in `inspect.rs`.
//!
//! The images are built from the shared test sandbox (a static probe plus busybox), so no
//! network is needed.

mod build_case;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Output;

use build_case::{Case, builders, ok};
use sifr_testkit::{As, runnable_identities as identities, stderr, stdout};

/// The SCIF part of Apptainer's `e2e/testdata/Apptainer` (its `testapp`, `foo` and `bar`), with
/// its runscript and test, plus `shelly`, whose `%appenv` needs the interpreter (not plain
/// exports), and a `%apptest` for `foo`.
const APPS_DEF: &str = concat!(
    r#"Bootstrap: localimage
From: ../image

%help
    export BAD_GUY=Thanos
    export SMART_GUY=tony

%runscript
    echo "Running command: $*"
    exec "$@"

%test
    exec "$@"

"#,
    include_str!("data/scif_apps.def"),
    r#"
%apptest foo
    echo "TESTING FOO $*"

%appenv shelly
    if [ -n "$SCIF_APPNAME" ]; then
        export GREETING="hi from $SCIF_APPNAME"
    fi
"#
);

/// A case whose base image has the busybox tools the definitions use.
fn case() -> Option<Case> {
    let c = Case::new()?;
    for tool in ["chmod", "env", "pwd", "rev"] {
        let _ = std::os::unix::fs::symlink("busybox", c.fx.image.join("bin").join(tool));
    }
    Some(c)
}

/// [`case`] with [`APPS_DEF`] built as root into `apps.sif`.
fn apps_image() -> Option<Case> {
    let c = case()?;
    c.write("apps.def", APPS_DEF);
    ok(
        &c.sifr(As::Root, &["build", "apps.sif", "apps.def"]),
        "building the apps image",
    );
    Some(c)
}

fn expect(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The container's environment, one `NAME=VALUE` a line, for `args` before the image.
fn env_lines(c: &Case, who: As, args: &[&str], image: &str) -> Vec<String> {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    a.extend([image, "/bin/probe", "env"]);
    let o = c.sifr(who, &a);
    expect(&o, 0, &format!("{who:?} {a:?}"));
    stdout(&o).lines().map(str::to_owned).collect()
}

#[test]
fn run_and_exec_take_the_named_app() {
    let Some(c) = apps_image() else { return };
    for who in identities() {
        let w = format!("{who:?}");
        // e2e/actions actionRun ScifTestAppGood: `run --app testapp` runs its %apprun.
        let o = c.sifr(who, &["run", "--app", "testapp", "apps.sif"]);
        expect(&o, 0, &format!("{w} actionRun/ScifTestAppGood"));
        assert_eq!(stdout(&o), "testapp\n", "{w}");
        // e2e/actions actionRun ScifTestAppBad: exit 1; sifr names the image's apps.
        let o = c.sifr(who, &["run", "--app", "fakeapp", "apps.sif"]);
        expect(&o, 1, &format!("{w} actionRun/ScifTestAppBad"));
        let err = stderr(&o);
        assert!(
            err.contains("Could not locate the container application: fakeapp")
                && err.contains("the image's apps: bar, foo, shelly, testapp")
                && err.contains("hint: use `--app bar`"),
            "{w}: {err}"
        );
        // e2e/actions actionExec ScifTestAppGood: the app's bin is on PATH (and its script,
        // without a `#!` line, runs under /bin/sh as Apptainer runs it).
        let o = c.sifr(who, &["exec", "--app", "testapp", "apps.sif", "testapp.sh"]);
        expect(&o, 0, &format!("{w} actionExec/ScifTestAppGood"));
        assert_eq!(stdout(&o), "testapp\n", "{w}");
        // e2e/actions actionExec ScifTestAppBad.
        let o = c.sifr(who, &["exec", "--app", "fakeapp", "apps.sif", "testapp.sh"]);
        expect(&o, 1, &format!("{w} actionExec/ScifTestAppBad"));
        // e2e/actions STDPipe AppsFoo: the output of `run --app foo`.
        let o = c.sifr(who, &["run", "--app", "foo", "apps.sif"]);
        expect(&o, 0, &format!("{w} STDPipe/AppsFoo"));
        assert!(stdout(&o).contains("RUNNING FOO"), "{w}: {}", stdout(&o));
        // Without --app, the image's own runscript.
        let o = c.sifr(who, &["run", "apps.sif", "echo", "hi"]);
        expect(&o, 0, &w);
        assert_eq!(stdout(&o), "Running command: echo hi\nhi\n", "{w}");
    }
}

#[test]
fn the_scif_tree_is_where_apptainer_puts_it() {
    let Some(c) = apps_image() else { return };
    // e2e/actions actionExec ScifTestfolderOrg, each `test` of the table (the two files created
    // by %appinstall are Apptainer's issue #2404: they land in the app's directory).
    let rows: &[&[&str]] = &[
        &["-d", "/scif"],
        &["-d", "/scif/apps"],
        &["-d", "/scif/data"],
        &["-d", "/scif/apps/foo"],
        &["-d", "/scif/apps/bar"],
        &["-f", "/scif/apps/foo/filefoo.exec"],
        &["-f", "/scif/apps/bar/filebar.exec"],
        &["-d", "/scif/data/foo/output"],
        &["-d", "/scif/data/foo/input"],
    ];
    for who in identities() {
        for row in rows {
            let mut a = vec!["exec", "apps.sif", "test"];
            a.extend_from_slice(row);
            let o = c.sifr(who, &a);
            expect(
                &o,
                0,
                &format!("{who:?} actionExec/ScifTestfolderOrg {row:?}"),
            );
        }
        // The check can fail: a path that is not there.
        let o = c.sifr(
            who,
            &["exec", "apps.sif", "test", "-d", "/scif/apps/fakeapp"],
        );
        expect(&o, 1, "no such app directory");
    }
}

#[test]
fn test_and_shell_use_the_app() {
    let Some(c) = apps_image() else { return };
    for who in identities() {
        let w = format!("{who:?}");
        // Apptainer's action script, `test`: the app's %apptest with the arguments.
        let o = c.sifr(who, &["test", "--app", "foo", "apps.sif", "a", "b"]);
        expect(&o, 0, &w);
        assert_eq!(stdout(&o), "TESTING FOO a b\n", "{w}");
        // ... and "No tests for contained app", exit 1.
        let o = c.sifr(who, &["test", "--app", "bar", "apps.sif"]);
        expect(&o, 1, &w);
        assert!(
            stderr(&o).contains("no tests for contained app: bar"),
            "{w}: {}",
            stderr(&o)
        );
        // `run`: "no runscript for contained app", exit 1.
        let o = c.sifr(who, &["run", "--app", "bar", "apps.sif"]);
        expect(&o, 1, &w);
        assert!(
            stderr(&o).contains("no runscript for contained app: bar"),
            "{w}: {}",
            stderr(&o)
        );
        // `shell`: the shell, in the app's environment.
        let mut cmd =
            c.fx.command(build_case::sifr(), who)
                .args(["shell", "--app", "foo", "apps.sif"])
                .env("SIFR_TMPDIR", &c.tmp)
                .command();
        cmd.stdin(std::process::Stdio::piped());
        cmd.stdout(std::process::Stdio::piped());
        cmd.stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(b"echo \"$SCIF_APPNAME $HELLOTHISIS $APPTAINER_APPNAME\"\n")
                .unwrap();
        }
        let o = child.wait_with_output().unwrap();
        expect(&o, 0, &format!("{w} shell --app foo"));
        assert_eq!(stdout(&o), "foo foo foo\n", "{w}");
    }
}

#[test]
fn the_apps_environment_and_the_scif_variables() {
    let Some(c) = apps_image() else { return };
    for who in identities() {
        let w = format!("{who:?}");
        // The image's own PATH, which the app's directories go before.
        let plain = env_lines(&c, who, &[], "apps.sif");
        let image_path = plain
            .iter()
            .find_map(|l| l.strip_prefix("PATH="))
            .unwrap()
            .to_owned();
        let app_path =
            format!("PATH=/scif/apps/foo/bin:/scif/apps/foo:/scif/apps/singularity:{image_path}");
        let env = env_lines(&c, who, &["--app", "foo"], "apps.sif");
        let has = |kv: &str| env.iter().any(|l| l == kv);
        assert!(has(&app_path), "{w}: no {app_path} in {env:#?}");
        // Apptainer: 95-apps.sh (SCIF_APPS, SCIF_APPROOT, PATH, LD_LIBRARY_PATH), the app's
        // 01-base.sh, its %appenv, APPTAINER_APPNAME and SINGULARITY_APPNAME from the
        // launcher; the per-app variables of 94-appsbase.sh for every app.
        for kv in [
            "LD_LIBRARY_PATH=/scif/apps/foo/lib:/.singularity.d/libs",
            "SCIF_APPS=/scif/apps",
            "SCIF_APPNAME=foo",
            "SCIF_APPROOT=/scif/apps/foo",
            "SCIF_APPMETA=/scif/apps/foo/scif",
            "SCIF_DATA=/scif/data",
            "SCIF_APPDATA=/scif/data/foo",
            "SCIF_APPINPUT=/scif/data/foo/input",
            "SCIF_APPOUTPUT=/scif/data/foo/output",
            "HELLOTHISIS=foo",
            "APPTAINER_APPNAME=foo",
            "SINGULARITY_APPNAME=foo",
            "SCIF_APPROOT_testapp=/scif/apps/testapp",
            "SCIF_APPDATA_bar=/scif/data/bar",
            "SCIF_APPBIN_foo=/scif/apps/foo/bin",
            "SCIF_APPLIB_foo=/scif/apps/foo/lib",
            "SCIF_APPMETA_foo=/scif/apps/foo/scif",
            "SCIF_APPENV_foo=/scif/apps/foo/scif/env/90-environment.sh",
            "SCIF_APPRUN_foo=/scif/apps/foo/scif/runscript",
            "SCIF_APPLABELS_foo=/scif/apps/foo/scif/labels.json",
            // The active app's variables of SCIF (`apptainer help inspect`; docs/compat.md).
            "SCIF_APPBIN=/scif/apps/foo/bin",
            "SCIF_APPLIB=/scif/apps/foo/lib",
            "SCIF_APPENV=/scif/apps/foo/scif/env/90-environment.sh",
            "SCIF_APPLABELS=/scif/apps/foo/scif/labels.json",
            "SCIF_APPRUN=/scif/apps/foo/scif/runscript",
            "SCIF_APPTEST=/scif/apps/foo/scif/test",
            "SCIF_APPHELP=/scif/apps/foo/scif/runscript.help",
        ] {
            assert!(has(kv), "{w}: no {kv} in {env:#?}");
        }
        // bar has no %appenv nor %apprun: no such file, no such variable.
        assert!(
            !env.iter().any(|l| l.starts_with("SCIF_APPENV_bar=")),
            "{w}"
        );
        assert!(!env.iter().any(|l| l.starts_with("SCIF_APPSTART=")), "{w}");

        // Without --app: the per-app variables only, and no app on PATH.
        let env = plain;
        assert!(
            env.iter().any(|l| l == "SCIF_APPROOT_foo=/scif/apps/foo"),
            "{w}: {env:#?}"
        );
        assert!(!image_path.contains("/scif"), "{w}: {image_path}");
        for name in [
            "SCIF_APPNAME=",
            "SCIF_APPROOT=",
            "APPTAINER_APPNAME=",
            "HELLOTHISIS=",
        ] {
            assert!(!env.iter().any(|l| l.starts_with(name)), "{w}: {name}");
        }

        // The twin `APPTAINER_APP` selects the app; an %appenv with shell syntax runs in the
        // interpreter; the injected values come after the app's (Apptainer injects them after
        // 99-base.sh).
        let o =
            c.fx.command(build_case::sifr(), who)
                .args(["exec", "apps.sif", "/bin/probe", "env"])
                .env("APPTAINER_APP", "shelly")
                .env("APPTAINERENV_SCIF_APPDATA", "/elsewhere")
                .output()
                .output;
        expect(&o, 0, &format!("{w} APPTAINER_APP=shelly"));
        let env = stdout(&o);
        for kv in [
            "GREETING=hi from shelly",
            "APPTAINER_APPNAME=shelly",
            "SCIF_APPDATA=/elsewhere",
            // No bin or lib directory with content is needed: build made them.
            "LD_LIBRARY_PATH=/scif/apps/shelly/lib:/.singularity.d/libs",
        ] {
            assert!(env.lines().any(|l| l == kv), "{w}: no {kv} in {env}");
        }
    }
}

#[test]
fn run_help_and_inspect_name_the_apps() {
    let Some(c) = apps_image() else { return };
    for who in identities() {
        let w = format!("{who:?}");
        // e2e/runhelp testRunHelp DefaultHelp, AppFooHelp, AppFakeHelp.
        let o = c.sifr(who, &["run-help", "apps.sif"]);
        expect(&o, 0, &format!("{w} DefaultHelp"));
        assert!(stdout(&o).contains("BAD_GUY=Thanos"), "{w}: {}", stdout(&o));
        let o = c.sifr(who, &["run-help", "--app", "foo", "apps.sif"]);
        expect(&o, 0, &format!("{w} AppFooHelp"));
        assert_eq!(stdout(&o), "This is the help for foo!\n", "{w}");
        let o = c.sifr(who, &["run-help", "--app", "fake", "apps.sif"]);
        expect(&o, 0, &format!("{w} AppFakeHelp"));
        assert_eq!(
            stdout(&o),
            "No help sections were defined for this image\n",
            "{w}"
        );
        // sifr says which apps there are, on stderr.
        assert!(
            stderr(&o).contains("no app `fake`; its apps: bar, foo, shelly, testapp"),
            "{w}: {}",
            stderr(&o)
        );
        // An app without %apphelp is an app without help.
        let o = c.sifr(who, &["run-help", "--app", "bar", "apps.sif"]);
        expect(&o, 0, &w);
        assert_eq!(
            stdout(&o),
            "No help sections were defined for this image\n",
            "{w}"
        );
        assert!(!stderr(&o).contains("no app"), "{w}: {}", stderr(&o));
        // inspect --list-apps (e2e/inspect "list apps", on this image).
        let o = c.sifr(who, &["inspect", "--list-apps", "apps.sif"]);
        expect(&o, 0, &w);
        assert_eq!(stdout(&o), "bar\nfoo\nshelly\ntestapp\n", "{w}");
        let o = c.sifr(who, &["inspect", "--app", "foo", "--labels", "apps.sif"]);
        expect(&o, 0, &w);
        assert_eq!(stdout(&o), "HELLOTHISIS: foo\nSCIF_APP_NAME: foo\n", "{w}");
        // An unknown app: nothing on stdout, as Apptainer; sifr warns which apps there are.
        let o = c.sifr(who, &["inspect", "--app", "fake", "apps.sif"]);
        expect(&o, 0, &w);
        assert_eq!(stdout(&o), "", "{w}");
        assert!(
            stderr(&o).contains("no app `fake`; its apps: bar, foo, shelly, testapp"),
            "{w}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn an_image_without_apps_says_so_and_a_bad_name_is_refused() {
    let Some(c) = case() else { return };
    let image = c.fx.image.to_str().unwrap().to_owned();
    for who in identities() {
        let w = format!("{who:?}");
        let o = c.sifr(who, &["exec", "--app", "foo", &image, "echo"]);
        expect(&o, 1, &w);
        let err = stderr(&o);
        assert!(
            err.contains(
                "Could not locate the container application: foo (the image has no SCIF apps)"
            ) && err.contains("hint: run the image without `--app`"),
            "{w}: {err}"
        );
        // A name is one path component: refused before any container starts.
        let o = c.sifr(who, &["run", "--app", "../foo", &image]);
        assert!(
            !o.status.success() && o.status.code() != Some(1),
            "{w}: {}",
            o.status
        );
        assert!(
            stderr(&o).contains("invalid `--app` value `../foo`"),
            "{w}: {}",
            stderr(&o)
        );
        // An empty name is no app, as in Apptainer.
        let o = c.sifr(who, &["exec", "--app", "", &image, "echo"]);
        expect(&o, 0, &w);
    }
}

/// `e2e/imgbuild` `buildDefinition`'s App* definitions (two apps each) in one file, as its
/// `deffile.tmpl` writes them.
const BUILD_DEF: &str = r#"Bootstrap: localimage
From: ../image

%apphelp foo
    foo help info line 1
    foo help info line 2
%apphelp bar
    bar help info line 1
%appenv foo
    export testvar1=fooOne
    export testvar2=fooTwo
%appenv bar
    export testvar1=barOne
%applabels foo
    customLabel1 fooOne
    customLabel2 fooTwo
%applabels bar
    customLabel1 barOne
%appfiles foo
    appfile.txt FooFile.txt
    appfile.txt FooFile2.txt
%appfiles bar
    appfile.txt BarFile.txt
%appinstall foo
    touch FooInstallFile1
%appinstall bar
    touch BarInstallFile1
%apprun foo
    echo foo runscript line 1
%apprun bar
    echo bar runscript line 1
%apptest foo
    echo foo testscript line 1
%apptest bar
    echo bar testscript line 1
"#;

#[test]
fn build_lays_out_each_app_section() {
    let Some(c) = case() else { return };
    c.write("build.def", BUILD_DEF);
    let src = c.fx.work.join("appfile.txt");
    std::fs::write(&src, "app file content\n").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o745)).unwrap();
    for who in builders() {
        let w = format!("{who:?}");
        let sandbox = format!("apps-{}", who.uid());
        ok(
            &c.sifr(who, &["build", "--sandbox", &sandbox, "build.def"]),
            &format!("{w}: build"),
        );
        let root = c.fx.work.join(&sandbox);
        let mode = |rel: &str| {
            std::fs::metadata(root.join(rel))
                .unwrap_or_else(|e| panic!("{w}: {rel}: {e}"))
                .permissions()
                .mode()
                & 0o7777
        };
        let text = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
        for (app, n) in [("foo", 2), ("bar", 1)] {
            let base = format!("scif/apps/{app}");
            // buildDefinition/AppHelp: scif/runscript.help, mode 0644, with the text.
            let help = format!("{base}/scif/runscript.help");
            assert_eq!(mode(&help), 0o644, "{w} AppHelp");
            assert!(
                text(&help).contains(&format!("{app} help info line 1")),
                "{w} AppHelp"
            );
            // buildDefinition/AppRun and AppTest: scripts of mode 0755 with the lines.
            for (file, what) in [("runscript", "runscript"), ("test", "testscript")] {
                let p = format!("{base}/scif/{file}");
                assert_eq!(mode(&p), 0o755, "{w} {p}");
                assert!(
                    text(&p).starts_with("#!/bin/sh\n\n")
                        && text(&p).contains(&format!("echo {app} {what} line 1")),
                    "{w} {p}: {}",
                    text(&p)
                );
            }
            // buildDefinition/AppInstall: the file `touch`ed in the app's directory.
            let installed = if app == "foo" {
                "FooInstallFile1"
            } else {
                "BarInstallFile1"
            };
            assert!(root.join(&base).join(installed).is_file(), "{w} AppInstall");
            // buildDefinition/AppLabels (labels.json, with SCIF_APP_NAME).
            let labels = text(&format!("{base}/scif/labels.json"));
            assert!(
                labels.contains(&format!("\"SCIF_APP_NAME\": \"{app}\""))
                    && labels.contains(&format!("\"customLabel1\": \"{app}One\"")),
                "{w} AppLabels: {labels}"
            );
            // The directories Apptainer makes for every app.
            for d in ["bin", "lib", "scif/env"] {
                assert!(root.join(&base).join(d).is_dir(), "{w} {app}/{d}");
            }
            for d in ["input", "output"] {
                assert!(root.join("scif/data").join(app).join(d).is_dir(), "{w}");
            }
            assert_eq!(mode(&format!("{base}/scif/env/01-base.sh")), 0o755, "{w}");
            // buildDefinition/AppFiles: the copies have the source's size, mode and content.
            let files: &[&str] = if app == "foo" {
                &["FooFile.txt", "FooFile2.txt"]
            } else {
                &["BarFile.txt"]
            };
            assert_eq!(files.len(), n);
            for f in files {
                let p = format!("{base}/{f}");
                assert_eq!(text(&p), "app file content\n", "{w} AppFiles {p}");
                assert_eq!(mode(&p), 0o745, "{w} AppFiles {p}");
            }
        }
        // buildDefinition/AppEnv: `exec --app NAME IMAGE env` shows the app's variables.
        let sandbox_path = root.to_str().unwrap();
        for (app, want) in [
            ("foo", &["testvar1=fooOne", "testvar2=fooTwo"][..]),
            ("bar", &["testvar1=barOne"][..]),
        ] {
            let env = env_lines(&c, who, &["--app", app], sandbox_path);
            for kv in want {
                assert!(env.iter().any(|l| l == kv), "{w} AppEnv {app}: {env:#?}");
            }
        }
        let appsbase = text(".singularity.d/env/94-appsbase.sh");
        assert!(
            appsbase.contains("## App Global Exports For: foo")
                && appsbase.contains("## App Global Exports For: bar")
                && appsbase.find("For: foo") < appsbase.find("For: bar"),
            "{w}: {appsbase}"
        );
    }
}

/// Apptainer's `e2e/testdata/regressions/issue_4820.def` (the second app's install uses what
/// the first one's made), and the order of `%appfiles` against `%setup` and `%files`.
const ORDER_DEF: &str = r#"Bootstrap: localimage
From: ../image

%setup
    test -f "$APPTAINER_ROOTFS/scif/apps/hdf5/early.txt"
    echo setup-saw-appfiles > "$APPTAINER_ROOTFS/setup.txt"

%files
    later.txt /scif/apps/hdf5/early.txt

%appfiles hdf5
    early.txt

%appinstall hdf5
echo "installing hdf5..."
echo "hdf5 installed" > done.hdf5

%appinstall med
echo "installing med..."
cp /scif/apps/hdf5/done.hdf5 done.med
"#;

#[test]
fn apps_build_in_order_and_their_files_come_before_setup() {
    let Some(c) = case() else { return };
    let _ = std::os::unix::fs::symlink("busybox", c.fx.image.join("bin/cp"));
    c.write("order.def", ORDER_DEF);
    c.write("early.txt", "early\n");
    c.write("later.txt", "later\n");
    // e2e/imgbuild regressions issue4820: the build succeeds.
    let o = c.sifr(As::Root, &["build", "--sandbox", "order", "order.def"]);
    ok(&o, "issue4820");
    let root = c.fx.work.join("order");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    assert_eq!(read("scif/apps/med/done.med"), "hdf5 installed\n");
    // %appfiles before %setup (which saw it), %files after (it replaced it).
    assert_eq!(read("setup.txt"), "setup-saw-appfiles\n");
    assert_eq!(read("scif/apps/hdf5/early.txt"), "later\n");
    c.assert_clean();
}

/// `instance start --app`: the app's `%appstart` with the instance's arguments, in the app's
/// environment (e2e/instance testAppEchoServer, whose `nc` server is replaced by a file the
/// start script writes in a bound directory), then `instance stop`.
#[test]
fn instance_start_runs_the_apps_startscript() {
    let Some(c) = case() else { return };
    c.write(
        "inst.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%appstart foo\n    \
         echo \"STARTING FOO $1 $SCIF_APPNAME\" > \"/out/started-$1\"\n    exec sleep 300\n",
    );
    ok(
        &c.sifr(As::Root, &["build", "inst.sif", "inst.def"]),
        "building the instance image",
    );
    for who in identities() {
        let home = c.fx.dir.path().join(format!("home-{}", who.uid()));
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(who.uid()), Some(who.gid())).unwrap();
        let sifr = |args: &[&str]| {
            c.fx.command(build_case::sifr(), who)
                .env("HOME", &home)
                .args(args)
                .output()
                .output
        };
        let name = format!("appfoo{}", who.uid());
        let bind = format!("{}:/out", home.display());
        let o = sifr(&[
            "instance", "start", "-B", &bind, "--app", "foo", "inst.sif", &name, "7777",
        ]);
        expect(&o, 0, &format!("{who:?} instance start --app foo"));
        let started = home.join("started-7777");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !started.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(&started);
        let inst = format!("instance://{name}");
        let o = sifr(&["exec", "--app", "foo", &inst, "/bin/probe", "env"]);
        let stop = sifr(&["instance", "stop", &name]);
        assert_eq!(
            text.as_deref().ok(),
            Some("STARTING FOO 7777 foo\n"),
            "{who:?}: the start script's file"
        );
        expect(&o, 0, &format!("{who:?} exec --app foo instance://"));
        assert!(
            stdout(&o).lines().any(|l| l == "SCIF_APPNAME=foo"),
            "{who:?}: {}",
            stdout(&o)
        );
        expect(&stop, 0, &format!("{who:?} instance stop"));
        // An unknown app: the instance does not start.
        let o = sifr(&["instance", "start", "--app", "nope", "inst.sif", &name]);
        assert!(!o.status.success(), "{who:?}");
        assert!(
            stderr(&o).contains("Could not locate the container application: nope"),
            "{who:?}: {}",
            stderr(&o)
        );
    }
}
