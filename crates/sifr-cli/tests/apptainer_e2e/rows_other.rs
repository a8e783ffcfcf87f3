//! Rows from Apptainer v1.5.3's `e2e/inspect/inspect.go`, `e2e/instance/instance.go`,
//! `e2e/cache/cache.go` and `e2e/version/version.go`.

use super::table::*;

/// An inspect check: subtest, inspect flag, `--app` name, JSON checks, pending reason.
type Inspect = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<Match>,
    Option<&'static str>,
);

/// `inspect --json` output: `{"data":{"attributes":{...}},"type":"container"}`.
const A: &str = "/data/attributes";

pub fn inspect() -> Vec<Row> {
    let f = "e2e/inspect/inspect.go apptainerInspect";
    // (subtest, inspect flag, app, JSON checks, pending)
    let label = |k: &str, v: &str| json_str(&format!("{A}/labels/{}", k.replace('/', "~1")), v);
    let mut t: Vec<Inspect> = vec![
        (
            "label maintainer",
            "--labels",
            None,
            vec![label("MAINTAINER", "\"WestleyK <westley@sylabs.io>\"")],
            None,
        ),
        (
            "label_E2E",
            "--labels",
            None,
            vec![label("E2E", "AWESOME")],
            None,
        ),
        (
            "label_HI",
            "--labels",
            None,
            vec![label("HI", "\"HELLO WORLD\"")],
            None,
        ),
        (
            "label_e2e",
            "--labels",
            None,
            vec![label("e2e", "awesome")],
            None,
        ),
        (
            "label_hi",
            "--labels",
            None,
            vec![label("hi", "\"hello world\"")],
            None,
        ),
        (
            "build_label_first",
            "--labels",
            None,
            vec![label("first.build.labels", "first")],
            None,
        ),
        (
            "build_label_second",
            "--labels",
            None,
            vec![label("second.build.labels", "second")],
            None,
        ),
        (
            "label_org.label-schema.usage",
            "--labels",
            None,
            vec![label(
                "org.label-schema.usage",
                "/.singularity.d/runscript.help",
            )],
            None,
        ),
        (
            "label_org.label-schema.usage.singularity.deffile.bootstrap",
            "--labels",
            None,
            vec![label(
                "org.label-schema.usage.singularity.deffile.bootstrap",
                "localimage",
            )],
            None,
        ),
        (
            "label_org.label-schema.usage.singularity.deffile.from",
            "--labels",
            None,
            vec![label(
                "org.label-schema.usage.singularity.deffile.from",
                "{busybox}",
            )],
            None,
        ),
        (
            "label_org.label-schema.usage.apptainer.runscript.help",
            "--labels",
            None,
            vec![label(
                "org.label-schema.usage.apptainer.runscript.help",
                "/.singularity.d/runscript.help",
            )],
            None,
        ),
        (
            "deffile",
            "--deffile",
            None,
            vec![json_prefix(&format!("{A}/deffile"), "bootstrap:")],
            None,
        ),
        (
            "runscript",
            "--runscript",
            None,
            vec![json_str(
                &format!("{A}/runscript"),
                "#!/bin/sh\n\ncat /.singularity.d/runscript.help",
            )],
            None,
        ),
        (
            "startscript",
            "--startscript",
            None,
            vec![json_str(
                &format!("{A}/startscript"),
                "#!/bin/sh\n\nexec \"$@\"",
            )],
            None,
        ),
        (
            "test",
            "--test",
            None,
            vec![json_str(
                &format!("{A}/test"),
                "#!/bin/sh\n\nls /\ntest -d /\ntest -d /etc",
            )],
            None,
        ),
        (
            "helpfile",
            "--helpfile",
            None,
            vec![json_str(
                &format!("{A}/helpfile"),
                "This is a e2e test container used for testing the 'inspect'\ncommand. This container \"inspector_container.sif\" should be placed\nin the \"e2e/testdata\" directory of Apptainer.",
            )],
            None,
        ),
        (
            "environment",
            "--environment",
            None,
            vec![
                json_str(
                    &format!("{A}/environment/~1.singularity.d~1env~190-environment.sh"),
                    "#!/bin/sh\n# Custom environment shell code should follow\n\n\nexport test=\"testing\"\nexport e2e=\"e2e testing\"",
                ),
                json_str(
                    &format!("{A}/environment/~1.singularity.d~1env~191-environment.sh"),
                    "export hello=\"world\"",
                ),
            ],
            None,
        ),
    ];
    let apps: Vec<Inspect> = vec![
        (
            "list apps",
            "--list-apps",
            None,
            vec![
                json_len(&format!("{A}/apps"), 2),
                contains("\"hello\""),
                contains("\"world\""),
            ],
            None,
        ),
        (
            "label app hello",
            "--labels",
            Some("hello"),
            vec![json_str(
                &format!("{A}/apps/hello/labels/HELLOTHISIS"),
                "hello",
            )],
            None,
        ),
        (
            "help app hello",
            "--helpfile",
            Some("hello"),
            vec![json_str(
                &format!("{A}/apps/hello/helpfile"),
                "This is the help for hello!",
            )],
            None,
        ),
        (
            "env app hello",
            "--environment",
            Some("hello"),
            vec![json_str(
                &format!(
                    "{A}/apps/hello/environment/~1scif~1apps~1hello~1scif~1env~190-environment.sh"
                ),
                "HELLOTHISIS=hello\nexport HELLOTHISIS",
            )],
            None,
        ),
        (
            "runscript app hello",
            "--runscript",
            Some("hello"),
            vec![json_str(
                &format!("{A}/apps/hello/runscript"),
                "#!/bin/sh\n\necho \"hello\"",
            )],
            None,
        ),
        (
            "test app hello",
            "--test",
            Some("hello"),
            vec![json_str(
                &format!("{A}/apps/hello/test"),
                "#!/bin/sh\n\necho \"THIS IS A HELLO TEST\"",
            )],
            None,
        ),
        (
            "runscript app world",
            "--runscript",
            Some("world"),
            vec![json_str(
                &format!("{A}/apps/world/runscript"),
                "#!/bin/sh\n\necho \"world\"",
            )],
            None,
        ),
    ];
    t.extend(apps);
    let from_note = "built from the busybox SIF with Bootstrap: localimage (Apptainer: oras://), \
                     so the bootstrap and from labels name those";
    let mut v = Vec::new();
    for (kind, image) in [
        ("SIF", "{inspect}"),
        ("Squash", "{inspect_sqfs}"),
        ("Sandbox", "{inspect_dir}"),
    ] {
        for (sub, flag, app, checks, pending) in &t {
            let mut argv = vec!["inspect", "--json", flag];
            if let Some(a) = app {
                argv.extend(["--app", a]);
            }
            argv.push(image);
            let mut r = row(&format!("{f}/{kind}/{sub}"), &argv);
            for c in checks {
                r = r.out(c.clone());
            }
            if let Some(p) = pending {
                r = r.pending(p);
            }
            if sub.contains("deffile.") {
                r = r.adapted(from_note);
            }
            v.push(r);
        }
        // --all: every check above at once.
        let mut all = row(&format!("{f}/{kind}/all"), &["inspect", "--all", image]);
        for (_, _, _, checks, _) in &t {
            for c in checks {
                all = all.out(c.clone());
            }
        }
        v.push(all);
    }
    v
}

