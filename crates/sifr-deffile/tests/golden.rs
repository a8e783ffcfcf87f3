//! Golden tests: `tests/data/good/NAME.def` parses to exactly the JSON of its snapshot;
//! `tests/data/bad/NAME.def` fails with exactly the snapshot's text (`LINE:COL: message` and
//! `hint: ...`).
//!
//! A `NAME.opts` file next to a case sets options, one per line: `arg NAME=VALUE` (as
//! `--build-arg`), `file NAME=VALUE` (a line of the `--build-arg-file`), `warn-unused`.
//! The expected outputs are insta snapshots in `tests/snapshots/`, one per case
//! (`golden__<test>@<NAME>.def.snap`). To accept a change, run the test with
//! `INSTA_UPDATE=always INSTA_FORCE_PASS=1` (or `cargo insta review`) and review the diff; under
//! `CI=true` a mismatch fails and nothing is written.

use std::path::{Path, PathBuf};

use sifr_deffile::Options;

fn data(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(kind)
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data(kind))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "def"))
        .collect();
    v.sort();
    v
}

fn options(def: &Path) -> Options {
    let mut o = Options::default();
    let Ok(text) = std::fs::read_to_string(def.with_extension("opts")) else {
        return o;
    };
    let mut file = String::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("arg", kv)) => o
                .build_args
                .push(sifr_deffile::parse_build_arg(kv).unwrap()),
            Some(("file", kv)) => {
                file.push_str(kv);
                file.push('\n');
            }
            _ if line == "warn-unused" => o.warn_unused_build_args = true,
            _ => panic!("{}: bad option line `{line}`", def.display()),
        }
    }
    if !file.is_empty() {
        o.build_arg_file = Some(file);
    }
    o
}

/// The error as a user reads it: `LINE:COL: message`, then `hint: ...` where there is one.
fn error_text(e: &sifr_deffile::Error) -> String {
    let mut text = match e.location() {
        Some((l, c)) => format!("{l}:{c}: {e}\n"),
        None => format!("{e}\n"),
    };
    if let Some(h) = e.hint() {
        text.push_str(&format!("hint: {h}\n"));
    }
    text
}

#[test]
fn good_definitions_match_their_json() {
    let cases = cases("good");
    assert!(cases.len() >= 40, "only {} good cases", cases.len());
    insta::glob!("data/good/*.def", |def| {
        let bytes = std::fs::read(def).unwrap();
        match sifr_deffile::parse_bytes(&bytes, &options(def)) {
            Ok(d) => {
                let json = serde_json::to_string_pretty(&d).unwrap() + "\n";
                insta::assert_snapshot!(json);
            }
            Err(e) => panic!("{}: {e} at {:?}", def.display(), e.location()),
        }
    });
}

#[test]
fn bad_definitions_fail_with_their_message() {
    let cases = cases("bad");
    assert!(cases.len() >= 20, "only {} bad cases", cases.len());
    insta::glob!("data/bad/*.def", |def| {
        let bytes = std::fs::read(def).unwrap();
        match sifr_deffile::parse_bytes(&bytes, &options(def)) {
            Ok(_) => panic!("{} was accepted", def.display()),
            Err(e) => {
                let text = error_text(&e);
                // insta compares with trailing newlines trimmed: each line ends once.
                assert!(!text.contains("\n\n"), "{text:?}");
                insta::assert_snapshot!(text);
            }
        }
    });
}
