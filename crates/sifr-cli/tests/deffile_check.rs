//! `sifr deffile check` as a user runs it: silence and exit 0 on valid files, `FILE:LINE:COL`,
//! the problem and a hint on stderr for invalid ones, JSON on stdout with `--json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

const EXIT_FAILURE: i32 = sifr_cli::exit::FAILURE as i32;
const EXIT_USAGE: i32 = sifr_cli::exit::USAGE as i32;

fn sifr() -> Command {
    let mut c = Command::cargo_bin("sifr").unwrap();
    sifr_testkit::remove_caller_settings(&mut c);
    c.arg("--nocolor");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A definition file `name` holding `text`, alone in a new temporary directory.
fn def_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), name, text);
    (dir, f)
}

/// `FILE:` followed by `rest` (a position, then the problem), as diagnostics name places.
fn place(file: &Path, rest: &str) -> String {
    format!("{}:{rest}", file.display())
}

/// Run `cmd`, assert that it succeeded, and parse its stdout as JSON.
fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

/// `sifr deffile check ARGS FILE`, run; its exit and streams to check next.
fn check(args: &[&str], file: &Path) -> assert_cmd::assert::Assert {
    sifr()
        .args(["deffile", "check"])
        .args(args)
        .arg(file)
        .assert()
}

/// `sifr deffile check FILE`, asserted to exit with [`EXIT_FAILURE`]; streams to check next.
fn check_fails(file: &Path) -> assert_cmd::assert::Assert {
    check(&[], file).code(EXIT_FAILURE)
}

const GOOD: &str = "Bootstrap: docker\nFrom: alpine:3.20\n\n%post\n    echo hi\n";
const TWO_STAGES: &str = "Bootstrap: docker\nFrom: golang:1.23\nStage: build\n\n%post\n    go build\n\n\
Bootstrap: docker\nFrom: alpine:3.20\n\n%files from build\n    /out/app /usr/bin/app\n";
const TYPO: &str = "Bootstrap: docker\nFrom: alpine:3.20\n\n%enviroment\n    export A=1\n";

#[test]
fn valid_file_exits_zero_and_prints_nothing() {
    let (_dir, f) = def_file("ok.def", GOOD);
    check(&[], &f)
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::is_empty());
}

#[test]
fn section_typo_names_file_line_col_and_hint() {
    let (_dir, f) = def_file("typo.def", TYPO);
    check_fails(&f)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "FATAL:   {}",
            place(&f, "4:1: invalid section `%enviroment`")
        )))
        .stderr(predicate::str::contains(
            "hint: did you mean `%environment`?",
        ));
}

#[test]
fn json_prints_the_stages() {
    let (_dir, f) = def_file("two.def", TWO_STAGES);
    let v = json_of(sifr().args(["deffile", "check", "--json"]).arg(&f));
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["header"]["stage"]["value"], "build");
    assert_eq!(stages[1]["files"][0]["from"], "build");
    assert_eq!(stages[1]["files"][0]["entries"][0]["dst"], "/usr/bin/app");
}

#[test]
fn json_with_several_files_is_an_array_naming_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.def", GOOD);
    let b = write(dir.path(), "b.def", TWO_STAGES);
    let v = json_of(sifr().args(["deffile", "check", "--json"]).args([&a, &b]));
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["file"], b.display().to_string());
}

#[test]
fn several_files_report_each_invalid_one_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(dir.path(), "ok.def", GOOD);
    let bad1 = write(dir.path(), "bad1.def", TYPO);
    let bad2 = write(dir.path(), "bad2.def", "Bootstrap: dockr\nFrom: alpine\n");
    sifr()
        .args(["deffile", "check"])
        .args([&ok, &bad1, &bad2])
        .assert()
        .code(EXIT_FAILURE)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(place(&bad1, "4:1:")))
        .stderr(predicate::str::contains(place(
            &bad2,
            "1:12: unknown bootstrap agent `dockr`",
        )))
        .stderr(predicate::str::contains("hint: did you mean `docker`?"))
        .stderr(predicate::str::contains(
            "2 of 3 definition files are invalid",
        ))
        .stderr(predicate::str::contains("ok.def").not());
}

#[test]
fn build_arg_fills_a_placeholder_and_missing_one_is_named() {
    let (_dir, f) = def_file(
        "args.def",
        "Bootstrap: docker\nFrom: alpine:{{ VERSION }}\n",
    );
    check(&["--build-arg", "VERSION=3.20"], &f).success();
    check_fails(&f)
        .stderr(predicate::str::contains(place(
            &f,
            "2:14: build argument `VERSION` is not defined",
        )))
        .stderr(predicate::str::contains(
            "hint: pass `--build-arg VERSION=VALUE`",
        ));
}

