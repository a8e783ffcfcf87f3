//! Rows from Apptainer v1.5.3's `e2e/imgbuild/imgbuild.go`: definition sections, build
//! arguments, local images and sandboxes, `%test` with `--writable-tmpfs` and `--notest`.
//!
//! A build row writes its image under `{ws}/build/`; the rows after it check the image as
//! Apptainer's `PostRun` verifications do (`DefinitionImageVerify`, `ImageVerify`), by running
//! sifr on it, so rows of one build run in table order.

use super::table::*;

const F: &str = "e2e/imgbuild/imgbuild.go";

/// Apptainer's `ImageVerify`: the standard files of an image, then `inspect --json --labels`.
fn image_verify(name: &str, image: &str) -> Vec<Row> {
    vec![
        row(
            &format!("{name}/ImageVerify/BasicIntegrityTests"),
            &[
                "exec",
                image,
                "/bin/sh",
                "-c",
                "test -f /.singularity.d/runscript -a -f /.singularity.d/env/01-base.sh -a \
                 -f /.singularity.d/actions/shell -a -f /.singularity.d/actions/exec -a \
                 -f /.singularity.d/actions/run -a -L /environment -a -L /singularity",
            ],
        ),
        row(
            &format!("{name}/ImageVerify/labels"),
            &["inspect", "--json", "--labels", image],
        )
        .out(json_str("/type", "container"))
        .out(json_str(
            "/data/attributes/labels/org.label-schema.schema-version",
            "1.0",
        )),
    ]
}

/// A file in the sandbox `image` holds every line (Apptainer's `verifyScript`/`verifyHelp`).
fn has_lines(name: &str, image: &str, path: &str, lines: &[&str]) -> Row {
    let mut r = row(name, &["exec", image, "cat", path]);
    for l in lines {
        r = r.out(contains(l));
    }
    r
}

