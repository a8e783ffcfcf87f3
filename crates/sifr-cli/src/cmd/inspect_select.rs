//! Which metadata `inspect` reports for its flags, and the text it prints: Apptainer's rules
//! (`cmd/internal/cli/inspect.go`), kept apart from reading the image so they can be tested
//! on plain values.
//!
//! Apptainer takes the metadata from one of two places, and the flags mean slightly different
//! things for each; both are followed here:
//! - a SIF holding an `inspect-metadata.json` object ([`Source::Stored`]): each selected field
//!   is copied from it, an app's when `--app` names one the object knows; `--list-apps` and
//!   `--all` copy every app whole; the definition file comes from the object only when the SIF
//!   also holds a definition object;
//! - otherwise the image's files ([`Source::Tree`]: a sandbox, a SquashFS image, a SIF without
//!   the object): every SCIF app is named; the selected files are read from `/.singularity.d`,
//!   or from the app's `/scif/apps/NAME/scif` alone with `--app`, or from all of them with
//!   `--all`; a SIF's definition object, when present, is the definition file as stored.
//!
//! In both cases apps other than `--app`'s are dropped unless `--list-apps` or `--all` asked.

use sifr_build::layout::{AppAttributes, Attributes, InspectMetadata};

/// What the flags asked for (`--all` already folded in by [`Want::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    pub labels: bool,
    pub deffile: bool,
    pub helpfile: bool,
    pub runscript: bool,
    pub startscript: bool,
    pub test: bool,
    pub environment: bool,
    pub list_apps: bool,
    pub all: bool,
    pub json: bool,
    /// `--app NAME` (ignored with `--all`).
    pub app: Option<String>,
}

impl Want {
    /// Apptainer's defaults: `--all` means JSON, every field, no single app; labels are shown
    /// when no other kind of information was asked for.
    pub fn resolve(mut self) -> Want {
        if self.all {
            self.json = true;
            self.app = None;
        }
        let other = self.helpfile
            || self.deffile
            || self.runscript
            || self.startscript
            || self.test
            || self.environment
            || self.list_apps;
        self.labels = self.labels || !other || self.all;
        for f in [
            &mut self.deffile,
            &mut self.helpfile,
            &mut self.runscript,
            &mut self.startscript,
            &mut self.test,
            &mut self.environment,
        ] {
            *f = *f || self.all;
        }
        self
    }
}

/// Where the metadata comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A SIF's `inspect-metadata.json`, and whether the SIF holds a definition object.
    Stored {
        meta: InspectMetadata,
        has_deffile_object: bool,
    },
    /// Everything the image's files hold (`sifr_build::layout::inspect_tree`), and the SIF's
    /// definition object as stored, if the image is a SIF.
    Tree {
        meta: InspectMetadata,
        sif: bool,
        deffile_object: Option<String>,
    },
}

/// The selection's result, and the warnings Apptainer prints on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    pub meta: InspectMetadata,
    pub warnings: Vec<String>,
}

/// The per-app fields `inspect` copies, named by the flag that selects them.
#[derive(Clone, Copy)]
enum Field {
    Labels,
    Helpfile,
    Runscript,
    Startscript,
    Test,
    Environment,
}

impl Field {
    fn wanted(self, w: &Want) -> bool {
        match self {
            Field::Labels => w.labels,
            Field::Helpfile => w.helpfile,
            Field::Runscript => w.runscript,
            Field::Startscript => w.startscript,
            Field::Test => w.test,
            Field::Environment => w.environment,
        }
    }

    fn copy_main(self, from: &Attributes, to: &mut Attributes) {
        match self {
            Field::Labels => to.labels = from.labels.clone(),
            Field::Helpfile => to.helpfile = from.helpfile.clone(),
            Field::Runscript => to.runscript = from.runscript.clone(),
            Field::Startscript => to.startscript = from.startscript.clone(),
            Field::Test => to.test = from.test.clone(),
            Field::Environment => to.environment = from.environment.clone(),
        }
    }

    fn copy_app(self, from: &AppAttributes, to: &mut AppAttributes) {
        match self {
            Field::Labels => to.labels = from.labels.clone(),
            Field::Helpfile => to.helpfile = from.helpfile.clone(),
            Field::Runscript => to.runscript = from.runscript.clone(),
            Field::Startscript => to.startscript = from.startscript.clone(),
            Field::Test => to.test = from.test.clone(),
            Field::Environment => to.environment = from.environment.clone(),
        }
    }
}

const FIELDS: [Field; 6] = [
    Field::Labels,
    Field::Helpfile,
    Field::Runscript,
    Field::Startscript,
    Field::Test,
    Field::Environment,
];