pub fn instance() -> Vec<Row> {
    let f = "e2e/instance/instance.go";
    let mut v = Vec::new();
    // Each identity runs these in order, as Apptainer's "ordered" test does for each profile.
    v.push(row(
        &format!("{f} testBasicEchoServer/start"),
        &["instance", "start", "{img}", "echo1"],
    ));
    v.push(
        row(
            &format!("{f} testBasicEchoServer/list"),
            &["instance", "list", "--json", "echo1"],
        )
        .out(json_len("/instances", 1)),
    );
    v.push(
        row(
            &format!("{f} testBasicEchoServer/exec"),
            &["exec", "instance://echo1", "true"],
        )
        .adapted("the instance is reached with exec instance:// instead of its TCP echo server"),
    );
    v.push(row(
        &format!("{f} testBasicEchoServer/stop"),
        &["instance", "stop", "echo1"],
    ));
    v.push(
        row(
            &format!("{f} testBasicEchoServer/list after stop"),
            &["instance", "list", "--all", "--json", "echo1"],
        )
        .out(json_len("/instances", 0)),
    );
    v.push(row(
        &format!("{f} testAppEchoServer/start"),
        &["instance", "start", "--app", "foo", "{img}", "echoApp"],
    ));
    v.push(
        row(
            &format!("{f} testAppEchoServer/exec"),
            &[
                "exec",
                "--app",
                "foo",
                "instance://echoApp",
                "sh",
                "-c",
                "echo $SCIF_APPNAME",
            ],
        )
        .out(exact("foo"))
        .adapted("the instance is reached with exec instance:// instead of its TCP echo server"),
    );
    v.push(row(
        &format!("{f} testAppEchoServer/stop"),
        &["instance", "stop", "echoApp"],
    ));

    for c in ["start", "run"] {
        let sub = format!("{f} testBasicOptions/instance {c}");
        v.push(row(
            &format!("{sub}/start"),
            &[
                "instance",
                c,
                "-H",
                "{ws}/inst:/home/temp",
                "--hostname",
                "echoserver99",
                "-e",
                "{img}",
                "testbasic",
            ],
        ));
        v.push(
            row(
                &format!("{sub}/home file"),
                &["exec", "instance://testbasic", "cat", "/home/temp/hello"],
            )
            .out(exact("world")),
        );
        v.push(
            row(
                &format!("{sub}/hostname"),
                &["exec", "instance://testbasic", "hostname"],
            )
            .out(exact("echoserver99")),
        );
        v.push(
            row(
                &format!("{sub}/APPTAINER_INSTANCE"),
                &[
                    "exec",
                    "instance://testbasic",
                    "sh",
                    "-c",
                    "echo $APPTAINER_INSTANCE",
                ],
            )
            .out(exact("testbasic")),
        );
        v.push(row(
            &format!("{sub}/stop"),
            &["instance", "stop", "testbasic"],
        ));

        let sub = format!("{f} testContain/instance {c}");
        let workdir = format!("{{ws}}/contain-{c}");
        // Apptainer's test makes the work directory first (os.MkdirTemp).
        v.push(
            row(
                &format!("{sub}/start"),
                &["instance", c, "-c", "-W", &workdir, "{img}", "testcontain"],
            )
            .file(&format!("{workdir}/.made"), ""),
        );
        v.push(row(
            &format!("{sub}/touch"),
            &[
                "exec",
                "instance://testcontain",
                "touch",
                "/tmp/thegreattestfile",
            ],
        ));
        v.push(
            row(
                &format!("{sub}/file on the host"),
                &[
                    "exec",
                    "-B",
                    "{ws}",
                    "{busybox}",
                    "test",
                    "-f",
                    &format!("{{ws}}/contain-{c}/tmp/thegreattestfile"),
                ],
            )
            .adapted("the host file is looked for with a second container binding the workdir"),
        );
        v.push(row(
            &format!("{sub}/stop"),
            &["instance", "stop", "testcontain"],
        ));
    }

    for i in 1..=3 {
        v.push(row(
            &format!("{f} testCreateManyInstances/echo{i}"),
            &["instance", "start", "{img}", &format!("echo{i}")],
        ));
    }
    v.push(
        row(
            &format!("{f} testCreateManyInstances/list"),
            &["instance", "list", "--json"],
        )
        .out(json_len("/instances", 3)),
    );
    v.push(row(
        &format!("{f} testInstanceRun/run"),
        &["instance", "run", "{img}", "testtrue", "true"],
    ));
    v.push(row(
        &format!("{f} testStopAll/stop"),
        &["instance", "stop", "--all"],
    ));
    v.push(
        row(
            &format!("{f} testStopAll/list"),
            &["instance", "list", "--all", "--json"],
        )
        .out(json_len("/instances", 0)),
    );
    v.push(
        row(
            &format!("{f} testInstanceWithConfigDir/start"),
            &["instance", "start", "{img}", "movedConfig"],
        )
        .env("APPTAINER_CONFIGDIR", "{ws}/configdir"),
    );
    v.push(
        row(
            &format!("{f} testInstanceWithConfigDir/exec"),
            &["exec", "instance://movedConfig", "id"],
        )
        .env("APPTAINER_CONFIGDIR", "{ws}/configdir"),
    );
    v.push(
        row(
            &format!("{f} testInstanceWithConfigDir/instances dir"),
            &[
                "exec",
                "-B",
                "{ws}",
                "{busybox}",
                "test",
                "-d",
                "{ws}/configdir/instances/app",
            ],
        )
        .adapted("the host directory is looked for with a second container binding it")
        .pending(
            "deliberate difference: sifr keeps its instance records in instances/sifr, \
             where Apptainer's instances/app would read them as its own (docs/compat.md, Instances)",
        ),
    );
    v.push(
        row(
            &format!("{f} testInstanceWithConfigDir/stop"),
            &["instance", "stop", "movedConfig"],
        )
        .env("APPTAINER_CONFIGDIR", "{ws}/configdir"),
    );
    v
}

