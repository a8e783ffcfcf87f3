//! Apptainer definition files: text to a typed [`Definition`]. Pure: no I/O, no printing.
//!
//! [`parse`] follows Apptainer's own order of work (its `build.MakeAllDefs`): split the file
//! into stages at each column-0 `Bootstrap:` line; for each stage read its `%arguments`
//! defaults, substitute `{{ name }}` placeholders, then parse the substituted text into a
//! header and sections; finally check across stages (`Stage:` names, `%files from`).
//!
//! Modules, one operation each: `lex` (lines and raw sections), `header` (keywords, agents),
//! `sections` (typed sections, joining repeats), `files` (`%files` lines), `args` (build
//! arguments and templating), `stages` (splitting and cross-stage checks), `model` (the
//! public data), `error` (the error type and hints).

mod args;
mod error;
mod files;
mod header;
mod lex;
mod model;
mod sections;
mod stages;

use std::collections::BTreeSet;

pub use args::parse_build_arg;
pub use error::{Error, Warning};
pub use header::Bootstrap;
pub use model::{
    App, ArgumentDefault, Definition, FilesEntry, FilesGroup, Header, Label, Script, Spanned, Stage,
};
pub use sections::is_valid_section;

/// What the caller knows besides the text: build arguments and how strict to be.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--build-arg name=value`, in command-line order (a later duplicate wins). See
    /// [`parse_build_arg`].
    pub build_args: Vec<(String, String)>,
    /// The text of the `--build-arg-file`; the command line beats it.
    pub build_arg_file: Option<String>,
    /// Report build arguments no stage uses in [`Definition::unused_build_args`] instead of
    /// failing with [`Error::UnusedBuildArgs`].
    pub warn_unused_build_args: bool,
    /// Accept `%files from X` when no earlier stage is named `X`. Apptainer's parser accepts
    /// this and only its build fails; set it to check a file the way that parser does.
    pub allow_unknown_stages: bool,
}

/// Parse a definition file given as bytes; it must be UTF-8 (a leading byte-order mark is
/// dropped).
pub fn parse_bytes(bytes: &[u8], opts: &Options) -> Result<Definition, Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, opts),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            // The prefix is valid UTF-8 by construction.
            let col = std::str::from_utf8(&good[line_start..]).map_or(1, |s| s.chars().count() + 1);
            Err(Error::NotUtf8 { line, col })
        }
    }
}

/// Parse a definition file.
pub fn parse(text: &str, opts: &Options) -> Result<Definition, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    reject_json(text)?;
    let mut warnings = Vec::new();
    let build_args = args::collect(
        &opts.build_args,
        opts.build_arg_file.as_deref(),
        &mut warnings,
    );
    let mut consumed = BTreeSet::new();
    let mut stages = Vec::new();
    let mut substituted = String::new();
    for (line, part) in stages::split(text) {
        let raw = lex::lex(part, line)?;
        if raw.is_blank() {
            continue;
        }
        let defaults = args::defaults(&raw, &mut Vec::new());
        let sub = args::substitute(part, line, &build_args, &defaults, &mut consumed)?;
        let lexed = lex::lex(&sub, line)?;
        let mut stage = sections::build_stage(&lexed, line, &mut warnings)?;
        if stage.header.is_empty() && lexed.sections.is_empty() {
            continue;
        }
        substituted.push_str(&sub);
        stage.substituted = sub;
        stages.push(stage);
    }
    if stages.is_empty() {
        return Err(Error::Empty { line: 1, col: 1 });
    }
    stages::check(&stages, opts.allow_unknown_stages, &mut warnings)?;
    let unused: Vec<String> = build_args
        .keys()
        .filter(|k| !consumed.contains(*k))
        .cloned()
        .collect();
    if !unused.is_empty() && !opts.warn_unused_build_args {
        return Err(Error::UnusedBuildArgs {
            line: 0,
            col: 0,
            names: unused,
        });
    }
    Ok(Definition {
        stages,
        raw: text.to_owned(),
        substituted,
        unused_build_args: unused,
        warnings,
    })
}

/// Apptainer's parser rejects JSON (an old remote-build form) only by accident; say so plainly.
fn reject_json(text: &str) -> Result<(), Error> {
    for l in lex::lines(text, 1) {
        let t = l.text.trim_start();
        if t.is_empty() {
            continue;
        }
        if let Some(start @ ('{' | '[')) = t.chars().next() {
            return Err(Error::JsonInput {
                line: l.no,
                col: lex::col_of(l.text, l.text.len() - t.len()),
                start,
            });
        }
        return Ok(());
    }
    Ok(())
}
