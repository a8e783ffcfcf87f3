//! Build arguments: `--build-arg` / `--build-arg-file` values and `%arguments` defaults, and
//! `{{ name }}` substitution in a stage's text before it is parsed. Must not parse sections
//! beyond reading `%arguments` defaults, and must not read files (the caller passes text).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Warning};
use crate::lex::{Lexed, col_of, lines};
use crate::sections::argument_defaults;

/// `name=value` from the command line: split at the first `=`, both sides trimmed, the name
/// must not be empty (Apptainer's rule).
pub fn parse_build_arg(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(Error::InvalidBuildArg {
            line: 0,
            col: 0,
            value: text.to_owned(),
        }),
    }
}

/// The build arguments in effect: the file's lines first, then the command line's, so the
/// command line wins and a later duplicate wins. Apptainer skips a file line that is not
/// `name=value` with a warning; blank and `#` lines are skipped quietly here.
pub(crate) fn collect(
    cli: &[(String, String)],
    file: Option<&str>,
    warnings: &mut Vec<Warning>,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for l in lines(file.unwrap_or(""), 1) {
        let t = l.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match parse_build_arg(t) {
            Ok((k, v)) => {
                map.insert(k, v);
            }
            Err(_) => warnings.push(Warning {
                line: 0,
                col: 0,
                message: format!(
                    "build-arg file line {} `{t}` is not `name=value`; it is ignored",
                    l.no
                ),
            }),
        }
    }
    for (k, v) in cli {
        map.insert(k.clone(), v.clone());
    }
    map
}

/// The `%arguments` defaults of a lexed (not yet substituted) stage; a later one wins.
pub(crate) fn defaults(lexed: &Lexed<'_>, warnings: &mut Vec<Warning>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for sec in lexed.sections.iter().filter(|s| s.name == "arguments") {
        for a in argument_defaults(&sec.body, warnings) {
            map.insert(a.name, a.value);
        }
    }
    map
}

/// A `{{ name }}` placeholder found at `start..end` of the text.
struct Placeholder<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

/// The first placeholder at or after `from`. The pattern is Apptainer's `{{\s*(\w+)\s*}}`
/// with `\w` = ASCII letters, digits and `_`.
fn next_placeholder(text: &str, mut from: usize) -> Option<Placeholder<'_>> {
    let b = text.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c');
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while let Some(off) = text.get(from..)?.find("{{") {
        let start = from + off;
        let mut i = start + 2;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && is_word(b[i]) {
            i += 1;
        }
        let name_end = i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if name_end > name_start && b.get(i..i + 2) == Some(b"}}") {
            return Some(Placeholder {
                start,
                end: i + 2,
                name: &text[name_start..name_end],
            });
        }
        from = start + 1;
    }
    None
}

/// Apptainer's test for a placeholder on a comment line: between the start of the line (or the
/// end of the previous placeholder) and the placeholder there is a `#` followed by anything but
/// `!` (so `#!/bin/{{ shell }}` is still substituted).
fn on_comment(region: &str) -> bool {
    let b = region.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'#' && b.get(i + 1).is_some_and(|&n| n != b'!'))
}

/// Substitute the placeholders of one stage's text. `first_line` numbers its first line (for
/// errors). Records each argument used in `consumed`.
pub(crate) fn substitute(
    text: &str,
    first_line: usize,
    args: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
    consumed: &mut BTreeSet<String>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    while let Some(p) = next_placeholder(text, done) {
        let line_start = text[..p.start].rfind('\n').map_or(0, |i| i + 1);
        if on_comment(&text[line_start.max(done)..p.start]) {
            out.push_str(&text[done..p.end]);
            done = p.end;
            continue;
        }
        let Some(value) = args.get(p.name).or_else(|| defaults.get(p.name)) else {
            let line = first_line + text[..p.start].matches('\n').count();
            return Err(Error::UndefinedBuildArg {
                line,
                col: col_of(&text[line_start..], p.start - line_start),
                name: p.name.to_owned(),
            });
        };
        out.push_str(&text[done..p.start]);
        out.push_str(&expand_nested(value, args, defaults));
        consumed.insert(p.name.to_owned());
        done = p.end;
    }
    out.push_str(&text[done..]);
    Ok(out)
}

/// A value may refer to other arguments; Apptainer resolves them one level deep and leaves
/// unknown ones as they are (and does not count them as used).
fn expand_nested(
    value: &str,
    args: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    let mut done = 0;
    while let Some(p) = next_placeholder(value, done) {
        out.push_str(&value[done..p.start]);
        match args.get(p.name).or_else(|| defaults.get(p.name)) {
            Some(v) => out.push_str(v),
            None => out.push_str(&value[p.start..p.end]),
        }
        done = p.end;
    }
    out.push_str(&value[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_with_and_without_spaces() {
        let mut used = BTreeSet::new();
        let out = substitute(
            "From: {{img}}:{{ tag }}\n",
            1,
            &map(&[("img", "alpine")]),
            &map(&[("tag", "3")]),
            &mut used,
        )
        .unwrap();
        assert_eq!(out, "From: alpine:3\n");
        assert_eq!(used.len(), 2);
    }

    #[test]
    fn comment_lines_are_left_alone_but_shebangs_are_not() {
        let mut used = BTreeSet::new();
        let t = "# {{ a }}\n#!/bin/{{ sh }}\necho {{ a }} # {{ b }}\n";
        let out = substitute(
            t,
            1,
            &map(&[("a", "1"), ("sh", "bash")]),
            &BTreeMap::new(),
            &mut used,
        )
        .unwrap();
        assert_eq!(out, "# {{ a }}\n#!/bin/bash\necho 1 # {{ b }}\n");
    }

    #[test]
    fn undefined_argument_points_at_the_placeholder() {
        let e = substitute(
            "a\n  x {{ nope }}\n",
            10,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &mut BTreeSet::new(),
        )
        .unwrap_err();
        assert_eq!(e.location(), Some((11, 5)));
    }

    #[test]
    fn nested_values_resolve_one_level() {
        let mut used = BTreeSet::new();
        let d = map(&[("a", "{{ b }}-x"), ("b", "{{ c }}")]);
        let out = substitute("{{ a }}", 1, &BTreeMap::new(), &d, &mut used).unwrap();
        assert_eq!(out, "{{ c }}-x");
    }

    #[test]
    fn cli_beats_file() {
        let m = collect(
            &[("a".into(), "cli".into())],
            Some("a=file\nb = 2\n"),
            &mut Vec::new(),
        );
        assert_eq!(m, map(&[("a", "cli"), ("b", "2")]));
    }
}
