//! The CLI frame as a user meets it: help, version, completions, man pages, settings from the
//! environment, and the `apptainer`/`singularity` drop-in names.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

fn sifr() -> Command {
    let mut c = Command::cargo_bin("sifr").unwrap();
    // Keep the machine's own settings out of these tests.
    sifr_testkit::remove_caller_settings(&mut c);
    c
}

/// A link to the sifr binary under another name, as an admin would install it.
fn linked_as(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("sifr"), &link).unwrap();
    (dir, link)
}

#[test]
fn help_lists_the_commands() {
    sifr()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("deffile"))
        .stdout(predicate::str::contains("completion"))
        .stdout(predicate::str::contains("--quiet"));
}

#[test]
fn version_command_prints_the_crate_version_and_the_apptainer_release() {
    let line = format!(
        "sifr version {} (behaves as apptainer version {})\n",
        env!("CARGO_PKG_VERSION"),
        sifr_cli::identity::APPTAINER_VERSION
    );
    sifr()
        .arg("version")
        .assert()
        .success()
        .stdout(line.clone());
    sifr().arg("--version").assert().success().stdout(line);
}

#[test]
fn unknown_command_is_a_usage_error() {
    sifr()
        .arg("frobnicate")
        .assert()
        .code(i32::from(sifr_cli::exit::USAGE))
        .stderr(predicate::str::contains("frobnicate"));
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    sifr()
        .args(["completion", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_sifr()"));
    sifr()
        .args(["completion", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("#compdef sifr"));
    sifr()
        .args(["completion", "fish"])
        .assert()
        .success()
        .stdout(predicate::str::contains("complete -c sifr"));
}

#[test]
fn man_pages_are_written_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    sifr()
        .args(["man", "--output"])
        .arg(dir.path())
        .assert()
        .success();
    for page in [
        "sifr.1",
        "sifr-deffile.1",
        "sifr-completion.1",
        "sifr-version.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    sifr()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH sifr"));
}

#[test]
fn linked_as_apptainer_it_behaves_the_same() {
    for name in ["apptainer", "singularity"] {
        let (_dir, link) = linked_as(name);
        // e2e/version (Apptainer): `--version` is "apptainer version X.Y.Z", `version` the
        // bare X.Y.Z, under either name; snakemake parses the first.
        let v = sifr_cli::identity::APPTAINER_VERSION;
        Command::new(&link)
            .arg("version")
            .assert()
            .success()
            .stdout(format!("{v}\n"));
        Command::new(&link)
            .arg("--version")
            .assert()
            .success()
            .stdout(format!("apptainer version {v}\n"));
        Command::new(&link)
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("Usage: {name}")));
        Command::new(&link)
            .args(["completion", "bash"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("_{name}()")));
    }
}

#[test]
fn a_bad_setting_in_the_environment_names_the_variable() {
    sifr()
        .env("APPTAINER_DEBUG", "sometimes")
        .arg("version")
        .assert()
        .code(i32::from(sifr_cli::exit::FAILURE))
        .stderr(predicate::str::contains("APPTAINER_DEBUG"))
        .stderr(predicate::str::contains("`sometimes`"))
        .stderr(predicate::str::contains("hint:"));
}

#[test]
fn legacy_singularity_variables_are_read() {
    sifr()
        .env("SINGULARITY_QUIET", "maybe")
        .arg("version")
        .assert()
        .code(i32::from(sifr_cli::exit::FAILURE))
        .stderr(predicate::str::contains("SINGULARITY_QUIET"));
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sifr.toml");
    std::fs::write(&cfg, "quite = true\n").unwrap();
    sifr()
        .arg("--config")
        .arg(&cfg)
        .arg("version")
        .assert()
        .code(i32::from(sifr_cli::exit::FAILURE))
        .stderr(predicate::str::contains("`quite`"))
        .stderr(predicate::str::contains("did you mean `quiet`?"));
}

#[test]
fn silent_suppresses_error_output_but_keeps_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.def");
    sifr()
        .arg("-s")
        .args(["deffile", "check"])
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicate::str::is_empty());
}
