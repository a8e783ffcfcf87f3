//! `sifr inspect` on a sandbox, the SIF packed from it, its bare SquashFS partition and a SIF
//! that stores `inspect-metadata.json`: each selection flag prints the same metadata for all,
//! in Apptainer's text and JSON formats. The table of `inspector_rows` ports Apptainer's
//! `e2e/inspect/inspect.go` (`apptainerInspect`) on its `e2e/testdata/inspector_container.def`.

use std::path::Path;

use assert_cmd::Command as Cmd;
use sifr_build::layout::{BaseOptions, BuildTime, MetadataOptions, insert_metadata, write_base};

fn sifr() -> Cmd {
    Cmd::cargo_bin("sifr").unwrap()
}

const DEF: &str = "Bootstrap: docker
From: alpine:3.20

%help
    Says hello.

%environment
    export GREETING=hello

%runscript
    echo \"$GREETING\" \"$@\"

%labels
    Maintainer someone
";

fn sandbox(root: &Path) {
    let def = sifr_deffile::parse(DEF, &sifr_deffile::Options::default()).unwrap();
    let stage = def.image_stage().unwrap();
    std::fs::create_dir_all(root).unwrap();
    write_base(root, BaseOptions::default()).unwrap();
    let mut o = MetadataOptions::new(BuildTime::utc(1_787_062_365), "amd64");
    o.version = "sifr-test".to_owned();
    insert_metadata(root, stage, &def.substituted, &o).unwrap();
}

fn inspect(image: &Path, flags: &[&str]) -> String {
    let out = sifr()
        .arg("inspect")
        .args(flags)
        .arg(image)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn inspect_sandbox_and_sif() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rootfs");
    sandbox(&dir);
    let sif = tmp.path().join("img.sif");
    sifr()
        .args(["build", "--compression", "gzip"])
        .arg(&sif)
        .arg(&dir)
        .assert()
        .success();

    for img in [&dir, &sif] {
        let labels = inspect(img, &["--labels"]);
        assert!(labels.contains("Maintainer: someone\n"), "{labels}");
        assert!(
            labels.contains("org.label-schema.build-date: Tuesday_18_August_2026_14:12:45_UTC\n"),
            "{labels}"
        );
        // Labels are the default selection.
        assert_eq!(inspect(img, &[]), labels);

        let run = inspect(img, &["-r"]);
        assert!(run.starts_with("#!/bin/sh"), "{run}");
        assert!(run.contains("echo \"$GREETING\" \"$@\""), "{run}");
        assert!(!run.contains("Maintainer"), "{run}");

        let env = inspect(img, &["--environment"]);
        assert!(
            env.starts_with("=== /.singularity.d/env/90-environment.sh ===\n"),
            "{env}"
        );
        assert!(env.contains("export GREETING=hello"), "{env}");
        assert!(env.ends_with("\n\n"), "{env}");

        assert_eq!(inspect(img, &["--helpfile"]), "    Says hello.\n");
        // A sandbox's definition file is read as a metadata file (trailing newlines dropped);
        // a SIF without `inspect-metadata.json` gives its definition object as stored, which
        // Apptainer prints with one more newline (inspect.go, `inspectDeffilePartition`).
        let def = if img == &dir {
            DEF.trim_end_matches('\n').to_owned() + "\n"
        } else {
            DEF.to_owned() + "\n"
        };
        assert_eq!(inspect(img, &["--deffile"]), def);
        assert_eq!(inspect(img, &["-d"]), def, "-d is --deffile");

        let json: serde_json::Value =
            serde_json::from_str(&inspect(img, &["--json", "--labels", "--runscript"])).unwrap();
        assert_eq!(json["type"], "container");
        let attrs = json["data"]["attributes"].as_object().unwrap();
        assert_eq!(attrs["labels"]["Maintainer"], "someone");
        assert!(attrs["runscript"].as_str().unwrap().contains("GREETING"));
        assert!(!attrs.contains_key("environment"), "{attrs:?}");

        let all = inspect(img, &["--all"]);
        assert!(all.starts_with("{\n\t\"data\""), "{all}");
        let all: serde_json::Value = serde_json::from_str(&all).unwrap();
        let attrs = &all["data"]["attributes"];
        assert_eq!(attrs["helpfile"], "    Says hello.");
        assert!(attrs["deffile"].as_str().unwrap().contains("%labels"));
        assert!(attrs["startscript"].is_string());
    }
    // Same answer from the directory and from the packed image, but for the definition file.
    let strip_deffile = |img: &Path| {
        let mut v: serde_json::Value = serde_json::from_str(&inspect(img, &["--all"])).unwrap();
        let d = v["data"]["attributes"]
            .as_object_mut()
            .unwrap()
            .remove("deffile");
        (v, d.unwrap().as_str().unwrap().trim_end().to_owned())
    };
    assert_eq!(strip_deffile(&dir), strip_deffile(&sif));
}

