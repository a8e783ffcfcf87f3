//! `inspect-metadata.json`: what `apptainer inspect --all --json` reports for a root filesystem,
//! which Apptainer stores as a generic JSON object in the SIF.
//!
//! Apptainer gathers it with a shell script that prints each metadata file line by line, so
//! every value is the file's text with trailing newlines removed. It reads, for
//! `/.singularity.d` and then each `/scif/apps/<app>/scif` that exists: `labels.json` (a JSON
//! object of strings; unreadable JSON gives no labels), `Singularity` (the first one found is the
//! `deffile`), `runscript.help`, `runscript`, `startscript`, `test`, and the environment
//! scripts (`env/10-docker*.sh` for the image only, and `env/9*-environment.sh`), keyed by their
//! path inside the image. Unlike Apptainer's script we do not follow symlinks: a metadata file
//! that is a symlink is treated as absent.

use std::collections::BTreeMap;
use std::path::Path;

use super::LayoutError;
use super::fsat::{Kind, Root};
use super::gojson::Value;

/// Metadata of one SCIF app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppAttributes {
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub runscript: String,
    pub startscript: String,
    pub test: String,
    pub helpfile: String,
}

/// Metadata of the image (Apptainer's `inspect.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub apps: BTreeMap<String, AppAttributes>,
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub runscript: String,
    pub test: String,
    pub helpfile: String,
    pub deffile: String,
    pub startscript: String,
}

/// The whole `{"data":{"attributes":...},"type":"container"}` object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectMetadata {
    pub attributes: Attributes,
}

fn s(v: &str) -> Option<Value> {
    (!v.is_empty()).then(|| Value::Str(v.to_owned()))
}

fn m(v: &BTreeMap<String, String>) -> Option<Value> {
    (!v.is_empty()).then(|| Value::map(v))
}

fn obj(members: Vec<(&str, Option<Value>)>) -> Value {
    Value::Obj(
        members
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

impl InspectMetadata {
    fn value(&self) -> Value {
        let a = &self.attributes;
        let apps = Value::Obj(
            a.apps
                .iter()
                .map(|(name, x)| {
                    let v = obj(vec![
                        ("environment", m(&x.environment)),
                        ("labels", m(&x.labels)),
                        ("runscript", s(&x.runscript)),
                        ("startscript", s(&x.startscript)),
                        ("test", s(&x.test)),
                        ("helpfile", s(&x.helpfile)),
                    ]);
                    (name.clone(), v)
                })
                .collect(),
        );
        let attrs = obj(vec![
            ("apps", (!a.apps.is_empty()).then_some(apps)),
            ("environment", m(&a.environment)),
            ("labels", m(&a.labels)),
            ("runscript", s(&a.runscript)),
            ("test", s(&a.test)),
            ("helpfile", s(&a.helpfile)),
            ("deffile", s(&a.deffile)),
            ("startscript", s(&a.startscript)),
        ]);
        obj(vec![
            ("data", Some(obj(vec![("attributes", Some(attrs))]))),
            ("type", Some(Value::Str("container".to_owned()))),
        ])
    }

    /// The compact JSON Apptainer stores in the SIF (`inspect-metadata.json`).
    pub fn to_json(&self) -> String {
        self.value().compact()
    }

    /// The tab-indented JSON `apptainer inspect --all --json` prints (without its final
    /// newline).
    pub fn to_json_pretty(&self) -> String {
        self.value().indent("\t")
    }
}

/// Read-only access to an image's root filesystem, so metadata can be read from a directory
/// or from a packed image alike. Paths are relative to the root, `/`-separated, and never
/// contain `..`; no implementation follows a symlink leaf.
pub trait ImageTree {
    type Error;
    /// Whether `rel` is a directory (a symlink to one is not).
    fn is_dir(&self, rel: &str) -> Result<bool, Self::Error>;
    /// The contents of regular file `rel`; `None` when it is missing or not a regular file.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, Self::Error>;
    /// The names in directory `rel`, sorted; empty when it is missing or not a directory.
    fn list(&self, rel: &str) -> Result<Vec<String>, Self::Error>;
}

impl ImageTree for Root {
    type Error = LayoutError;
    fn is_dir(&self, rel: &str) -> Result<bool, LayoutError> {
        Ok(self.kind(rel)? == Some(Kind::Dir))
    }
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LayoutError> {
        Root::read(self, rel)
    }
    fn list(&self, rel: &str) -> Result<Vec<String>, LayoutError> {
        Root::list(self, rel)
    }
}

/// A metadata file's value as Apptainer's inspect reports it.
fn read_value<T: ImageTree>(root: &T, rel: &str) -> Result<Option<String>, T::Error> {
    Ok(root.read(rel)?.map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\n')
            .to_owned()
    }))
}