#[test]
fn build_arg_file_is_read_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "args.def",
        "Bootstrap: docker\nFrom: {{ IMAGE }}\n",
    );
    let args = write(dir.path(), "build.args", "IMAGE=rockylinux:9\n");
    let v = json_of(
        sifr()
            .args(["deffile", "check", "--json", "--build-arg-file"])
            .arg(&args)
            .args(["--build-arg", "IMAGE=alpine:3.20"])
            .arg(&f),
    );
    assert_eq!(v["stages"][0]["header"]["from"]["value"], "alpine:3.20");
}

#[test]
fn unused_build_arg_fails_unless_only_warned() {
    let (_dir, f) = def_file("ok.def", GOOD);
    check(&["--build-arg", "EXTRA=1"], &f)
        .code(EXIT_FAILURE)
        .stderr(predicate::str::contains("unused build arguments: `EXTRA`"))
        .stderr(predicate::str::contains("--warn-unused-build-args"));
    check(&["--warn-unused-build-args", "--build-arg", "EXTRA=1"], &f)
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("WARNING:"))
        .stderr(predicate::str::contains("`EXTRA`"));
}

#[test]
fn malformed_build_arg_is_a_usage_error() {
    let (_dir, f) = def_file("ok.def", GOOD);
    check(&["--build-arg", "novalue"], &f)
        .code(EXIT_USAGE)
        .stderr(predicate::str::contains("`novalue`"));
}

#[test]
fn missing_file_is_reported() {
    sifr()
        .args(["deffile", "check", "does-not-exist.def"])
        .assert()
        .code(EXIT_FAILURE)
        .stderr(predicate::str::contains("cannot read `does-not-exist.def`"));
}

#[test]
fn warnings_go_to_stderr_and_do_not_fail() {
    let (_dir, f) = def_file(
        "warn.def",
        "Bootstrap: docker\nFrom: alpine:3.20\nOSVersion: 9\n",
    );
    check(&[], &f)
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "WARNING: {}",
            place(
                &f,
                "3:12: header keyword `OSVersion` is not used by `Bootstrap: docker`"
            )
        )));
}

#[test]
fn files_from_unknown_stage_fails_with_its_line() {
    let (_dir, f) = def_file(
        "stage.def",
        "Bootstrap: docker\nFrom: alpine\n\n%files from nowhere\n    /a /b\n",
    );
    check_fails(&f).stderr(predicate::str::contains(place(
        &f,
        "4:12: stage `nowhere` was not found",
    )));
}

// Fail fast (issue 25): what would stop the build is found before anything runs, relative to
// the directory the build would run in.

#[test]
fn an_agent_sifr_cannot_build_is_an_error_with_what_to_use_instead() {
    let (_dir, f) = def_file("lib.def", "Bootstrap: library\nFrom: alpine:3.20\n");
    check_fails(&f)
        .stderr(predicate::str::contains(place(
            &f,
            "1: sifr cannot build from `Bootstrap: library`",
        )))
        .stderr(predicate::str::contains("hint: sifr builds from docker"))
        .stderr(predicate::str::contains("sifr pull base.sif"));
}

#[test]
fn files_sources_and_base_images_are_looked_for_where_the_build_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "here.txt", "x");
    let f = write(
        dir.path(),
        "f.def",
        "Bootstrap: localimage\nFrom: base.sif\n\n%files\n    here.txt /opt/\n    gone*.txt /opt/\n",
    );
    // From the file's directory: `base.sif` and `gone*.txt` are missing, `here.txt` is there.
    let out = sifr()
        .current_dir(dir.path())
        .args(["deffile", "check"])
        .arg(&f)
        .assert()
        .code(EXIT_FAILURE);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(&place(&f, "2: the base image `base.sif` does not exist")),
        "{err}"
    );
    assert!(
        err.contains(&place(&f, "6: %files: no file matches `gone*.txt`")),
        "{err}"
    );
    assert!(!err.contains("here.txt"), "{err}");
    // Once they exist the file is fine.
    write(dir.path(), "base.sif", "x");
    write(dir.path(), "gone1.txt", "x");
    sifr()
        .current_dir(dir.path())
        .args(["deffile", "check"])
        .arg(&f)
        .assert()
        .success()
        .stderr("");
}

#[test]
fn build_refuses_before_bootstrapping_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // The docker base would take a pull and an extraction before `%files` failed.
    let f = write(
        dir.path(),
        "f.def",
        "Bootstrap: docker\nFrom: debian:12\n\n%files\n    missing.txt /opt/\n",
    );
    let started = std::time::Instant::now();
    sifr()
        .current_dir(dir.path())
        .env("SIFR_TMPDIR", &tmp)
        .args(["build", "out.sif"])
        .arg(&f)
        .assert()
        .code(EXIT_FAILURE)
        .stderr(predicate::str::contains(place(
            &f,
            "5: %files: no file matches `missing.txt`",
        )))
        .stderr(predicate::str::contains("Starting build").not());
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(!dir.path().join("out.sif").exists());
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "work left in the tmpdir"
    );
}
