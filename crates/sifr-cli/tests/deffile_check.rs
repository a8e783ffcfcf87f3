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

/// `sifr deffile check FILE`, asserted to exit with [`EXIT_FAILURE`]; streams to check next.
fn check_fails(file: &Path) -> assert_cmd::assert::Assert {
    sifr()
        .args(["deffile", "check"])
        .arg(file)
        .assert()
        .code(EXIT_FAILURE)
}

const GOOD: &str = "Bootstrap: docker\nFrom: alpine:3.20\n\n%post\n    echo hi\n";
const TWO_STAGES: &str = "Bootstrap: docker\nFrom: golang:1.23\nStage: build\n\n%post\n    go build\n\n\
Bootstrap: docker\nFrom: alpine:3.20\n\n%files from build\n    /out/app /usr/bin/app\n";
const TYPO: &str = "Bootstrap: docker\nFrom: alpine:3.20\n\n%enviroment\n    export A=1\n";

#[test]
fn valid_file_exits_zero_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "ok.def", GOOD);
    sifr()
        .args(["deffile", "check"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::is_empty());
}

#[test]
fn section_typo_names_file_line_col_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "typo.def", TYPO);
    check_fails(&f)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "error: {}:4:1: invalid section `%enviroment`",
            f.display()
        )))
        .stderr(predicate::str::contains(
            "hint: did you mean `%environment`?",
        ));
}

#[test]
fn json_prints_the_stages() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "two.def", TWO_STAGES);
    let out = sifr()
        .args(["deffile", "check", "--json"])
        .arg(&f)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
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
    let out = sifr()
        .args(["deffile", "check", "--json"])
        .args([&a, &b])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
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
        .stderr(predicate::str::contains(format!("{}:4:1:", bad1.display())))
        .stderr(predicate::str::contains(format!(
            "{}:1:12: unknown bootstrap agent `dockr`",
            bad2.display()
        )))
        .stderr(predicate::str::contains("hint: did you mean `docker`?"))
        .stderr(predicate::str::contains(
            "2 of 3 definition files are invalid",
        ))
        .stderr(predicate::str::contains("ok.def").not());
}

#[test]
fn build_arg_fills_a_placeholder_and_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "args.def",
        "Bootstrap: docker\nFrom: alpine:{{ VERSION }}\n",
    );
    sifr()
        .args(["deffile", "check", "--build-arg", "VERSION=3.20"])
        .arg(&f)
        .assert()
        .success();
    check_fails(&f)
        .stderr(predicate::str::contains(format!(
            "{}:2:14: build argument `VERSION` is not defined",
            f.display()
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
    let out = sifr()
        .args(["deffile", "check", "--json", "--build-arg-file"])
        .arg(&args)
        .args(["--build-arg", "IMAGE=alpine:3.20"])
        .arg(&f)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["stages"][0]["header"]["from"]["value"], "alpine:3.20");
}

#[test]
fn unused_build_arg_fails_unless_only_warned() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "ok.def", GOOD);
    sifr()
        .args(["deffile", "check", "--build-arg", "EXTRA=1"])
        .arg(&f)
        .assert()
        .code(EXIT_FAILURE)
        .stderr(predicate::str::contains("unused build arguments: `EXTRA`"))
        .stderr(predicate::str::contains("--warn-unused-build-args"));
    sifr()
        .args([
            "deffile",
            "check",
            "--warn-unused-build-args",
            "--build-arg",
            "EXTRA=1",
        ])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("warning:"))
        .stderr(predicate::str::contains("`EXTRA`"));
}

#[test]
fn malformed_build_arg_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "ok.def", GOOD);
    sifr()
        .args(["deffile", "check", "--build-arg", "novalue"])
        .arg(&f)
        .assert()
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
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "warn.def",
        "Bootstrap: docker\nFrom: alpine:3.20\nOSVersion: 9\n",
    );
    sifr()
        .args(["deffile", "check"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "warning: {}:3:12: header keyword `OSVersion` is not used by `Bootstrap: docker`",
            f.display()
        )));
}

#[test]
fn files_from_unknown_stage_fails_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "stage.def",
        "Bootstrap: docker\nFrom: alpine\n\n%files from nowhere\n    /a /b\n",
    );
    check_fails(&f).stderr(predicate::str::contains(format!(
        "{}:4:12: stage `nowhere` was not found",
        f.display()
    )));
}
