//! `command -v NAME` as bash answers it: a function or a reserved word prints its name, an
//! alias prints its definition; anything else (builtins, programs on `PATH`) is brush-builtins'
//! own answer. brush's `command -v` only knows builtins and programs, so
//! `if command -v module >/dev/null; then ...` in an environment script took the wrong branch
//! after a `module` function was defined. Found by the differential test
//! (`tests/env_corpus/82-command-v-function.sh`).

use std::io::Write as _;

use brush_core::{CommandArg, ExecutionContext, ExecutionResult};

use super::Ext;
use super::builtins::{Run, delegate};

pub(super) fn command(context: ExecutionContext<'_, Ext>, args: Vec<CommandArg>) -> Run<'_> {
    // Only the plain `command -v NAME` form; every other form is brush's.
    let name = match args.as_slice() {
        [_, CommandArg::String(v), CommandArg::String(name)] if v == "-v" => name.clone(),
        _ => return delegate("command", context, args),
    };
    let answer = if context.shell.funcs().get(name.as_str()).is_some()
        || context.shell.is_keyword(name.as_str())
    {
        Some(name.clone())
    } else if context.shell.options().expand_aliases {
        // bash reports an alias only where aliases are expanded (`shopt expand_aliases`, off
        // in a script unless turned on).
        context
            .shell
            .aliases()
            .get(name.as_str())
            .map(|value| format!("alias {name}='{}'", value.replace('\'', r"'\''")))
    } else {
        None
    };
    match answer {
        Some(line) => Box::pin(async move {
            writeln!(context.stdout(), "{line}")?;
            Ok(ExecutionResult::success())
        }),
        None => delegate("command", context, args),
    }
}
