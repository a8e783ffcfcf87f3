//! `%files` (and `%appfiles`) content: the `from <stage>` argument and `src [dst]` lines with
//! their quoting. Must not check whether the stage exists (stages.rs does) or touch paths.

use crate::error::{Error, Warning};
use crate::lex::{Line, col_of};
use crate::model::FilesEntry;

/// The source stage named by a `%files` header's arguments: `None` for host copies.
/// Apptainer drops a `# comment` and reads `from <stage>`.
pub(crate) fn parse_args(args: &str, line: usize, col: usize) -> Result<Option<String>, Error> {
    let clean = args.split('#').next().unwrap_or("");
    let words: Vec<&str> = clean.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(None),
        ["from", stage] => Ok(Some((*stage).to_owned())),
        _ => Err(Error::InvalidFilesArgs {
            line,
            col,
            args: args.to_owned(),
        }),
    }
}

/// One line of a `%files` body; `None` for blank and `#` comment lines.
pub(crate) fn parse_line(
    line: &Line<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<FilesEntry>, Error> {
    let trimmed = line.text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let indent = line.text.len() - line.text.trim_start().len();
    let words = split_words(trimmed).map_err(|at| Error::UnterminatedQuote {
        line: line.no,
        col: col_of(line.text, indent + at),
        text: trimmed.to_owned(),
    })?;
    let mut words = words.into_iter();
    let Some((_, src)) = words.next() else {
        return Ok(None);
    };
    let dst = words.next().map(|(_, d)| d).filter(|d| !d.is_empty());
    // Apptainer ignores anything after the destination; say so unless it is a comment.
    if let Some((at, extra)) = words.next()
        && !trimmed[at..].starts_with('#')
    {
        warnings.push(Warning {
            line: line.no,
            col: col_of(line.text, indent + at),
            message: format!("`%files` line has more than a source and a destination; `{extra}` and what follows is ignored"),
        });
    }
    Ok(Some(FilesEntry {
        src,
        dst,
        line: line.no,
    }))
}

/// Split at whitespace outside quotes; quotes are removed, `{{ arg }}` stays one word. Returns
/// each word with the byte offset where it starts, or the offset of an unterminated quote.
fn split_words(s: &str) -> Result<Vec<(usize, String)>, usize> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, _)) = chars.peek() {
        let mut word = String::new();
        let mut in_word = false;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            in_word = true;
            chars.next();
            match c {
                '"' | '\'' => {
                    let mut closed = false;
                    for (_, q) in chars.by_ref() {
                        if q == c {
                            closed = true;
                            break;
                        }
                        word.push(q);
                    }
                    if !closed {
                        return Err(i);
                    }
                }
                '{' if s[i..].starts_with("{{") => {
                    let end = s[i..].find("}}").map_or(s.len(), |e| i + e + 2);
                    word.push_str(&s[i..end]);
                    while chars.peek().is_some_and(|&(j, _)| j < end) {
                        chars.next();
                    }
                }
                _ => word.push(c),
            }
        }
        if in_word {
            out.push((start, word));
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Option<FilesEntry> {
        parse_line(&Line { no: 3, text }, &mut Vec::new()).unwrap()
    }

    #[test]
    fn quoted_paths_keep_their_spaces() {
        let e = entry(r#"  "file 1" "with space 1""#).unwrap();
        assert_eq!(e.src, "file 1");
        assert_eq!(e.dst.as_deref(), Some("with space 1"));
        let e = entry("'a b' c").unwrap();
        assert_eq!((e.src.as_str(), e.dst.as_deref()), ("a b", Some("c")));
    }

    #[test]
    fn a_lone_source_has_no_destination() {
        assert_eq!(entry("  file2").unwrap().dst, None);
        assert_eq!(entry("# comment"), None);
    }

    #[test]
    fn unterminated_quote_is_reported_at_the_quote() {
        let e = parse_line(
            &Line {
                no: 3,
                text: "  a \"b",
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.location(), Some((3, 5)));
    }

    #[test]
    fn files_args() {
        assert_eq!(parse_args("", 1, 1).unwrap(), None);
        assert_eq!(
            parse_args("from build # x", 1, 1).unwrap().as_deref(),
            Some("build")
        );
        assert!(matches!(
            parse_args("form build", 1, 1),
            Err(Error::InvalidFilesArgs { line: 1, col: 1, ref args }) if args == "form build"
        ));
    }
}