pub fn cache() -> Vec<Row> {
    let f = "e2e/cache/cache.go";
    let mut v = Vec::new();
    // Apptainer fills the cache from a local HTTP server first; the rows here run on an empty
    // cache, where the same commands must succeed.
    let plain: &[(&str, &[&str], Option<&str>)] = &[
        ("clean force", &["clean", "--force"], None),
        (
            "clean force days beyond age",
            &["clean", "--force", "--days", "30"],
            None,
        ),
        (
            "clean force days within age",
            &["clean", "--force", "--days", "0"],
            None,
        ),
        (
            "clean help",
            &["clean", "--help"],
            Some("Clean your local Apptainer cache"),
        ),
        (
            "list help",
            &["list", "--help"],
            Some("List your local Apptainer cache"),
        ),
        ("list type", &["list", "--type", "net"], None),
        ("list verbose", &["list", "--verbose"], None),
    ];
    for (sub, args, out) in plain {
        let mut argv = vec!["cache"];
        argv.extend(*args);
        let mut r = row(&format!("{f} testNoninteractiveCacheCmds/{sub}"), &argv)
            .env("APPTAINER_CACHEDIR", "{tmp}");
        if let Some(o) = out {
            r = r.out(contains(o));
        }
        v.push(r);
    }
    let interactive: &[(&str, &[&str], &str)] = &[
        ("clean normal confirmed", &["clean"], "y\n"),
        ("clean normal not confirmed", &["clean"], "n\n"),
        ("clean normal force", &["clean", "--force"], ""),
        ("clean dry-run confirmed", &["clean", "--dry-run"], ""),
        ("clean type confirmed", &["clean", "--type", "net"], "y\n"),
        (
            "clean type not confirmed",
            &["clean", "--type", "net"],
            "n\n",
        ),
        ("clean days beyond age", &["clean", "--days", "30"], "y\n"),
        ("clean days within age", &["clean", "--days", "0"], "y\n"),
    ];
    for (sub, args, answer) in interactive {
        let mut argv = vec!["cache"];
        argv.extend(*args);
        v.push(
            row(&format!("{f} testInteractiveCacheCmds/{sub}"), &argv)
                .env("APPTAINER_CACHEDIR", "{tmp}")
                .stdin(answer)
                .adapted("the answer comes on stdin instead of a pty; the prompt is not checked"),
        );
    }
    v.push(
        row(
            &format!("{f} testMultipleArch/list cache"),
            &["cache", "list", "all"],
        )
        .env("APPTAINER_CACHEDIR", "{tmp}"),
    );
    v
}