pub fn rows() -> Vec<Row> {
    let mut v = Vec::new();
    let def = |body: &str| format!("Bootstrap: localimage\nFrom: {{busybox}}\n{body}");

    // buildDefinition: one section each, built as a sandbox by root and by the user (fakeroot).
    let three =
        |what: &str| -> Vec<String> { (1..=3).map(|i| format!("echo {what} line {i}")).collect() };
    let sections: Vec<(&str, String, Vec<Row>)> = {
        let img = |s: &str| format!("{{ws}}/build/def-{s}");
        let test = three("testscript");
        let start = three("startscript");
        let run = three("runscript");
        let refs = |l: &[String]| {
            l.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n    ")
        };
        vec![
            ("Empty", def(""), vec![]),
            (
                "Help",
                def("%help\n    help info line 1\n    help info line 2\n    help info line 3\n"),
                vec![has_lines(
                    "",
                    &img("Help"),
                    "/.singularity.d/runscript.help",
                    &["help info line 1", "help info line 2", "help info line 3"],
                )],
            ),
            (
                "Files",
                def("%files\n    {tmp}/testFile NewName2.txt\n    {tmp}/testFile NewName.txt\n"),
                vec![
                    has_lines("", &img("Files"), "/NewName2.txt", &["Test file content"]),
                    has_lines("", &img("Files"), "/NewName.txt", &["Test file content"]),
                ],
            ),
            (
                "Test",
                def(&format!("%test\n    {}\n", refs(&test))),
                vec![has_lines(
                    "",
                    &img("Test"),
                    "/.singularity.d/test",
                    &test.iter().map(String::as_str).collect::<Vec<_>>(),
                )],
            ),
            (
                "Startscript",
                def(&format!("%startscript\n    {}\n", refs(&start))),
                vec![has_lines(
                    "",
                    &img("Startscript"),
                    "/.singularity.d/startscript",
                    &start.iter().map(String::as_str).collect::<Vec<_>>(),
                )],
            ),
            (
                "Runscript",
                def(&format!("%runscript\n    {}\n", refs(&run))),
                vec![has_lines(
                    "",
                    &img("Runscript"),
                    "/.singularity.d/runscript",
                    &run.iter().map(String::as_str).collect::<Vec<_>>(),
                )],
            ),
            (
                "Env",
                def(
                    "%environment\n    export testvar1=one\n    export testvar2=two\n    export testvar3=three\n",
                ),
                vec![
                    row("", &["exec", "{ws}/build/def-Env", "env"])
                        .out(contains("testvar1=one"))
                        .out(contains("testvar2=two"))
                        .out(contains("testvar3=three")),
                ],
            ),
            (
                "Labels",
                def(
                    "%labels\n    customLabel1 one\n    customLabel2 two\n    customLabel3 three\n",
                ),
                vec![
                    row(
                        "",
                        &["inspect", "--json", "--labels", "{ws}/build/def-Labels"],
                    )
                    .out(json_str("/data/attributes/labels/customLabel1", "one"))
                    .out(json_str("/data/attributes/labels/customLabel3", "three")),
                ],
            ),
            (
                "Pre",
                def("%pre\n    touch {ws}/PreFile1\n"),
                vec![row(
                    "",
                    &[
                        "exec",
                        "-B",
                        "{ws}",
                        "{busybox}",
                        "test",
                        "-f",
                        "{ws}/PreFile1",
                    ],
                )],
            ),
            (
                "Setup",
                def("%setup\n    touch {ws}/SetupFile1\n"),
                vec![row(
                    "",
                    &[
                        "exec",
                        "-B",
                        "{ws}",
                        "{busybox}",
                        "test",
                        "-f",
                        "{ws}/SetupFile1",
                    ],
                )],
            ),
            (
                "Post",
                def("%post\n    touch PostFile1\n"),
                vec![row(
                    "",
                    &["exec", "{ws}/build/def-Post", "test", "-f", "/PostFile1"],
                )],
            ),
        ]
    };
    for (sub, text, checks) in sections {
        let name = format!("{F} buildDefinition/{sub}");
        v.push(
            row(
                &name,
                &[
                    "build",
                    "--sandbox",
                    &format!("{{ws}}/build/def-{sub}"),
                    "{tmp}/def",
                ],
            )
            .file("def", &text)
            .file("testFile", "Test file content\n"),
        );
        let several = checks.len() > 1;
        for (k, mut c) in checks.into_iter().enumerate() {
            c.name = format!("{name}/DefinitionImageVerify");
            if name.ends_with("/Pre") {
                c = c.pending(
                    "%pre is parsed but not run (docs/compat.md, Pull and build); %setup does the same work",
                );
            }
            if several {
                c.name += &format!(" {}", k + 1);
            }
            v.push(c);
        }
    }
    v.extend(app_sections(&def));

    // buildLocalImage: SIF and sandbox sources, directly and through Bootstrap: localimage.
    v.push(row(
        &format!("{F} buildLocalImage/sandbox"),
        &["build", "--sandbox", "{ws}/build/li-sandbox", "{img}"],
    ));
    v.extend(image_verify(
        &format!("{F} buildLocalImage/sandbox"),
        "{ws}/build/li-sandbox",
    ));
    let li = "Bootstrap: localimage\nFrom: {img}\n";
    let li_label = "Bootstrap: localimage\nFrom: {img}\n%labels\n    FOO bar\n";
    let li_sandbox = "Bootstrap: localimage\nFrom: {ws}/build/li-sandbox\n%labels\n    FOO bar\n";
    for (i, (sub, spec, deffile)) in [
        ("SIFToSIF", "{img}", None),
        ("SandboxToSIF", "{ws}/build/li-sandbox", None),
        ("LocalImage", "{tmp}/def", Some(li)),
        ("LocalImageLabel", "{tmp}/def", Some(li_label)),
        ("LocalImageSandbox", "{tmp}/def", Some(li_sandbox)),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("{F} buildLocalImage/{sub}");
        let out = format!("{{ws}}/build/image-{i}");
        let mut r = row(&name, &["build", &out, spec]);
        if let Some(d) = deffile {
            r = r.file("def", d);
        }
        v.push(r);
        v.extend(image_verify(&name, &out));
    }

    // badPath
    v.push(
        row(
            &format!("{F} badPath"),
            &["build", "{tmp}/container", "/some/dumb/path"],
        )
        .exit(FATAL),
    );

    // buildDefinitionWithBuildArgs (single stage; the multi-stage ones pull from docker://).
    // Apptainer checks the result with `sif dump 1` (the definition file object); the same text
    // is read here with `inspect --deffile`. The runner copies Apptainer's `single-stage.def`
    // (shared fixtures) and a `script.sh` printing "hello world" into `{ws}/ba/`, and the rows
    // run in `{ws}/ba/work`, so `../test/build-args/script.sh` resolves as in Apptainer's tree.
    let single = "{ws}/ba/single-stage.def";
    let script = "../test/build-args/script.sh";
    let ok_verify = [
        "From: {busybox}",
        "export AUTHOR=jason",
        "export VERSION=1",
        "Author jason",
        "Version 1",
        "../test/build-args/script.sh",
    ];
    let ba = |sub: &str| format!("{F} buildDefinitionWithBuildArgs/build definition/{sub}");
    let image_arg = "IMAGE={busybox}";
    let script_arg = format!("SCRIPT_PATH={script}");
    let mut ok = row(
        &ba("ok case single stage build"),
        &[
            "build",
            "--build-arg",
            image_arg,
            "--build-arg",
            &script_arg,
            "{ws}/build/ba-ok",
            single,
        ],
    )
    .cwd("{ws}/ba/work");
    ok.name = ba("ok case single stage build");
    v.push(ok);
    let mut check = row(
        &format!("{} verification", ba("ok case single stage build")),
        &["inspect", "--deffile", "{ws}/build/ba-ok"],
    )
    .out(not_contains("{{"))
    .out(not_contains("}}"))
    .adapted("inspect --deffile instead of sif dump 1");
    for l in ok_verify {
        check = check.out(contains(l));
    }
    v.push(check);
    v.push(
        row(
            &ba("ko case single stage build"),
            &[
                "build",
                "--build-arg",
                &script_arg,
                "{tmp}/container",
                single,
            ],
        )
        .cwd("{ws}/ba/work")
        .exit(FATAL)
        .err(contains("build argument `IMAGE` is not defined"))
        .adapted("sifr's wording, with the file and line (Apptainer: `IMAGE is not defined`)"),
    );
    v.push(
        row(
            &ba("ko case single stage build with additional args provided"),
            &[
                "build",
                "--build-arg",
                "ADDITION=1",
                "--build-arg",
                image_arg,
                "--build-arg",
                &script_arg,
                "{tmp}/container",
                single,
            ],
        )
        .cwd("{ws}/ba/work")
        .exit(FATAL)
        .err(contains("unused build arguments: `ADDITION`"))
        .err(contains("--warn-unused-build-args"))
        .adapted("sifr's wording (Apptainer: `unused build args: ADDITION. Use option --warn-unused-build-args ...`)"),
    );
    v.push(
        row(
            &ba("ok case single stage build with additional args provided"),
            &[
                "build",
                "--warn-unused-build-args",
                "--build-arg",
                "ADDITION=1",
                "--build-arg",
                image_arg,
                "--build-arg",
                &script_arg,
                "{tmp}/container",
                single,
            ],
        )
        .cwd("{ws}/ba/work"),
    );
    v.push(
        row(
            &ba("equal signs in vals"),
            &[
                "build",
                "--build-arg",
                image_arg,
                "--build-arg",
                &script_arg,
                "--build-arg",
                "AUTHOR=Equals=In=My=Name",
                "--build-arg",
                "DEMO=demo=with===equals==signs",
                "{ws}/build/ba-equals",
                single,
            ],
        )
        .cwd("{ws}/ba/work"),
    );
    v.push(
        row(
            &format!("{} verification", ba("equal signs in vals")),
            &["inspect", "--deffile", "{ws}/build/ba-equals"],
        )
        .out(contains("export AUTHOR=Equals=In=My=Name"))
        .adapted("inspect --deffile instead of sif dump 1"),
    );

    // buildCustomShebang: %test and %runscript with their own #! line, run at build time and
    // by `run` and `test`.
    let shebang = "Bootstrap: localimage\nFrom: {busybox}\n%test\n#!/bin/busybox sh\ncat /proc/$$/cmdline\n%runscript\n#!/bin/busybox sh\ncat /proc/$$/cmdline\n";
    let sb = |sub: &str| format!("{F} buildCustomShebang/{sub}");
    v.push(
        row(
            &sb("build"),
            &["build", "-F", "{ws}/build/shebang", "{tmp}/def"],
        )
        .file("def", shebang)
        .out(contains("/bin/busybox")),
    );
    v.push(row(&sb("run"), &["run", "{ws}/build/shebang"]).out(contains("/bin/busybox")));
    v.push(row(&sb("test"), &["test", "{ws}/build/shebang"]).out(contains("/bin/busybox")));

    // testWritableTmpfs: %test writes outside /tmp only with --writable-tmpfs.
    v.push(
        row(
            &format!("{F} testWritableTmpfs"),
            &[
                "build",
                "-F",
                "--writable-tmpfs",
                "{tmp}/image",
                "{tmp}/def",
            ],
        )
        .file(
            "def",
            "Bootstrap: localimage\nFrom: {img}\n%test\ntouch /var/test\n",
        )
        .who(Who::Root),
    );
    // The same %test fails without --writable-tmpfs and is skipped by --notest (Apptainer's
    // build flags; e2e has no row of its own for them).
    v.push(
        row(
            &format!("{F} testWritableTmpfs (without the flag, %test fails)"),
            &["build", "-F", "{tmp}/image", "{tmp}/def"],
        )
        .file(
            "def",
            "Bootstrap: localimage\nFrom: {img}\n%test\ntouch /var/test\n",
        )
        .exit(FATAL)
        .who(Who::Root)
        .adapted("counterpart of testWritableTmpfs, not an Apptainer row"),
    );
    v.push(
        row(
            &format!("{F} testWritableTmpfs (--notest skips %test)"),
            &["build", "-F", "--notest", "{tmp}/image", "{tmp}/def"],
        )
        .file(
            "def",
            "Bootstrap: localimage\nFrom: {img}\n%test\ntouch /var/test\n",
        )
        .who(Who::Root)
        .adapted("counterpart of testWritableTmpfs, not an Apptainer row"),
    );
    v
}

