//! Rows from Apptainer v1.5.3's `e2e/env/env.go` and `e2e/env/regressions.go`: the container's
//! PATH and LD_LIBRARY_PATH, `APPTAINERENV_*`, `--env`, `--env-file`, `--no-env` and the
//! evaluation of injected values. Apptainer runs them all under its user profile.

use super::table::*;

/// Apptainer's default PATH inside a container (`etc/init`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The test image's PATH: its `%environment` appends two Go directories.
const CUSTOM_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/go/bin:/usr/local/go/bin";
const LIBS: &str = "/.singularity.d/libs";
const DEBIAN: &str = "needs a Debian (glibc) image, whose ld.so.cache gives the default \
                      LD_LIBRARY_PATH: checked on the debootstrap image of scripts/activation.sh";

fn p(s: &str) -> String {
    s.replace("{default}", DEFAULT_PATH)
        .replace("{custom}", CUSTOM_PATH)
        .replace("{libs}", LIBS)
}

/// `exec IMAGE /bin/sh -c 'echo "${VAR}"'` with `--env` and other options before the image.
fn env_opt(sub: &str, image: &str, env_opt: &[&str], exec_opt: &[&str], var: &str) -> Row {
    let mut argv: Vec<String> = vec!["exec".into()];
    if !env_opt.is_empty() {
        argv.push("--env".into());
        argv.push(env_opt.join(","));
    }
    argv.extend(exec_opt.iter().map(|s| s.to_string()));
    argv.push(image.into());
    argv.extend([
        "/bin/sh".into(),
        "-c".into(),
        format!("echo \"${{{var}}}\""),
    ]);
    let mut r = row(&format!("e2e/env/env.go apptainerEnvOption/{sub}"), &[]);
    r.argv = argv;
    r
}

