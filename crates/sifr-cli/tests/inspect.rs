//! `sifr inspect` on a sandbox and on the SIF packed from it: each selection flag prints the
//! same metadata for both, in Apptainer's text and JSON formats.

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
        assert_eq!(
            inspect(img, &["--deffile"]),
            DEF.trim_end_matches('\n').to_owned() + "\n"
        );

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
    // Same answer from the directory and from the packed image.
    assert_eq!(inspect(&dir, &["--all"]), inspect(&sif, &["--all"]));
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
