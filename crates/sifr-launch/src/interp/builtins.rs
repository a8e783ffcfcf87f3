//! The builtins of a session: brush-builtins' bash set, with sifr's corrections in place of
//! brush's own execution for the names the differential test found wrong (`decl`: the
//! declaration builtins, `dot`: `source`/`.`, `command`: `command -v`). A correction rewrites
//! its arguments or answers itself, then [`delegate`]s to brush's own execution.

use std::collections::HashMap;
use std::sync::OnceLock;

use brush_core::builtins::{BoxFuture, CommandExecuteFunc, Registration};
use brush_core::{CommandArg, ExecutionContext, ExecutionResult};

use super::{Ext, command, decl, dot};

/// What a builtin's execution returns.
pub(super) type Run<'a> = BoxFuture<'a, Result<ExecutionResult, brush_core::Error>>;

/// The names sifr corrects, with its execution of each.
const CORRECTED: &[(&str, CommandExecuteFunc<Ext>)] = &[
    ("export", decl::export),
    ("declare", decl::declare),
    ("typeset", decl::typeset),
    ("local", decl::local),
    ("readonly", decl::readonly),
    ("source", dot::source),
    (".", dot::dot),
    ("command", command::command),
];

/// Every builtin of a session, the corrected ones included.
pub(super) fn table() -> HashMap<String, Registration<Ext>> {
    let mut all = brush_builtins::default_builtins::<Ext>(brush_builtins::BuiltinSet::BashMode);
    for (name, f) in CORRECTED {
        if let Some(reg) = all.get_mut(*name) {
            reg.execute_func = *f;
        }
    }
    all
}

/// Run brush's own execution of `name` (the table is built once per process: `local` runs on
/// every call of a function that declares locals).
pub(super) fn delegate<'a>(
    name: &str,
    context: ExecutionContext<'a, Ext>,
    args: Vec<CommandArg>,
) -> Run<'a> {
    static ORIGINALS: OnceLock<HashMap<String, CommandExecuteFunc<Ext>>> = OnceLock::new();
    let original = ORIGINALS
        .get_or_init(|| {
            brush_builtins::default_builtins::<Ext>(brush_builtins::BuiltinSet::BashMode)
                .into_iter()
                .map(|(n, r)| (n, r.execute_func))
                .collect()
        })
        .get(name)
        .copied();
    match original {
        Some(f) => f(context, args),
        None => Box::pin(async { Ok(ExecutionResult::general_error()) }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_corrected_name_is_a_brush_builtin() {
        let all =
            brush_builtins::default_builtins::<super::Ext>(brush_builtins::BuiltinSet::BashMode);
        for (name, _) in super::CORRECTED {
            assert!(all.contains_key(*name), "{name}");
        }
    }
}