/// `buildDefinition`'s App* cases: two apps, `foo` and `bar`, each section as Apptainer's
/// `deffile.tmpl` writes it, checked as `appDetailImageVerify` does (`e2e/internal/e2e/
/// imageverify.go`), by running sifr on the sandbox.
fn app_sections(def: &dyn Fn(&str) -> String) -> Vec<Row> {
    let apps = [("foo", "Foo"), ("bar", "Bar")];
    let lines = |a: &str, what: &str| -> Vec<String> {
        (1..=3).map(|i| format!("{a} {what} line {i}")).collect()
    };
    let body = |f: &dyn Fn(&str, &str) -> String| -> String {
        def(&apps.iter().map(|(a, c)| f(a, c)).collect::<String>())
    };
    let img = |s: &str| format!("{{ws}}/build/def-{s}");
    let indented = |l: &[String], prefix: &str| -> String {
        l.iter().map(|x| format!("    {prefix}{x}\n")).collect()
    };
    let mut cases: Vec<(&str, String, Vec<Row>)> = Vec::new();
    for (sub, section, file, what) in [
        ("AppHelp", "apphelp", "scif/runscript.help", "help info"),
        ("AppRun", "apprun", "scif/runscript", "runscript"),
        ("AppTest", "apptest", "scif/test", "testscript"),
    ] {
        let echo = if what == "help info" { "" } else { "echo " };
        let text = body(&|a, _| format!("%{section} {a}\n{}", indented(&lines(a, what), echo)));
        let checks = apps
            .iter()
            .map(|(a, _)| {
                let want: Vec<String> = lines(a, what)
                    .iter()
                    .map(|l| format!("{echo}{l}"))
                    .collect();
                let want: Vec<&str> = want.iter().map(String::as_str).collect();
                has_lines("", &img(sub), &format!("/scif/apps/{a}/{file}"), &want)
            })
            .collect();
        cases.push((sub, text, checks));
    }
    let numbers = ["One", "Two", "Three"];
    cases.push((
        "AppEnv",
        body(&|a, _| {
            let l: Vec<String> = numbers
                .iter()
                .enumerate()
                .map(|(i, n)| format!("testvar{}={a}{n}", i + 1))
                .collect();
            format!("%appenv {a}\n{}", indented(&l, "export "))
        }),
        apps.iter()
            .map(|(a, _)| {
                let mut r = row("", &["exec", "--app", a, &img("AppEnv"), "env"]);
                for (i, n) in numbers.iter().enumerate() {
                    r = r.out(contains(&format!("testvar{}={a}{n}", i + 1)));
                }
                r
            })
            .collect(),
    ));
    cases.push((
        "AppLabels",
        body(&|a, _| {
            let l: Vec<String> = numbers
                .iter()
                .enumerate()
                .map(|(i, n)| format!("customLabel{} {a}{n}", i + 1))
                .collect();
            format!("%applabels {a}\n{}", indented(&l, ""))
        }),
        // Apptainer's verification has no label check; `inspect --app` makes one.
        apps.iter()
            .map(|(a, _)| {
                row(
                    "",
                    &[
                        "inspect",
                        "--json",
                        "--labels",
                        "--app",
                        a,
                        &img("AppLabels"),
                    ],
                )
                .out(json_str(
                    &format!("/data/attributes/apps/{a}/labels/customLabel1"),
                    &format!("{a}One"),
                ))
                .out(json_str(
                    &format!("/data/attributes/apps/{a}/labels/SCIF_APP_NAME"),
                    a,
                ))
            })
            .collect(),
    ));
    cases.push((
        "AppFiles",
        body(&|a, c| {
            format!("%appfiles {a}\n    {{tmp}}/testFile {c}File2.txt\n    {{tmp}}/testFile {c}File.txt\n")
        }),
        apps.iter()
            .flat_map(|(a, c)| {
                ["File2.txt", "File.txt"].map(|f| {
                    has_lines(
                        "",
                        &img("AppFiles"),
                        &format!("/scif/apps/{a}/{c}{f}"),
                        &["Test file content"],
                    )
                })
            })
            .collect(),
    ));
    cases.push((
        "AppInstall",
        body(&|a, c| format!("%appinstall {a}\n    touch {c}InstallFile1\n")),
        apps.iter()
            .map(|(a, c)| {
                row(
                    "",
                    &[
                        "exec",
                        &img("AppInstall"),
                        "test",
                        "-f",
                        &format!("/scif/apps/{a}/{c}InstallFile1"),
                    ],
                )
            })
            .collect(),
    ));
    let mut v = Vec::new();
    for (sub, text, checks) in cases {
        let name = format!("{F} buildDefinition/{sub}");
        v.push(
            row(&name, &["build", "--sandbox", &img(sub), "{tmp}/def"])
                .file("def", &text)
                .file("testFile", "Test file content\n"),
        );
        for (k, mut c) in checks.into_iter().enumerate() {
            c.name = format!("{name}/DefinitionImageVerify {}", k + 1);
            v.push(c);
        }
    }
    v
}
