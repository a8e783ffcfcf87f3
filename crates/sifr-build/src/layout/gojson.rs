//! JSON text byte-identical to Go's `encoding/json`, which wrote the files we must match.
//!
//! Go escapes `<`, `>` and `&` (as `\u003c`, `\u003e`, `\u0026`), U+2028 and U+2029, writes
//! `\b \f \n \r \t` in short form and other control characters as `\u00XX` (lower-case hex),
//! sorts map keys, and `MarshalIndent` puts one member per line with the given indent and
//! `": "` after keys, writing an empty object as `{}`.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Append `s` as a Go-escaped JSON string literal.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON value with the shapes we need: strings and objects whose members keep the order
/// given (Go writes struct fields in declaration order and map keys sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// An object from a string map (keys sorted, as Go writes maps).
    pub(crate) fn map(m: &BTreeMap<String, String>) -> Value {
        Value::Obj(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
        )
    }

    /// `json.Marshal`: no whitespace.
    pub(crate) fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    /// `json.MarshalIndent(v, "", indent)`.
    pub(crate) fn indent(&self, indent: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(indent), 0);
        out
    }

    fn write(&self, out: &mut String, indent: Option<&str>, depth: usize) {
        match self {
            Value::Str(s) => string(out, s),
            Value::Obj(members) if members.is_empty() => out.push_str("{}"),
            Value::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Some(ind) = indent {
                        out.push('\n');
                        out.push_str(&ind.repeat(depth + 1));
                    }
                    string(out, k);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write(out, indent, depth + 1);
                }
                if let Some(ind) = indent {
                    out.push('\n');
                    out.push_str(&ind.repeat(depth));
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let mut s = String::new();
        string(&mut s, "a<b>&\"\\\n\t\u{1}\u{8}\u{c}\u{2028}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\t\u0001\b\f\u2028é""#);
    }

    #[test]
    fn indent_and_compact() {
        let mut m = BTreeMap::new();
        m.insert("b".to_owned(), "2".to_owned());
        m.insert("a".to_owned(), "1".to_owned());
        let v = Value::Obj(vec![
            ("x".to_owned(), Value::map(&m)),
            ("e".to_owned(), Value::Obj(vec![])),
        ]);
        assert_eq!(v.compact(), r#"{"x":{"a":"1","b":"2"},"e":{}}"#);
        assert_eq!(
            v.indent("\t"),
            "{\n\t\"x\": {\n\t\t\"a\": \"1\",\n\t\t\"b\": \"2\"\n\t},\n\t\"e\": {}\n}"
        );
    }
}