/// Where one set of metadata files lives, and where its values go.
struct Prefix<'a> {
    rel: String,
    app: Option<&'a str>,
}

/// Read the metadata of the root filesystem at `root`.
pub fn inspect(root: &Path) -> Result<InspectMetadata, LayoutError> {
    inspect_tree(&Root::open(root)?)
}

/// Read the metadata of the root filesystem that `root` gives access to.
pub fn inspect_tree<T: ImageTree>(root: &T) -> Result<InspectMetadata, T::Error> {
    let mut attrs = Attributes::default();

    let app_names: Vec<String> = root
        .list("scif/apps")?
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| match root.is_dir(&format!("scif/apps/{n}/scif")) {
            Ok(true) => Some(Ok(n)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    for n in &app_names {
        attrs.apps.insert(n.clone(), AppAttributes::default());
    }

    let mut prefixes = vec![Prefix {
        rel: ".singularity.d".to_owned(),
        app: None,
    }];
    prefixes.extend(app_names.iter().map(|n| Prefix {
        rel: format!("scif/apps/{n}/scif"),
        app: Some(n.as_str()),
    }));

    for p in &prefixes {
        let file = |name: &str| format!("{}/{name}", p.rel);
        if let Some(text) = read_value(root, &file("labels.json"))? {
            let labels = serde_json::from_str(&text).unwrap_or_default();
            match p.app {
                Some(a) => attrs.apps.entry(a.to_owned()).or_default().labels = labels,
                None => attrs.labels = labels,
            }
        }
        if let Some(text) = read_value(root, &file("Singularity"))?
            && attrs.deffile.is_empty()
        {
            attrs.deffile = text;
        }
        for (name, pick) in [
            ("runscript.help", 0),
            ("runscript", 1),
            ("startscript", 2),
            ("test", 3),
        ] {
            let Some(text) = read_value(root, &file(name))? else {
                continue;
            };
            match p.app {
                Some(a) => {
                    let x = attrs.apps.entry(a.to_owned()).or_default();
                    *[
                        &mut x.helpfile,
                        &mut x.runscript,
                        &mut x.startscript,
                        &mut x.test,
                    ][pick] = text;
                }
                None => {
                    let x = &mut attrs;
                    *[
                        &mut x.helpfile,
                        &mut x.runscript,
                        &mut x.startscript,
                        &mut x.test,
                    ][pick] = text;
                }
            }
        }
        for name in root.list(&file("env"))? {
            let docker = p.app.is_none() && name.starts_with("10-docker") && name.ends_with(".sh");
            let env = name.starts_with('9') && name.len() > 15 && name.ends_with("-environment.sh");
            if !docker && !env {
                continue;
            }
            let rel = file(&format!("env/{name}"));
            let Some(text) = read_value(root, &rel)? else {
                continue;
            };
            let key = format!("/{rel}");
            match p.app {
                Some(a) => {
                    attrs
                        .apps
                        .entry(a.to_owned())
                        .or_default()
                        .environment
                        .insert(key, text);
                }
                None => {
                    attrs.environment.insert(key, text);
                }
            }
        }
    }
    Ok(InspectMetadata { attributes: attrs })
}