/// Apptainer's warning when a SIF has no definition object.
pub const NO_DEFFILE_OBJECT: &str = "No SIF metadata partition, searching in container...";

/// The metadata `inspect` reports for `want` (resolved) from `source`.
pub fn select(want: &Want, source: &Source) -> Selected {
    let mut out = Selected::default();
    let o = &mut out.meta.attributes;
    match source {
        Source::Stored {
            meta,
            has_deffile_object,
        } => {
            let s = &meta.attributes;
            if want.list_apps || want.all {
                o.apps = s.apps.clone();
            }
            for f in FIELDS.into_iter().filter(|f| f.wanted(want)) {
                match &want.app {
                    Some(name) => {
                        if let Some(sa) = s.apps.get(name) {
                            f.copy_app(sa, o.apps.entry(name.clone()).or_default());
                        }
                    }
                    None => f.copy_main(s, o),
                }
            }
            if want.deffile {
                if *has_deffile_object {
                    o.deffile = s.deffile.clone();
                } else {
                    // Apptainer then falls back to the container's files, but only when it has
                    // no stored metadata, so nothing is found.
                    out.warnings.push(NO_DEFFILE_OBJECT.to_owned());
                }
            }
        }
        Source::Tree {
            meta,
            sif,
            deffile_object,
        } => {
            let t = &meta.attributes;
            // Every app with a `scif` directory is named, its fields filled only as selected.
            o.apps = t
                .apps
                .keys()
                .map(|k| (k.clone(), AppAttributes::default()))
                .collect();
            let main = want.all || want.app.is_none();
            let apps: Vec<&String> = if want.all {
                t.apps.keys().collect()
            } else {
                want.app
                    .iter()
                    .filter(|a| t.apps.contains_key(*a))
                    .collect()
            };
            for f in FIELDS.into_iter().filter(|f| f.wanted(want)) {
                if main {
                    f.copy_main(t, o);
                }
                for a in &apps {
                    f.copy_app(&t.apps[*a], o.apps.entry((*a).clone()).or_default());
                }
            }
            if want.deffile {
                match deffile_object {
                    Some(d) => o.deffile = d.clone(),
                    None => {
                        if *sif {
                            out.warnings.push(NO_DEFFILE_OBJECT.to_owned());
                        }
                        // `/.singularity.d/Singularity`; an app's directory holds none.
                        if main {
                            o.deffile = t.deffile.clone();
                        }
                    }
                }
            }
        }
    }
    if !(want.list_apps || want.all) {
        o.apps
            .retain(|name, _| want.app.as_deref() == Some(name.as_str()));
    }
    out
}

/// The text Apptainer prints for the selected metadata: JSON (tab-indented), or the app names
/// (with `--list-apps`), then the definition file, runscript, startscript, test, help, the
/// environment files under `=== PATH ===` headers and the labels as `KEY: VALUE`, each sorted
/// by name. A field of the image that is empty gives way to `--app`'s.
pub fn render(m: &InspectMetadata, want: &Want) -> String {
    if want.json {
        return m.to_json_pretty() + "\n";
    }
    let a = &m.attributes;
    let app = want.app.as_ref().and_then(|n| a.apps.get(n));
    let mut s = String::new();
    if want.list_apps {
        for name in a.apps.keys() {
            s.push_str(name);
            s.push('\n');
        }
    }
    let line = |s: &mut String, v: &str| {
        s.push_str(v);
        s.push('\n');
    };
    if !a.deffile.is_empty() {
        line(&mut s, &a.deffile);
    }
    let pick = |main: &str, of_app: Option<&str>| -> Option<String> {
        if !main.is_empty() {
            Some(main.to_owned())
        } else {
            of_app.filter(|v| !v.is_empty()).map(str::to_owned)
        }
    };
    for v in [
        pick(&a.runscript, app.map(|x| x.runscript.as_str())),
        pick(&a.startscript, app.map(|x| x.startscript.as_str())),
        pick(&a.test, app.map(|x| x.test.as_str())),
        pick(&a.helpfile, app.map(|x| x.helpfile.as_str())),
    ]
    .into_iter()
    .flatten()
    {
        line(&mut s, &v);
    }
    let env = if !a.environment.is_empty() {
        Some(&a.environment)
    } else {
        app.map(|x| &x.environment).filter(|e| !e.is_empty())
    };
    for (k, v) in env.into_iter().flatten() {
        s.push_str(&format!("=== {k} ===\n{v}\n\n"));
    }
    let labels = if !a.labels.is_empty() {
        Some(&a.labels)
    } else {
        app.map(|x| &x.labels).filter(|l| !l.is_empty())
    };
    for (k, v) in labels.into_iter().flatten() {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s
}

#[cfg(test)]
#[path = "inspect_select_tests.rs"]
mod tests;
