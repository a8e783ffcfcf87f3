//! Sections: raw `%name args` blocks into a [`Stage`]'s typed fields. Repeated sections are
//! joined as Apptainer joins them; `%labels`, `%arguments`, `%files` bodies are split into
//! items. Must not look at other stages (stages.rs) or substitute build arguments (args.rs).

use crate::error::{Error, Warning, closest};
use crate::files;
use crate::header;
use crate::lex::{Lexed, Line, RawSection, col_of};
use crate::model::{App, ArgumentDefault, FilesGroup, Label, Script, Stage};

/// Sections of a stage, with a one-line note on when each runs.
const SECTIONS: &[(&str, &str)] = &[
    ("arguments", "build-argument defaults, read before parsing"),
    ("help", "text for `run-help`"),
    ("pre", "host, before bootstrap (legacy)"),
    ("setup", "host, after bootstrap"),
    ("files", "copies into the root filesystem"),
    ("post", "inside the container at build time"),
    ("environment", "sourced at run time"),
    ("runscript", "the `run` command"),
    ("startscript", "the `instance start` command"),
    ("test", "end of the build, and `test`"),
    ("labels", "image labels"),
];

/// SCIF app sections (`%appinstall NAME` ...).
const APP_SECTIONS: &[&str] = &[
    "appinstall",
    "appfiles",
    "apprun",
    "appstart",
    "apptest",
    "appenv",
    "apphelp",
    "applabels",
];

pub(crate) const SECTIONS_DISPLAY: &str = "`%arguments`, `%help`, `%pre`, `%setup`, `%files`, \
    `%post`, `%environment`, `%runscript`, `%startscript`, `%test`, `%labels`, and the app \
    sections `%appinstall`, `%appfiles`, `%apprun`, `%appstart`, `%apptest`, `%appenv`, \
    `%apphelp`, `%applabels`";

/// Whether `name` (lower-case, without `%`) is a section Apptainer knows.
pub fn is_valid_section(name: &str) -> bool {
    SECTIONS.iter().any(|s| s.0 == name) || APP_SECTIONS.contains(&name)
}

/// Build a stage from its lexed text. `line` is the stage's first line in the file.
pub(crate) fn build_stage(
    lexed: &Lexed<'_>,
    line: usize,
    warnings: &mut Vec<Warning>,
) -> Result<Stage, Error> {
    let header = header::parse(&lexed.header, warnings)?;
    let mut stage = Stage {
        line,
        header,
        arguments: Vec::new(),
        help: None,
        pre: None,
        setup: None,
        files: Vec::new(),
        post: None,
        environment: None,
        runscript: None,
        startscript: None,
        test: None,
        labels: Vec::new(),
        apps: Vec::new(),
        substituted: String::new(),
    };
    for sec in &lexed.sections {
        add_section(&mut stage, sec, warnings)?;
    }
    Ok(stage)
}

