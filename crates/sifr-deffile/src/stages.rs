//! Stages: splitting a file at each column-0 `Bootstrap:` line, and the checks across stages
//! (unique `Stage:` names, `%files from` naming an earlier stage). Must not parse a stage's
//! content (sections.rs) or substitute arguments (args.rs).

use crate::error::{Error, Warning};
use crate::model::Stage;

/// The parts of `text` that start at each line beginning with `bootstrap:` (any case, column
/// 0), with the 1-based line each starts on. Text before the first such line is the first part
/// (it is dropped later if it holds nothing).
pub(crate) fn split(text: &str) -> Vec<(usize, &str)> {
    let mut starts = vec![(1usize, 0usize)];
    let mut at = 0;
    for (line, l) in (1..).zip(text.split_inclusive('\n')) {
        if at > 0
            && l.get(..10)
                .is_some_and(|p| p.eq_ignore_ascii_case("bootstrap:"))
        {
            starts.push((line, at));
        }
        at += l.len();
    }
    let mut out = Vec::with_capacity(starts.len());
    for (i, &(line, begin)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |s| s.1);
        out.push((line, &text[begin..end]));
    }
    out
}

/// Every `%files from X` names a stage built before. A stage name used twice is accepted, as
/// Apptainer accepts it (`%files from` then finds the first stage of that name), with a warning:
/// refusing it would reject files Apptainer builds.
pub(crate) fn check(
    stages: &[Stage],
    allow_unknown: bool,
    warnings: &mut Vec<Warning>,
) -> Result<(), Error> {
    for (i, s) in stages.iter().enumerate() {
        if let Some(name) = &s.header.stage
            && let Some(first) = stages[..i]
                .iter()
                .filter_map(|p| p.header.stage.as_ref())
                .find(|n| n.value == name.value)
        {
            warnings.push(Warning {
                line: name.line,
                col: name.col,
                message: format!(
                    "stage name `{}` is also used at line {}; `%files from {}` copies from that first stage",
                    name.value, first.line, name.value
                ),
            });
        }
        if allow_unknown {
            continue;
        }
        for g in &s.files {
            let Some(from) = &g.from else { continue };
            let earlier: Vec<String> = stages[..i]
                .iter()
                .filter_map(|p| p.name().map(str::to_owned))
                .collect();
            if earlier.contains(from) {
                continue;
            }
            let defined_later_at = stages[i..]
                .iter()
                .filter_map(|p| p.header.stage.as_ref())
                .find(|n| &n.value == from)
                .map(|n| n.line);
            return Err(Error::UnknownStage {
                line: g.line,
                // `%files from ` is 12 characters; the name follows.
                col: 12,
                stage: from.clone(),
                earlier,
                defined_later_at,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_column_zero_bootstrap_any_case() {
        let t = "# pre\nBootstrap: a\nx\n  Bootstrap: no\nbootstrap: b\n";
        let parts = split(t);
        let lines: Vec<_> = parts.iter().map(|p| p.0).collect();
        assert_eq!(lines, [1, 2, 5]);
        assert_eq!(parts[2].1, "bootstrap: b\n");
    }
}