pub fn rows() -> Vec<Row> {
    let mut v = Vec::new();
    let path_sh = ["/bin/sh", "-c", "echo $PATH"];

    // apptainerEnv ("environment manipulation"): APPTAINERENV_PATH and friends.
    type Manip<'a> = (&'a str, &'a str, &'a str, Option<(&'a str, &'a str)>);
    let manip: &[Manip] = &[
        ("DefaultPath", "{busybox}", "{default}", None),
        ("CustomPath", "{img}", "{custom}", None),
        (
            "AppendToDefaultPath",
            "{busybox}",
            "{default}:/foo",
            Some(("APPTAINERENV_APPEND_PATH", "/foo")),
        ),
        (
            "AppendToCustomPath",
            "{img}",
            "{custom}:/foo",
            Some(("APPTAINERENV_APPEND_PATH", "/foo")),
        ),
        (
            "PrependToDefaultPath",
            "{busybox}",
            "/foo:{default}",
            Some(("APPTAINERENV_PREPEND_PATH", "/foo")),
        ),
        (
            "PrependToCustomPath",
            "{img}",
            "/foo:{custom}",
            Some(("APPTAINERENV_PREPEND_PATH", "/foo")),
        ),
        (
            "OverwriteDefaultPath",
            "{busybox}",
            "/usr/bin:/bin",
            Some(("APPTAINERENV_PATH", "/usr/bin:/bin")),
        ),
        (
            "OverwriteCustomPath",
            "{img}",
            "/usr/bin:/bin",
            Some(("APPTAINERENV_PATH", "/usr/bin:/bin")),
        ),
        (
            "OverwriteTrailingCommaPath",
            "{busybox}",
            "/usr/bin:/bin,",
            Some(("APPTAINERENV_PATH", "/usr/bin:/bin,")),
        ),
    ];
    for (sub, image, want, env) in manip {
        let mut argv = vec!["exec", image];
        argv.extend(path_sh);
        let mut r = row(&format!("e2e/env/env.go apptainerEnv/{sub}"), &argv).out(exact(&p(want)));
        if let Some((k, val)) = env {
            r = r.env(k, val);
        }
        v.push(r);
    }

    // apptainerEnvOption ("environment option"): --env.
    type Opt<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
    );
    let opts: &[Opt] = &[
        ("DefaultPath", "{busybox}", &[], &[], "PATH", "{default}"),
        (
            "DefaultPathOverride",
            "{busybox}",
            &["PATH=/"],
            &[],
            "PATH",
            "/",
        ),
        (
            "AppendDefaultPath",
            "{busybox}",
            &["APPEND_PATH=/foo"],
            &[],
            "PATH",
            "{default}:/foo",
        ),
        (
            "PrependDefaultPath",
            "{busybox}",
            &["PREPEND_PATH=/foo"],
            &[],
            "PATH",
            "/foo:{default}",
        ),
        ("DefaultPathImage", "{img}", &[], &[], "PATH", "{custom}"),
        (
            "DefaultPathTestImageOverride",
            "{img}",
            &["PATH=/"],
            &[],
            "PATH",
            "/",
        ),
        (
            "AppendDefaultPathTestImage",
            "{img}",
            &["APPEND_PATH=/foo"],
            &[],
            "PATH",
            "{custom}:/foo",
        ),
        (
            "AppendLiteralDefaultPathTestImage",
            "{img}",
            &["PATH=$PATH:/foo"],
            &[],
            "PATH",
            "{custom}:/foo",
        ),
        (
            "PrependDefaultPathTestImage",
            "{img}",
            &["PREPEND_PATH=/foo"],
            &[],
            "PATH",
            "/foo:{custom}",
        ),
        (
            "PrependLiteralDefaultPathTestImage",
            "{img}",
            &["PATH=/foo:$PATH"],
            &[],
            "PATH",
            "/foo:{custom}",
        ),
        (
            "TestImageCgoEnabledDefault",
            "{img}",
            &[],
            &[],
            "CGO_ENABLED",
            "0",
        ),
        (
            "TestImageCgoEnabledOverride",
            "{img}",
            &["CGO_ENABLED=1"],
            &[],
            "CGO_ENABLED",
            "1",
        ),
        (
            "TestImageCgoEnabledOverride_KO",
            "{img}",
            &[],
            &[("CGO_ENABLED", "1")],
            "CGO_ENABLED",
            "0",
        ),
        (
            "TestImageCgoEnabledOverrideFromEnv",
            "{img}",
            &[],
            &[("APPTAINERENV_CGO_ENABLED", "1")],
            "CGO_ENABLED",
            "1",
        ),
        (
            "TestImageCgoEnabledOverrideEnvOptionPrecedence",
            "{img}",
            &["CGO_ENABLED=2"],
            &[("APPTAINERENV_CGO_ENABLED", "1")],
            "CGO_ENABLED",
            "2",
        ),
        (
            "TestImageCgoEnabledOverrideEmpty",
            "{img}",
            &["CGO_ENABLED="],
            &[],
            "CGO_ENABLED",
            "",
        ),
        (
            "TestImageOverrideHost",
            "{img}",
            &["FOO=foo"],
            &[("FOO", "bar")],
            "FOO",
            "foo",
        ),
        (
            "TestMultiLine",
            "{img}",
            &[],
            &[("MULTI", "Hello\nWorld")],
            "MULTI",
            "Hello\nWorld",
        ),
        (
            "TestEscapedNewline",
            "{img}",
            &[],
            &[("ESCAPED", "Hello\\nWorld")],
            "ESCAPED",
            "Hello\\nWorld",
        ),
        (
            "TestInvalidKey",
            "{img}",
            &[],
            &[("BASH_FUNC_ml%%", "TEST")],
            "BASH_FUNC_ml%%",
            "",
        ),
    ];
    for (sub, image, opt, host, var, want) in opts {
        let mut r = env_opt(sub, image, opt, &[], var).out(exact(&p(want)));
        for (k, val) in *host {
            r = r.env(k, val);
        }
        v.push(r);
    }
    // The LD_LIBRARY_PATH rows use a Debian image; on a musl/busybox image Apptainer finds no
    // ld.so.cache, so the rows whose value holds no default library path are checked here on
    // the busybox image and the others are listed.
    v.push(
        env_opt(
            "TestDefaultLdLibraryPath",
            "{busybox}",
            &[],
            &[],
            "LD_LIBRARY_PATH",
        )
        .out(exact(LIBS))
        .adapted("busybox image instead of Debian (same expectation)"),
    );
    v.push(
        env_opt(
            "TestDefaultLdLibraryPathWithBind",
            "{busybox}",
            &[],
            &["-B", "/etc/os-release:/.singularity.d/libs/os-release"],
            "LD_LIBRARY_PATH",
        )
        .out(exact(&format!(
            "/usr/local/lib:/lib/x86_64-linux-gnu:/lib:{LIBS}"
        )))
        .pending(DEBIAN),
    );
    for (sub, opt, want) in [
        (
            "TestPrependLdLibraryPath",
            "PREPEND_LD_LIBRARY_PATH=/foo",
            "/foo:/usr/local/lib:/lib/x86_64-linux-gnu:/lib:{libs}",
        ),
        (
            "TestAppendLdLibraryPath",
            "APPEND_LD_LIBRARY_PATH=/foo",
            "/usr/local/lib:/lib/x86_64-linux-gnu:/lib:{libs}:/foo",
        ),
    ] {
        v.push(
            env_opt(sub, "{debian}", &[opt], &[], "LD_LIBRARY_PATH")
                .out(exact(&p(want)))
                .pending(DEBIAN),
        );
    }
    for (sub, opt, want) in [
        (
            "TestCustomTrailingCommaPath",
            "LD_LIBRARY_PATH=/foo,",
            "/foo,:{libs}",
        ),
        (
            "TestCustomLdLibraryPath",
            "LD_LIBRARY_PATH=/foo",
            "/foo:{libs}",
        ),
    ] {
        v.push(
            env_opt(sub, "{busybox}", &[opt], &[], "LD_LIBRARY_PATH")
                .out(exact(&p(want)))
                .adapted("busybox image instead of Debian (the value holds no default path)"),
        );
    }

    // apptainerNoEnvOption ("--no-env option").
    type NoEnv<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a str,
    );
    let noenv: &[NoEnv] = &[
        (
            "NormalImport",
            &[],
            &[("FOO", "bar"), ("BAR", "foo")],
            "FOO",
            "bar",
        ),
        (
            "NoEnvAlone",
            &["FOO"],
            &[("FOO", "bar"), ("BAR", "foo")],
            "FOO",
            "",
        ),
        (
            "NoEnvSecond",
            &["BAR", "FOO"],
            &[("FOO", "bar"), ("BAR", "foo")],
            "FOO",
            "",
        ),
        (
            "NoEnvViaEnv",
            &[],
            &[
                ("FOO", "bar"),
                ("BAR", "foo"),
                ("APPTAINER_NOENV", "FOO,BAR"),
            ],
            "FOO",
            "",
        ),
        (
            "OverridePermitted",
            &["BAR", "FOO"],
            &[("FOO", "bar"), ("BAR", "foo"), ("APPTAINERENV_FOO", "Bar")],
            "FOO",
            "Bar",
        ),
        (
            "OverrideNotPermitted",
            &["APPTAINER_APPNAME"],
            &[("APPTAINERENV_APPTAINER_APPNAME", "foo")],
            "APPTAINER_APPNAME",
            "",
        ),
    ];
    for (sub, no_env, host, var, want) in noenv {
        let mut argv: Vec<String> = vec!["exec".into()];
        if !no_env.is_empty() {
            argv.push("--no-env".into());
            argv.push(no_env.join(","));
        }
        argv.extend(["{busybox}".into(), "/bin/sh".into(), "-c".into()]);
        argv.push(format!("echo \"${{{var}}}\""));
        let mut r =
            row(&format!("e2e/env/env.go apptainerNoEnvOption/{sub}"), &[]).out(exact(want));
        r.argv = argv;
        for (k, val) in *host {
            r = r.env(k, val);
        }
        v.push(r);
    }

    // apptainerEnvFile ("environment file"): one file per --env-file, as Apptainer writes them.
    type EnvFile<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);
    let files: &[EnvFile] = &[
        ("DefaultPathOverride", &[], &["PATH=/"], "PATH", "/"),
        (
            "DefaultPathOverrideEnvOptionPrecedence",
            &["PATH=/etc"],
            &["PATH=/"],
            "PATH",
            "/etc",
        ),
        (
            "DefaultPathOverrideEnvFileOptionPrecedence",
            &[],
            &["PATH=/", "PATH=/etc"],
            "PATH",
            "/etc",
        ),
        (
            "DefaultPathOverrideEnvAndEnvFileOptionPrecedence",
            &["PATH=/etc"],
            &["PATH=/", "PATH=/foo"],
            "PATH",
            "/etc",
        ),
        (
            "AppendDefaultPath",
            &[],
            &["APPEND_PATH=/"],
            "PATH",
            "{custom}:/",
        ),
        (
            "AppendLiteralDefaultPath",
            &[],
            &[r#"PATH="\$PATH:/""#],
            "PATH",
            "{custom}:/",
        ),
        (
            "PrependLiteralDefaultPath",
            &[],
            &[r#"PATH="/:\$PATH""#],
            "PATH",
            "/:{custom}",
        ),
        (
            "PrependDefaultPath",
            &[],
            &["PREPEND_PATH=/"],
            "PATH",
            "/:{custom}",
        ),
        (
            "DefaultLdLibraryPath",
            &[],
            &[],
            "LD_LIBRARY_PATH",
            "{libs}",
        ),
        (
            "CustomLdLibraryPath",
            &[],
            &["LD_LIBRARY_PATH=/foo"],
            "LD_LIBRARY_PATH",
            "/foo:{libs}",
        ),
        (
            "CustomTrailingCommaPath",
            &[],
            &["LD_LIBRARY_PATH=/foo,"],
            "LD_LIBRARY_PATH",
            "/foo,:{libs}",
        ),
    ];
    for (sub, env, contents, var, want) in files {
        let mut r =
            row(&format!("e2e/env/env.go apptainerEnvFile/{sub}"), &[]).out(exact(&p(want)));
        let mut argv: Vec<String> = vec!["exec".into()];
        if !env.is_empty() {
            argv.push("--env".into());
            argv.push(env.join(","));
        }
        for (i, c) in contents.iter().enumerate() {
            let name = format!("env.file{i}");
            r = r.file(&name, c);
            argv.push("--env-file".into());
            argv.push(format!("{{tmp}}/{name}"));
        }
        argv.extend(["{img}".into(), "/bin/sh".into(), "-c".into()]);
        argv.push(format!("echo ${var}"));
        r.argv = argv;
        v.push(r);
    }

    // apptainerEnvEval ("env eval"): injected values are evaluated by the container's shell
    // unless --no-eval is given.
    let eval: &[(&str, Option<&str>, bool, &str)] = &[
        ("no env", None, false, ""),
        ("string env", Some("ME"), false, "ME"),
        ("env var", Some("$UID"), false, "{uid}"),
        (
            "double quoted env var",
            Some("\"$UID\""),
            false,
            "\"{uid}\"",
        ),
        ("single quoted env var", Some("'$UID'"), false, "'{uid}'"),
        ("escaped env var", Some("\\$UID"), false, "$UID"),
        ("subshell env", Some("$(id -u)"), false, "{uid}"),
        (
            "double quoted subshell env",
            Some("\"$(id -u)\""),
            false,
            "\"{uid}\"",
        ),
        (
            "single quoted subshell env",
            Some("'$(id -u)'"),
            false,
            "'{uid}'",
        ),
        (
            "escaped subshell env",
            Some("\\$(id -u)"),
            false,
            "$(id -u)",
        ),
        ("no-eval/no env", None, false, ""),
        ("no-eval/string env", Some("ME"), false, "ME"),
        ("no-eval/env var", Some("$UID"), true, "$UID"),
        (
            "no-eval/double quoted env var",
            Some("\"$UID\""),
            true,
            "\"$UID\"",
        ),
        (
            "no-eval/single quoted env var",
            Some("'$UID'"),
            true,
            "'$UID'",
        ),
        ("no-eval/escaped env var", Some("\\$UID"), true, "\\$UID"),
        ("no-eval/subshell env", Some("$(id -u)"), true, "$(id -u)"),
        (
            "no-eval/double quoted subshell env",
            Some("\"$(id -u)\""),
            true,
            "\"$(id -u)\"",
        ),
        (
            "no-eval/single quoted subshell env",
            Some("'$(id -u)'"),
            true,
            "'$(id -u)'",
        ),
        (
            "no-eval/escaped subshell env",
            Some("\\$(id -u)"),
            true,
            "\\$(id -u)",
        ),
    ];
    for (sub, who, noeval, want) in eval {
        let mut argv = vec!["exec"];
        if *noeval {
            argv.push("--no-eval");
        }
        argv.extend(["{img}", "/bin/sh", "-c", "echo $WHO"]);
        let mut r = row(&format!("e2e/env/env.go apptainerEnvEval/{sub}"), &argv).out(exact(want));
        if let Some(w) = who {
            r = r.env("APPTAINERENV_WHO", w);
        }
        v.push(r);
    }

    // apptainerRuntimeTimeoutEnv ("runscript timeout").
    v.push(
        row(
            "e2e/env/env.go apptainerRuntimeTimeoutEnv",
            &[
                "run",
                "-B",
                "{tmp}/sleep.sh:/.singularity.d/env/91-slow_env.sh",
                "--runscript-timeout",
                "1s",
                "{img}",
                "true",
            ],
        )
        .file("sleep.sh", "sleep 2s")
        .exit(FATAL)
        .err(contains(
            "environment script `/.singularity.d/env/91-slow_env.sh` was killed after 1s timeout",
        ))
        .adapted(
            "sifr names the script it killed (the timeout bounds the whole script) where \
             Apptainer's interpreter names the command",
        ),
    );

    // regressions.go
    v.push(
        row(
            "e2e/env/regressions.go issue43",
            &["exec", "{img}", "/bin/sh", "-c", "echo \"${LD_PRELOAD}\""],
        )
        .env("APPTAINERENV_LD_PRELOAD", r"/foo/bar/\$LIB/baz.so")
        .out(exact("/foo/bar/$LIB/baz.so")),
    );
    v.push(
        row(
            "e2e/env/regressions.go issue1263",
            &["exec", "--env-file", "{tmp}/env-file", "{img}", "/bin/true"],
        )
        .file("env-file", "")
        .err(not_contains("readonly variable")),
    );
    v.push(
        row(
            "e2e/env/regressions.go issue5426",
            &["exec", "{legacy}", "/bin/sh", "-c", "echo $PATH"],
        )
        .out(contains("/canary/path"))
        .adapted("sandbox made by the runner: the busybox image without /.singularity.d, with a legacy /environment setting PATH")
        ,
    );
    v
}
