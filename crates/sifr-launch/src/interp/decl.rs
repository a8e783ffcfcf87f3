//! Corrections to brush-builtins' declaration builtins (`export`, `declare`, `typeset`,
//! `local`, `readonly`), found by the differential test against bash
//! (`tests/env_bash.rs`):
//!
//! - an argument that is `NAME=VALUE` only after expansion (`export "$name=$value"`,
//!   `export "A=1"`, `local "$v=x"`) is an assignment in bash; brush takes the whole text as
//!   a name and assigns nothing;
//! - `export NAME+=VALUE` appends to the value in bash; brush's `export` replaces it;
//! - `export NAME` of a name not set yet marks it, so that a later `NAME=value` is exported;
//!   brush's `export` forgets it.
//!
//! Each such argument is rewritten into the assignment bash makes of it, then brush's own
//! builtin runs.

use brush_core::parser::ast;
use brush_core::{CommandArg, ExecutionContext};

use super::Ext;
use super::builtins::{Run, delegate};

macro_rules! corrected {
    ($f:ident, $name:literal) => {
        pub(super) fn $f(context: ExecutionContext<'_, Ext>, args: Vec<CommandArg>) -> Run<'_> {
            run($name, context, args)
        }
    };
}
corrected!(export, "export");
corrected!(declare, "declare");
corrected!(typeset, "typeset");
corrected!(local, "local");
corrected!(readonly, "readonly");

fn run<'a>(name: &str, context: ExecutionContext<'a, Ext>, args: Vec<CommandArg>) -> Run<'a> {
    let options = args
        .iter()
        .skip(1)
        .any(|a| matches!(a, CommandArg::String(s) if s.starts_with('-') || s.starts_with('+')));
    if name == "export" && !options {
        // A name not set yet: an unset variable with the export attribute, as bash keeps it.
        for a in args.iter().skip(1) {
            if let CommandArg::String(s) = a
                && is_name(s)
                && context.shell.env().get(s.as_str()).is_none()
            {
                let mut var = brush_core::ShellVariable::new(brush_core::ShellValue::Unset(
                    brush_core::variables::ShellValueUnsetType::Untyped,
                ));
                var.export();
                let _ = context.shell.env_mut().set_global(s.as_str(), var);
            }
        }
    }
    let args = args
        .into_iter()
        .enumerate()
        .map(|(i, a)| if i == 0 { a } else { fix(name, &context, a) })
        .collect();
    delegate(name, context, args)
}

/// `NAME=VALUE` or `NAME+=VALUE` as bash splits a declaration argument; `None` for a name,
/// an option, or an array element.
fn split_assignment(s: &str) -> Option<(&str, bool, &str)> {
    let eq = s.find('=')?;
    let (name, append) = match s[..eq].strip_suffix('+') {
        Some(n) => (n, true),
        None => (&s[..eq], false),
    };
    is_name(name).then_some((name, append, &s[eq + 1..]))
}

/// A shell variable name: a letter or `_`, then letters, digits and `_`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn fix(builtin: &str, context: &ExecutionContext<'_, Ext>, arg: CommandArg) -> CommandArg {
    match arg {
        CommandArg::String(s) => match split_assignment(&s) {
            Some((name, append, value)) => {
                let a = ast::Assignment {
                    name: ast::AssignmentName::VariableName(name.to_string()),
                    value: ast::AssignmentValue::Scalar(ast::Word::from(value.to_string())),
                    append,
                    loc: brush_core::SourceSpan::default(),
                };
                fix(builtin, context, CommandArg::Assignment(a))
            }
            None => CommandArg::String(s),
        },
        // brush's `export` ignores `+=`: append to the scalar value it has now.
        CommandArg::Assignment(mut a) if builtin == "export" && a.append => {
            if let (ast::AssignmentName::VariableName(name), ast::AssignmentValue::Scalar(w)) =
                (&a.name, &mut a.value)
            {
                if let Some((_, var)) = context.shell.env().get(name)
                    && !var.value().is_array()
                    && var.value().is_set()
                {
                    let old = var.value().to_cow_str(context.shell).into_owned();
                    *w = ast::Word::from(format!("{old}{}", w.flatten()));
                }
                a.append = false;
            }
            CommandArg::Assignment(a)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::split_assignment;

    #[test]
    fn declaration_arguments_split_as_bash_splits_them() {
        assert_eq!(split_assignment("A=1"), Some(("A", false, "1")));
        assert_eq!(split_assignment("PATH+=:/x"), Some(("PATH", true, ":/x")));
        assert_eq!(split_assignment("_a1=b=c"), Some(("_a1", false, "b=c")));
        assert_eq!(split_assignment("E="), Some(("E", false, "")));
        assert_eq!(split_assignment("a[1]=x"), None);
        assert_eq!(split_assignment("1A=x"), None);
        assert_eq!(split_assignment("=x"), None);
        assert_eq!(split_assignment("-x"), None);
        assert_eq!(split_assignment("NAME"), None);
    }
}
