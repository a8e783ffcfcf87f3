//! `build --json`: a definition given in Apptainer's JSON form (its `types.Definition`, as
//! Apptainer's parser and `NewDefinitionFromJSON` read and write it) turned into definition
//! text, which then builds like any definition file.
//!
//! The JSON's `fullraw` (the original file, base64) is used when present, as Apptainer uses it
//! for the stored definition; otherwise the text is written from the fields the way
//! Apptainer's `populateRaw` writes them (header with `bootstrap` first, `%labels`, `%files`,
//! then the scripts), with the header keys and labels sorted so the result does not depend on
//! map order, and the SCIF app sections (`customData`) added in `appOrder`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonDefinition {
    header: BTreeMap<String, String>,
    #[serde(rename = "imageData")]
    image_data: ImageData,
    #[serde(rename = "buildData")]
    build_data: BuildData,
    #[serde(rename = "customData")]
    custom_data: Option<BTreeMap<String, String>>,
    fullraw: Option<String>,
    #[serde(rename = "appOrder")]
    app_order: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ImageData {
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "imageScripts")]
    scripts: ImageScripts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ImageScripts {
    help: Script,
    environment: Script,
    #[serde(rename = "runScript")]
    runscript: Script,
    test: Script,
    #[serde(rename = "startScript")]
    startscript: Script,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BuildData {
    files: Option<Vec<Files>>,
    #[serde(rename = "buildScripts")]
    scripts: BuildScripts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BuildScripts {
    pre: Script,
    setup: Script,
    post: Script,
    arguments: Script,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Files {
    args: String,
    files: Option<Vec<FileTransport>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileTransport {
    source: String,
    destination: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Script {
    args: String,
    script: String,
}

/// A JSON definition that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonDefError {
    #[error("invalid JSON definition")]
    Json(#[from] serde_json::Error),
    #[error("invalid JSON definition: `fullraw` is not base64")]
    Base64,
    #[error("invalid JSON definition: `fullraw` is not UTF-8 text")]
    NotText,
    #[error("invalid JSON definition: no `bootstrap` in `header`")]
    NoBootstrap,
}

/// The definition text of an Apptainer JSON definition.
pub fn to_definition_text(json: &str) -> Result<String, JsonDefError> {
    let d: JsonDefinition = serde_json::from_str(json)?;
    if let Some(raw) = d.fullraw.as_deref().filter(|r| !r.is_empty()) {
        let bytes = decode_base64(raw).ok_or(JsonDefError::Base64)?;
        return String::from_utf8(bytes).map_err(|_| JsonDefError::NotText);
    }
    let bootstrap = d.header.get("bootstrap").ok_or(JsonDefError::NoBootstrap)?;
    let mut out = String::new();
    let _ = writeln!(out, "bootstrap: {bootstrap}");
    for (k, v) in d.header.iter().filter(|(k, _)| *k != "bootstrap") {
        let _ = writeln!(out, "{k}: {v}");
    }
    out.push('\n');
    if let Some(labels) = d.image_data.labels.as_ref().filter(|l| !l.is_empty()) {
        out.push_str("%labels\n");
        for (k, v) in labels {
            let _ = writeln!(out, "\t{k} {v}");
        }
        out.push('\n');
    }
    for f in d.build_data.files.iter().flatten() {
        let Some(files) = f.files.as_ref().filter(|f| !f.is_empty()) else {
            continue;
        };
        out.push_str("%files");
        if !f.args.is_empty() {
            let _ = write!(out, " {}", f.args);
        }
        out.push('\n');
        for t in files {
            let _ = writeln!(out, "\t{}\t{}", t.source, t.destination);
        }
        out.push('\n');
    }
    let i = &d.image_data.scripts;
    let b = &d.build_data.scripts;
    for (name, s) in [
        ("help", &i.help),
        ("environment", &i.environment),
        ("runscript", &i.runscript),
        ("test", &i.test),
        ("startscript", &i.startscript),
        ("pre", &b.pre),
        ("setup", &b.setup),
        ("post", &b.post),
        ("arguments", &b.arguments),
    ] {
        section(&mut out, name, &s.args, &s.script);
    }
    if let Some(custom) = &d.custom_data {
        // appOrder names the apps; their sections follow in Apptainer's app-section order.
        let mut keys: Vec<&String> = Vec::new();
        for app in d.app_order.iter().flatten() {
            keys.extend(custom.keys().filter(|k| k.split(' ').nth(1) == Some(app)));
        }
        keys.extend(
            custom
                .keys()
                .filter(|k| !keys.contains(k))
                .collect::<Vec<_>>(),
        );
        for k in keys {
            section(&mut out, k, "", &custom[k]);
        }
    }
    Ok(out)
}

fn section(out: &mut String, name: &str, args: &str, script: &str) {
    if script.is_empty() {
        return;
    }
    let _ = write!(out, "%{name}");
    if !args.is_empty() {
        let _ = write!(out, " {args}");
    }
    let _ = write!(out, "\n{script}\n\n");
}

/// Standard base64 (Go's `[]byte` JSON encoding), padding optional, whitespace ignored.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_a_definition_that_parses() {
        let json = r#"{
            "header": {"from": "alpine:3", "bootstrap": "docker"},
            "imageData": {"labels": {"Author": "me"},
                "imageScripts": {"runScript": {"args": "", "script": "exec echo hi"},
                                 "help": {"args": "", "script": ""}}},
            "buildData": {"files": [{"args": "", "files": [{"source": "a.txt", "destination": "/opt"}]}],
                "buildScripts": {"post": {"args": "-c /bin/bash", "script": "echo post"}}},
            "customData": {"appinstall foo": "echo foo"},
            "appOrder": ["foo"]
        }"#;
        let text = to_definition_text(json).unwrap();
        assert!(
            text.starts_with("bootstrap: docker\nfrom: alpine:3\n\n"),
            "{text}"
        );
        assert!(text.contains("%labels\n\tAuthor me\n"), "{text}");
        assert!(text.contains("%files\n\ta.txt\t/opt\n"), "{text}");
        assert!(text.contains("%runscript\nexec echo hi\n"), "{text}");
        assert!(text.contains("%post -c /bin/bash\necho post\n"), "{text}");
        assert!(text.contains("%appinstall foo\necho foo\n"), "{text}");
        assert!(!text.contains("%help"), "{text}");
        let def = sifr_deffile::parse(&text, &sifr_deffile::Options::default()).unwrap();
        let s = &def.stages[0];
        assert_eq!(s.header.from.as_ref().unwrap().value, "alpine:3");
        assert_eq!(s.labels[0].key, "Author");
        assert_eq!(s.post.as_ref().unwrap().args, "-c /bin/bash");
        assert_eq!(s.apps[0].name, "foo");
    }

    #[test]
    fn fullraw_is_the_original_text() {
        // base64 of "Bootstrap: scratch\n"
        let json =
            r#"{"header": {"bootstrap": "docker"}, "fullraw": "Qm9vdHN0cmFwOiBzY3JhdGNoCg=="}"#;
        assert_eq!(to_definition_text(json).unwrap(), "Bootstrap: scratch\n");
    }

    #[test]
    fn bad_json_is_refused() {
        assert!(matches!(
            to_definition_text("Bootstrap: docker"),
            Err(JsonDefError::Json(_))
        ));
        assert!(matches!(
            to_definition_text(r#"{"header": {}}"#),
            Err(JsonDefError::NoBootstrap)
        ));
    }
}