#[test]
fn missing_image_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.sif");
    sifr()
        .arg("inspect")
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicates::str::contains(missing.display().to_string()));
}

#[test]
fn run_help_prints_the_help_section_or_says_there_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rootfs");
    sandbox(&dir);
    let sif = tmp.path().join("img.sif");
    sifr().arg("build").arg(&sif).arg(&dir).assert().success();
    for image in [&dir, &sif] {
        sifr()
            .arg("run-help")
            .arg(image)
            .assert()
            .success()
            .stdout("    Says hello.\n");
    }
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    write_base(&bare, BaseOptions::default()).unwrap();
    sifr()
        .arg("run-help")
        .arg(&bare)
        .assert()
        .success()
        .stdout("No help sections were defined for this image\n");
}

/// Apptainer's `e2e/testdata/inspector_container.def`, with a base sifr can parse without
/// fetching it; its `%post` (two build labels and `91-environment.sh`) is not run here.
const INSPECTOR_DEF: &str = r#"bootstrap: docker
from: alpine:3.15.0

%help
This is a e2e test container used for testing the 'inspect'
command. This container "inspector_container.sif" should be placed
in the "e2e/testdata" directory of Apptainer.

%labels
MAINTAINER "WestleyK <westley@sylabs.io>"
e2e awesome
E2E AWESOME
hi "hello world"
HI "HELLO WORLD"

%test
ls /
test -d /
test -d /etc

%environment
export test="testing"
export e2e="e2e testing"

%runscript
cat /.singularity.d/runscript.help

%startscript
exec "$@"

%apprun hello
echo "hello"

%appstart hello
exec "$@"

%apphelp hello
This is the help for hello!

%applabels hello
HELLOTHISIS hello

%appenv hello
HELLOTHISIS=hello
export HELLOTHISIS

%apptest hello
echo "THIS IS A HELLO TEST"

%apprun world
echo "world"
"#;

/// The inspector image in the four forms: a sandbox, the SIF packed from it, that SIF's bare
/// SquashFS partition (as the e2e test cuts it out) and the SIF with `inspect-metadata.json`
/// added, which is where Apptainer's own builds keep the metadata.
fn inspector_images(tmp: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let dir = tmp.join("sandbox");
    let def = sifr_deffile::parse(INSPECTOR_DEF, &sifr_deffile::Options::default()).unwrap();
    let stage = def.image_stage().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    write_base(&dir, BaseOptions::default()).unwrap();
    let o = MetadataOptions::new(BuildTime::utc(1_787_062_365), "amd64");
    insert_metadata(&dir, stage, &def.substituted, &o).unwrap();
    sifr_build::layout::sections::write_apps(&dir, stage).unwrap();

    let sif = tmp.join("image.sif");
    sifr().arg("build").arg(&sif).arg(&dir).assert().success();

    let squash = tmp.join("image.sqs");
    let img = sifr_sif::Image::open(&sif).unwrap();
    let part = img.primary_partition().unwrap();
    std::fs::write(&squash, img.read_object(part.id()).unwrap()).unwrap();

    let stored = tmp.join("stored.sif");
    std::fs::copy(&sif, &stored).unwrap();
    let meta = sifr_build::layout::inspect(&dir).unwrap();
    let mut img = sifr_sif::Image::open_rw(&stored).unwrap();
    img.add_object(
        sifr_sif::ObjectInput::generic_json("inspect-metadata.json", meta.to_json().into_bytes()),
        None,
    )
    .unwrap();
    drop(img);
    vec![
        ("Sandbox", dir),
        ("SIF", sif),
        ("Squash", squash),
        ("SIF with inspect-metadata.json", stored),
    ]
}

