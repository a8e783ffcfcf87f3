//! Golden tests: `tests/data/good/NAME.def` parses to exactly `NAME.json`; `tests/data/bad/NAME.def`
//! fails with exactly the text of `NAME.err` (`LINE:COL: message` and `hint: ...`).
//!
//! A `NAME.opts` file next to a case sets options, one per line: `arg NAME=VALUE` (as
//! `--build-arg`), `file NAME=VALUE` (a line of the `--build-arg-file`), `warn-unused`.
//! Run with `UPDATE_GOLDENS=1` to rewrite the expected files, then review the diff.

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

/// Compare with the expected file, or rewrite it under `UPDATE_GOLDENS=1`.
fn golden(expected: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(expected, actual).unwrap();
        return Ok(());
    }
    let want = std::fs::read_to_string(expected)
        .map_err(|e| format!("{}: {e} (run with UPDATE_GOLDENS=1)", expected.display()))?;
    if want == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs:\n--- expected\n{want}\n--- actual\n{actual}",
            expected.display()
        ))
    }
}

#[test]
fn good_definitions_match_their_json() {
    let cases = cases("good");
    assert!(cases.len() >= 40, "only {} good cases", cases.len());
    let mut failures = Vec::new();
    for def in cases {
        let bytes = std::fs::read(&def).unwrap();
        match sifr_deffile::parse_bytes(&bytes, &options(&def)) {
            Ok(d) => {
                let json = serde_json::to_string_pretty(&d).unwrap() + "\n";
                if let Err(e) = golden(&def.with_extension("json"), &json) {
                    failures.push(e);
                }
            }
            Err(e) => failures.push(format!("{}: {e} at {:?}", def.display(), e.location())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bad_definitions_fail_with_their_message() {
    let cases = cases("bad");
    assert!(cases.len() >= 20, "only {} bad cases", cases.len());
    let mut failures = Vec::new();
    for def in cases {
        let bytes = std::fs::read(&def).unwrap();
        match sifr_deffile::parse_bytes(&bytes, &options(&def)) {
            Ok(_) => failures.push(format!("{} was accepted", def.display())),
            Err(e) => {
                let mut text = match e.location() {
                    Some((l, c)) => format!("{l}:{c}: {e}\n"),
                    None => format!("{e}\n"),
                };
                if let Some(h) = e.hint() {
                    text.push_str(&format!("hint: {h}\n"));
                }
                if let Err(e) = golden(&def.with_extension("err"), &text) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
