//! `source`/`.` with bash's PATH search: a name without a slash is looked up in `PATH` first
//! (`shopt sourcepath`, on by default), then in the working directory. brush-builtins' `source`
//! only opens it relative to the working directory, which breaks conda's legacy
//! `source activate ENV` (its `activate` lives in the `bin` directory on `PATH`). Found by the
//! differential test (`tests/env_corpus/92-source-path-search.sh`).

use brush_core::{CommandArg, ExecutionContext};

use super::Ext;
use super::builtins::{Run, delegate};

pub(super) fn source(context: ExecutionContext<'_, Ext>, args: Vec<CommandArg>) -> Run<'_> {
    run("source", context, args)
}

pub(super) fn dot(context: ExecutionContext<'_, Ext>, args: Vec<CommandArg>) -> Run<'_> {
    run(".", context, args)
}

fn run<'a>(name: &str, context: ExecutionContext<'a, Ext>, mut args: Vec<CommandArg>) -> Run<'a> {
    let at = match args.get(1) {
        Some(CommandArg::String(s)) if s == "--" => 2,
        _ => 1,
    };
    if context.shell.options().source_builtin_searches_path
        && let Some(CommandArg::String(file)) = args.get(at)
        && !file.contains('/')
        && !file.is_empty()
    {
        let path = context
            .shell
            .env_str("PATH")
            .map(|p| p.into_owned())
            .unwrap_or_default();
        if let Some(found) = search(&path, file) {
            args[at] = CommandArg::String(found);
        }
    }
    delegate(name, context, args)
}

/// The first `DIR/file` of `path` that is a regular file (bash does not need it executable);
/// an empty entry is the working directory, which brush's own lookup covers.
fn search(path: &str, file: &str) -> Option<String> {
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{file}", d.trim_end_matches('/')))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_regular_file_on_path_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(a.path().join("activate")).unwrap();
        std::fs::write(b.path().join("activate"), "").unwrap();
        let path = format!("{}::{}", a.path().display(), b.path().display());
        assert_eq!(
            super::search(&path, "activate"),
            Some(format!("{}/activate", b.path().display()))
        );
        assert_eq!(super::search(&path, "none"), None);
    }
}