type Check = fn(&serde_json::Value) -> Result<(), String>;

fn field(v: &serde_json::Value, path: &[&str]) -> String {
    let mut v = &v["data"]["attributes"];
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or("<absent>").to_owned()
}

fn expect(got: String, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

/// Apptainer's rows: (e2e name, flag, --app, check of the `--json` output).
const INSPECTOR_ROWS: &[(&str, &str, &str, Check)] = &[
    ("label maintainer", "--labels", "", |v| {
        expect(
            field(v, &["labels", "MAINTAINER"]),
            "\"WestleyK <westley@sylabs.io>\"",
        )
    }),
    ("label_E2E", "--labels", "", |v| {
        expect(field(v, &["labels", "E2E"]), "AWESOME")
    }),
    ("label_HI", "--labels", "", |v| {
        expect(field(v, &["labels", "HI"]), "\"HELLO WORLD\"")
    }),
    ("label_e2e", "--labels", "", |v| {
        expect(field(v, &["labels", "e2e"]), "awesome")
    }),
    ("label_hi", "--labels", "", |v| {
        expect(field(v, &["labels", "hi"]), "\"hello world\"")
    }),
    ("label_org.label-schema.usage", "--labels", "", |v| {
        expect(
            field(v, &["labels", "org.label-schema.usage"]),
            "/.singularity.d/runscript.help",
        )
    }),
    (
        "label_org.label-schema.usage.apptainer.runscript.help",
        "--labels",
        "",
        |v| {
            expect(
                field(
                    v,
                    &["labels", "org.label-schema.usage.apptainer.runscript.help"],
                ),
                "/.singularity.d/runscript.help",
            )
        },
    ),
    ("deffile", "--deffile", "", |v| {
        let d = field(v, &["deffile"]);
        expect(d.get(..10).unwrap_or("").to_owned(), "bootstrap:")
    }),
    ("runscript", "--runscript", "", |v| {
        expect(
            field(v, &["runscript"]),
            "#!/bin/sh\n\ncat /.singularity.d/runscript.help",
        )
    }),
    ("startscript", "--startscript", "", |v| {
        expect(field(v, &["startscript"]), "#!/bin/sh\n\nexec \"$@\"")
    }),
    ("list apps", "--list-apps", "", |v| {
        let apps: Vec<String> = v["data"]["attributes"]["apps"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        expect(apps.join(","), "hello,world")
    }),
    ("test", "--test", "", |v| {
        expect(
            field(v, &["test"]),
            "#!/bin/sh\n\nls /\ntest -d /\ntest -d /etc",
        )
    }),
    ("helpfile", "--helpfile", "", |v| {
        expect(
            field(v, &["helpfile"]),
            "This is a e2e test container used for testing the 'inspect'\ncommand. This \
             container \"inspector_container.sif\" should be placed\nin the \"e2e/testdata\" \
             directory of Apptainer.",
        )
    }),
    // Apptainer's file carries its own comment line after the shebang; sifr writes its own
    // (docs/compat.md, "Cache and inspect"), so the row checks around it.
    ("environment", "--environment", "", |v| {
        let env = field(v, &["environment", "/.singularity.d/env/90-environment.sh"]);
        let (first, rest) = env.split_once('\n').unwrap_or_default();
        let comment = rest.lines().next().unwrap_or_default();
        expect(first.to_owned(), "#!/bin/sh")?;
        expect(comment.get(..2).unwrap_or_default().to_owned(), "# ")?;
        expect(
            rest.trim_start_matches(comment).trim_start().to_owned(),
            "export test=\"testing\"\nexport e2e=\"e2e testing\"",
        )
    }),
    ("label app hello", "--labels", "hello", |v| {
        expect(
            field(v, &["apps", "hello", "labels", "HELLOTHISIS"]),
            "hello",
        )
    }),
    ("help app hello", "--helpfile", "hello", |v| {
        expect(
            field(v, &["apps", "hello", "helpfile"]),
            "This is the help for hello!",
        )
    }),
    ("env app hello", "--environment", "hello", |v| {
        expect(
            field(
                v,
                &[
                    "apps",
                    "hello",
                    "environment",
                    "/scif/apps/hello/scif/env/90-environment.sh",
                ],
            ),
            "HELLOTHISIS=hello\nexport HELLOTHISIS",
        )
    }),
    ("runscript app hello", "--runscript", "hello", |v| {
        expect(
            field(v, &["apps", "hello", "runscript"]),
            "#!/bin/sh\n\necho \"hello\"",
        )
    }),
    ("test app hello", "--test", "hello", |v| {
        expect(
            field(v, &["apps", "hello", "test"]),
            "#!/bin/sh\n\necho \"THIS IS A HELLO TEST\"",
        )
    }),
    ("runscript app world", "--runscript", "world", |v| {
        expect(
            field(v, &["apps", "world", "runscript"]),
            "#!/bin/sh\n\necho \"world\"",
        )
    }),
];

#[test]
fn inspector_rows_hold_for_every_image_form() {
    // e2e/inspect apptainerInspect: each row with `--json FLAG [--app NAME]`, then `--all`
    // against every row.
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (form, img) in inspector_images(tmp.path()) {
        let all: serde_json::Value = serde_json::from_str(&inspect(&img, &["--all"])).unwrap();
        for (name, flag, app, check) in INSPECTOR_ROWS {
            let mut flags = vec!["--json", flag];
            if !app.is_empty() {
                flags.extend(["--app", app]);
            }
            let out: serde_json::Value = serde_json::from_str(&inspect(&img, &flags)).unwrap();
            if let Err(e) = check(&out) {
                failures.push(format!("{form}/{name}: {e}"));
            }
            if let Err(e) = check(&all) {
                failures.push(format!("{form}/all ({name}): {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn text_output_lists_apps_and_heads_environment_files() {
    let tmp = tempfile::tempdir().unwrap();
    for (form, img) in inspector_images(tmp.path()) {
        assert_eq!(inspect(&img, &["--list-apps"]), "hello\nworld\n", "{form}");
        assert_eq!(
            inspect(&img, &["--app", "hello", "-e"]),
            "=== /scif/apps/hello/scif/env/90-environment.sh ===\n\
             HELLOTHISIS=hello\nexport HELLOTHISIS\n\n",
            "{form}"
        );
        assert_eq!(
            inspect(&img, &["--app", "hello", "-r", "-l"]),
            "#!/bin/sh\n\necho \"hello\"\nHELLOTHISIS: hello\nSCIF_APP_NAME: hello\n",
            "{form}"
        );
        // One `=== PATH ===` header per environment file, its text, a blank line.
        let env = inspect(&img, &["--environment"]);
        assert!(
            env.starts_with("=== /.singularity.d/env/90-environment.sh ===\n#!/bin/sh\n"),
            "{form}: {env}"
        );
        assert!(
            env.ends_with("\nexport e2e=\"e2e testing\"\n\n"),
            "{form}: {env}"
        );
        assert_eq!(
            env.matches("\n=== ").count() + 1,
            env.matches("===\n").count(),
            "{form}: {env}"
        );
        // Short forms, as Apptainer's.
        assert_eq!(
            inspect(&img, &["-s"]),
            "#!/bin/sh\n\nexec \"$@\"\n",
            "{form}"
        );
        assert_eq!(
            inspect(&img, &["-t"]),
            "#!/bin/sh\n\nls /\ntest -d /\ntest -d /etc\n",
            "{form}"
        );
        assert!(
            inspect(&img, &["-H"]).starts_with("This is a e2e test"),
            "{form}"
        );
        let j: serde_json::Value = serde_json::from_str(&inspect(&img, &["-j", "-r"])).unwrap();
        assert_eq!(j["type"], "container", "{form}");
        assert!(j["data"]["attributes"]["runscript"].is_string(), "{form}");
        assert!(j["data"]["attributes"].get("labels").is_none(), "{form}");
    }
}