pub fn version() -> Vec<Row> {
    let f = "e2e/version/version.go";
    let mut v = Vec::new();
    for (sub, args) in [
        ("version command", &["version"][..]),
        ("version flag", &["--version"]),
    ] {
        v.push(
            row(&format!("{f} testSemanticVersion/{sub}"), args)
                .out(semver_after("apptainer version ")),
        );
        // testEqualVersion compares the two outputs' versions; both must be Apptainer's.
        v.push(
            row(&format!("{f} testEqualVersion/{sub}"), args)
                .out(version_is("apptainer version ", "1.5.3"))
                .adapted("equality of the two checked as both naming 1.5.3"),
        );
    }
    v.push(
        row(&format!("{f} testHelpOption"), &["version", "--help"])
            .out(prefix("Show the version for Apptainer")),
    );
    v
}

/// `e2e/runhelp/runhelp.go` `testRunHelp`, as the user (Apptainer's `UserProfile`).
pub fn runhelp() -> Vec<Row> {
    let f = "e2e/runhelp/runhelp.go testRunHelp";
    [
        ("DefaultHelp", &["{img}"][..], "BAD_GUY=Thanos", 0),
        (
            "AppFooHelp",
            &["--app", "foo", "{img}"],
            "This is the help for foo!",
            0,
        ),
        (
            "AppFakeHelp",
            &["--app", "fake", "{img}"],
            "No help sections were defined for this image",
            0,
        ),
        ("NoImage", &["/fake/image"], "", 255),
    ]
    .into_iter()
    .map(|(sub, args, out, exit)| {
        let mut argv = vec!["run-help"];
        argv.extend_from_slice(args);
        let r = row(&format!("{f}/{sub}"), &argv).exit(exit).who(Who::User);
        if out.is_empty() {
            r
        } else {
            r.out(contains(out))
        }
    })
    .collect()
}
