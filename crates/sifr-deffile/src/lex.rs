//! Lexing: text to numbered lines, and lines to a header plus raw sections (`%name args` and
//! the body lines under it). Knows which lines start sections, not which sections are valid;
//! must not interpret header keywords or section bodies.

use crate::error::Error;

/// One line of the file without its line ending (`\n`, and a `\r` before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// 1-based line number in the whole file.
    pub no: usize,
    pub text: &'a str,
}

/// A `%section` header line and the lines under it.
#[derive(Debug, Clone)]
pub(crate) struct RawSection<'a> {
    /// Lower-cased name without the `%`.
    pub name: String,
    /// The name as written (for messages).
    pub written: &'a str,
    pub line: usize,
    /// Column of the `%`.
    pub col: usize,
    /// The rest of the header line after the name, trimmed.
    pub args: &'a str,
    /// Column where `args` starts.
    pub args_col: usize,
    pub body: Vec<Line<'a>>,
}

impl RawSection<'_> {
    /// The body as Apptainer stores it: every line followed by `\n`.
    pub fn body_text(&self) -> String {
        let mut s = String::new();
        for l in &self.body {
            s.push_str(l.text);
            s.push('\n');
        }
        s
    }
}

/// A stage's text split into its header lines and its sections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lexed<'a> {
    pub header: Vec<Line<'a>>,
    pub sections: Vec<RawSection<'a>>,
}

impl Lexed<'_> {
    /// Nothing but blank lines and `#` comments.
    pub fn is_blank(&self) -> bool {
        self.sections.is_empty() && self.header.iter().all(|l| is_blank_or_comment(l.text))
    }
}

pub(crate) fn is_blank_or_comment(text: &str) -> bool {
    let t = text.trim();
    t.is_empty() || t.starts_with('#')
}

/// Split `text` into lines numbered from `first_line`. Like Go's `bufio.ScanLines` (which
/// Apptainer uses): a final line without a newline counts, a trailing `\r` is dropped.
pub(crate) fn lines(text: &str, first_line: usize) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut no = first_line;
    while !rest.is_empty() {
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        out.push(Line {
            no,
            text: line.strip_suffix('\r').unwrap_or(line),
        });
        no += 1;
        rest = next;
    }
    out
}

/// 1-based column of byte offset `byte` in `line` (counted in characters).
pub(crate) fn col_of(line: &str, byte: usize) -> usize {
    line.get(..byte).map_or(byte, |p| p.chars().count()) + 1
}

/// Split a stage into header and sections. A section starts at a line whose first word begins
/// with `%` (Apptainer's rule, so `%post` anywhere in a script body starts a new section).
pub(crate) fn lex(text: &str, first_line: usize) -> Result<Lexed<'_>, Error> {
    let mut lexed = Lexed::default();
    let mut only_blank_so_far = true;
    for line in lines(text, first_line) {
        let trimmed = line.text.trim_start();
        if !trimmed.starts_with('%') {
            match lexed.sections.last_mut() {
                Some(s) => s.body.push(line),
                None => lexed.header.push(line),
            }
            if !trimmed.is_empty() {
                only_blank_so_far = false;
            }
            continue;
        }
        let indent = line.text.len() - trimmed.len();
        let word_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        let written = &trimmed[..word_end];
        let name = written.trim_start_matches('%').to_lowercase();
        // Apptainer only accepts an indented section header when nothing but blank lines comes
        // before it (it trims the first token); anywhere else the name it reads is empty and the
        // section is rejected. Rejecting it with a message that says why is kinder.
        if indent > 0 && !only_blank_so_far {
            return Err(Error::IndentedSection {
                line: line.no,
                col: col_of(line.text, indent),
                name,
            });
        }
        only_blank_so_far = false;
        let after = &trimmed[word_end..];
        let args = after.trim();
        let args_byte = indent + word_end + (after.len() - after.trim_start().len());
        lexed.sections.push(RawSection {
            name,
            written,
            line: line.no,
            col: col_of(line.text, indent),
            args,
            args_col: col_of(line.text, args_byte),
            body: Vec::new(),
        });
    }
    Ok(lexed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_missing_final_newline() {
        let l = lines("a\r\nb\n\nc", 1);
        let t: Vec<_> = l.iter().map(|l| (l.no, l.text)).collect();
        assert_eq!(t, vec![(1, "a"), (2, "b"), (3, ""), (4, "c")]);
    }

    #[test]
    fn sections_split_at_percent_lines() {
        let x = lex(
            "Bootstrap: docker\n%post -c /bin/bash\n  echo\n%runscript\n",
            1,
        )
        .unwrap();
        assert_eq!(x.header.len(), 1);
        assert_eq!(x.sections.len(), 2);
        assert_eq!(x.sections[0].args, "-c /bin/bash");
        assert_eq!(x.sections[0].args_col, 7);
        assert_eq!(x.sections[0].body_text(), "  echo\n");
    }

    #[test]
    fn indented_section_after_content_is_an_error() {
        let e = lex("Bootstrap: docker\n  %post\n", 1).unwrap_err();
        assert!(matches!(
            e,
            Error::IndentedSection {
                line: 2,
                col: 3,
                ..
            }
        ));
        assert!(lex("\n  %post\necho\n", 1).is_ok());
    }
}
