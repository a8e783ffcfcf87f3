//! The parser never panics: arbitrary bytes, arbitrary text, and valid definition files with
//! random edits (lines dropped, duplicated, characters inserted) all give `Ok` or `Err`.

use proptest::prelude::*;
use sifr_deffile::Options;

const SEED: &str = "Bootstrap: docker\nFrom: {{ IMG }}\nStage: one\n\n%arguments\n    IMG=alpine\n\n\
%files\n    \"a b\" 'c d'\n    x\n\n%post -c /bin/bash\n    echo {{ IMG }} # {{ x }}\n\n\
%labels\n    K v\n\n%appinstall foo\n    true\n%apprun foo\n    run\n\n\
Bootstrap: docker\nFrom: alpine\n\n%files from one\n    /a /b\n%runscript\n#!/bin/sh\n    echo\n";

fn opts(warn: bool) -> Options {
    Options {
        build_args: vec![("IMG".into(), "x{{ IMG }}".into())],
        build_arg_file: Some("a=1\nbad line\n=\n".into()),
        warn_unused_build_args: warn,
        allow_unknown_stages: !warn,
    }
}

fn check(text: &str) {
    for warn in [false, true] {
        if let Err(e) = sifr_deffile::parse(text, &opts(warn)) {
            // Rendering an error must not panic either.
            let _ = (e.to_string(), e.hint(), e.location());
        }
    }
}

/// Pieces that exercise the grammar's corners.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("%".to_owned()),
        Just("%files from ".to_owned()),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{ IMG }}".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("\\".to_owned()),
        Just("\\n\\".to_owned()),
        Just("#".to_owned()),
        Just("\r\n".to_owned()),
        Just("\n".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("Bootstrap:".to_owned()),
        Just(":".to_owned()),
        Just("é".to_owned()),
        "[ -~]{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = sifr_deffile::parse_bytes(&bytes, &opts(false));
    }

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn grammar_pieces(parts in proptest::collection::vec(piece(), 0..60)) {
        check(&parts.concat());
    }

    #[test]
    fn mutated_valid_file(
        edits in proptest::collection::vec((0usize..2000, 0u8..4, piece()), 0..8)
    ) {
        let mut lines: Vec<String> = SEED.lines().map(str::to_owned).collect();
        for (at, kind, p) in edits {
            if lines.is_empty() {
                lines.push(p);
                continue;
            }
            let i = at % lines.len();
            match kind {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                2 => {
                    let l = &mut lines[i];
                    let mut cut = at % (l.len() + 1);
                    while !l.is_char_boundary(cut) { cut -= 1; }
                    l.insert_str(cut, &p);
                }
                _ => lines.insert(i, p),
            }
        }
        check(&lines.join("\n"));
    }
}