fn add_section(
    stage: &mut Stage,
    sec: &RawSection<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<(), Error> {
    if APP_SECTIONS.contains(&sec.name.as_str()) {
        return add_app_section(stage, sec, warnings);
    }
    let slot = match sec.name.as_str() {
        "files" => {
            let from = files::parse_args(sec.args, sec.line, sec.args_col)?;
            let mut entries = Vec::new();
            for l in &sec.body {
                entries.extend(files::parse_line(l, warnings)?);
            }
            // Groups with the same source are merged; different sources stay apart.
            match stage.files.iter_mut().find(|g| g.from == from) {
                Some(g) => g.entries.extend(entries),
                None => stage.files.push(FilesGroup {
                    from,
                    line: sec.line,
                    entries,
                }),
            }
            return Ok(());
        }
        "labels" => {
            add_labels(&mut stage.labels, &sec.body);
            return Ok(());
        }
        "arguments" => {
            stage
                .arguments
                .extend(argument_defaults(&sec.body, warnings));
            return Ok(());
        }
        "help" => &mut stage.help,
        "pre" => &mut stage.pre,
        "setup" => &mut stage.setup,
        "post" => &mut stage.post,
        "environment" => &mut stage.environment,
        "runscript" => &mut stage.runscript,
        "startscript" => &mut stage.startscript,
        "test" => &mut stage.test,
        _ => {
            let all = SECTIONS
                .iter()
                .map(|s| s.0)
                .chain(APP_SECTIONS.iter().copied());
            return Err(Error::UnknownSection {
                line: sec.line,
                col: sec.col,
                name: sec.written.trim_start_matches('%').to_owned(),
                suggestion: closest(&sec.name, all),
            });
        }
    };
    append_script(slot, sec, sec.args);
    Ok(())
}

/// Join a repeated script section: bodies are concatenated; the arguments of the last header
/// that has any win (Apptainer's behaviour).
fn append_script(slot: &mut Option<Script>, sec: &RawSection<'_>, args: &str) {
    let body = sec.body_text();
    match slot {
        Some(s) => {
            s.body.push_str(&body);
            if !args.is_empty() {
                s.args = args.to_owned();
            }
        }
        None => {
            *slot = Some(Script {
                args: args.to_owned(),
                body,
                line: sec.line,
            });
        }
    }
}

fn add_app_section(
    stage: &mut Stage,
    sec: &RawSection<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<(), Error> {
    let mut words = sec.args.splitn(2, char::is_whitespace);
    let name = words.next().unwrap_or("").split('#').next().unwrap_or("");
    if name.is_empty() {
        return Err(Error::MissingAppName {
            line: sec.line,
            col: sec.col,
            section: sec.name.clone(),
        });
    }
    let rest = words.next().unwrap_or("").trim();
    let idx = match stage.apps.iter().position(|a| a.name == name) {
        Some(i) => i,
        None => {
            stage.apps.push(App {
                name: name.to_owned(),
                line: sec.line,
                install: None,
                run: None,
                start: None,
                test: None,
                env: None,
                help: None,
                labels: Vec::new(),
                files: Vec::new(),
            });
            stage.apps.len() - 1
        }
    };
    let app = &mut stage.apps[idx];
    let slot = match sec.name.as_str() {
        "appfiles" => {
            for l in &sec.body {
                app.files.extend(files::parse_line(l, warnings)?);
            }
            return Ok(());
        }
        "applabels" => {
            add_labels(&mut app.labels, &sec.body);
            return Ok(());
        }
        "appinstall" => &mut app.install,
        "apprun" => &mut app.run,
        "appstart" => &mut app.start,
        "apptest" => &mut app.test,
        "appenv" => &mut app.env,
        _ => &mut app.help,
    };
    append_script(slot, sec, rest);
    Ok(())
}

/// `KEY value` lines; the key ends at the first blank. A repeated key keeps its first place and
/// takes the new value.
/// Linear in the number of labels (an index of the keys seen), so a generated `%labels` of a
/// million lines parses in about a second.
fn add_labels(labels: &mut Vec<Label>, body: &[Line<'_>]) {
    let mut index: std::collections::HashMap<String, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, x)| (x.key.clone(), i))
        .collect();
    for l in body {
        let t = l.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (key, value) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let value = value.trim().to_owned();
        match index.get(key) {
            Some(&i) => labels[i].value = value,
            None => {
                index.insert(key.to_owned(), labels.len());
                labels.push(Label {
                    key: key.to_owned(),
                    value,
                    line: l.no,
                });
            }
        }
    }
}

/// `%arguments` lines: `NAME=value`; blank and `#` lines skipped. Apptainer skips a line that
/// is not `NAME=value` with a warning, and so does this.
pub(crate) fn argument_defaults(
    body: &[Line<'_>],
    warnings: &mut Vec<Warning>,
) -> Vec<ArgumentDefault> {
    let mut out = Vec::new();
    for l in body {
        let t = l.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => out.push(ArgumentDefault {
                name: k.trim().to_owned(),
                value: v.trim().to_owned(),
                line: l.no,
            }),
            _ => warnings.push(Warning {
                line: l.no,
                col: col_of(l.text, l.text.len() - l.text.trim_start().len()),
                message: format!("`%arguments` line `{t}` is not `NAME=value`; it is ignored"),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::lex;

    fn stage(text: &str) -> Result<Stage, Error> {
        build_stage(&lex(text, 1)?, 1, &mut Vec::new())
    }

    #[test]
    fn repeated_scripts_are_concatenated_and_last_args_win() {
        let s = stage("Bootstrap: scratch\n%post\na\n%post -c /bin/bash\nb\n").unwrap();
        let p = s.post.unwrap();
        assert_eq!(p.body, "a\nb\n");
        assert_eq!(p.args, "-c /bin/bash");
        assert_eq!(p.line, 2);
    }

    #[test]
    fn unknown_section_suggests_closest() {
        let e = stage("Bootstrap: scratch\n%enviroment\nA=1\n").unwrap_err();
        assert_eq!(e.hint().unwrap(), "did you mean `%environment`?");
        assert_eq!(e.location(), Some((2, 1)));
    }

    #[test]
    fn apps_keep_first_seen_order() {
        let s = stage("%apprun b\nx\n%appinstall a\ny\n%appinstall b\nz\n").unwrap();
        let names: Vec<_> = s.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn labels_keep_order_and_last_value() {
        let s = stage("%labels\nB 1\nA two words\nB 3\n").unwrap();
        let l: Vec<_> = s
            .labels
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(l, [("B", "3"), ("A", "two words")]);
    }

    /// Issue 24: `%labels` parsing was quadratic (50 000 labels took 5 s in a release build,
    /// 200 000 over a minute). 200 000 distinct labels, then each again with a new value, must
    /// parse in a small fraction of that even in a debug build; the bound is wide, so only
    /// quadratic work can miss it.
    #[test]
    fn many_labels_parse_in_linear_time() {
        let n = 200_000;
        let mut text = String::from("%labels\n");
        for round in 0..2 {
            for i in 0..n {
                text.push_str(&format!("key{i} value{round}\n"));
            }
        }
        let t0 = std::time::Instant::now();
        let s = stage(&text).unwrap();
        let took = t0.elapsed();
        assert_eq!(s.labels.len(), n);
        assert_eq!(s.labels[n - 1].value, "value1");
        assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    }
}
