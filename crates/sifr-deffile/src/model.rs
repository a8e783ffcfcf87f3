//! The typed result of parsing: `Definition`, its `Stage`s, header fields, sections, `%files`
//! groups, labels and apps. Plain data with `serde::Serialize`; no parsing logic lives here.
//!
//! Every item keeps the 1-based `line` it came from so that later phases (the build) can point
//! at the definition file in their own error messages.

use serde::Serialize;

use crate::error::Warning;
use crate::header::Bootstrap;

/// A parsed definition file: one or more build stages, the last of which is the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
    /// The stages in file order; a file without a second `Bootstrap:` line has exactly one.
    pub stages: Vec<Stage>,
    /// The text as read (after removing a UTF-8 byte-order mark).
    #[serde(skip)]
    pub raw: String,
    /// The text after `{{ arg }}` substitution: the concatenation of every stage's substituted
    /// text. Apptainer stores this (its `FullRaw`) in `/.singularity.d/Singularity` and in the SIF.
    #[serde(skip)]
    pub substituted: String,
    /// Build arguments given on the command line or in a build-arg file that no stage used.
    /// Only non-empty when [`crate::Options::warn_unused_build_args`] is set (otherwise this is
    /// an error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unused_build_args: Vec<String>,
    /// Things Apptainer accepts but that are probably mistakes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl Definition {
    /// The stage that becomes the image (the last one).
    pub fn image_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// The stage named `name` by its `Stage:` header.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name() == Some(name))
    }
}

impl Stage {
    /// The stage's `Stage:` name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.header.stage.as_ref().map(|s| s.value.as_str())
    }
}

/// A value together with the line (and column of the value) it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spanned<T> {
    pub value: T,
    pub line: usize,
    pub col: usize,
}

/// One build stage: a header and its sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// First line of this stage in the whole file.
    pub line: usize,
    pub header: Header,
    /// `%arguments` defaults (`NAME=value`), in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<ArgumentDefault>,
    /// `%help`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<Script>,
    /// `%pre` (legacy; runs on the host before bootstrap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre: Option<Script>,
    /// `%setup` (runs on the host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<Script>,
    /// `%files` groups: one for host copies (`from: None`) and one per source stage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FilesGroup>,
    /// `%post` (runs inside the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<Script>,
    /// `%environment`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Script>,
    /// `%runscript`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runscript: Option<Script>,
    /// `%startscript`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startscript: Option<Script>,
    /// `%test`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Script>,
    /// `%labels`, in file order; a repeated key keeps its first position and takes the last value
    /// (Apptainer keeps a map, so the last value wins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// SCIF apps in the order their first section appears (the order `%appinstall`s run in).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<App>,
    /// This stage's text after `{{ arg }}` substitution.
    #[serde(skip)]
    pub substituted: String,
}

/// Header fields. Keywords are case-insensitive in the file; each is kept with its line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Header {
    /// `Bootstrap:`; `None` only for a header-less definition (which Apptainer's parser accepts
    /// but cannot build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Spanned<Bootstrap>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_cmd: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_url: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_url: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setopt: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regcode: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_pgp: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register_url: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Spanned<String>>,
    /// `OtherURL0`, `OtherURL1`, ... as (index, url), sorted by index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_urls: Vec<(u32, Spanned<String>)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf_url: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontend: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_args: Option<Spanned<String>>,
}

impl Header {
    /// The text-valued keywords that were given, as `(lower-case keyword, value)`, in the
    /// keyword table's order. `Bootstrap:` and `OtherURL<N>` are separate fields.
    pub fn keyword_values(&self) -> Vec<(&'static str, &Spanned<String>)> {
        let h = self;
        let fields: [(&'static str, &Option<Spanned<String>>); 23] = [
            ("from", &h.from),
            ("stage", &h.stage),
            ("registry", &h.registry),
            ("namespace", &h.namespace),
            ("includecmd", &h.include_cmd),
            ("fingerprints", &h.fingerprints),
            ("library", &h.library),
            ("mirrorurl", &h.mirror_url),
            ("updateurl", &h.update_url),
            ("osversion", &h.os_version),
            ("include", &h.include),
            ("setopt", &h.setopt),
            ("product", &h.product),
            ("user", &h.user),
            ("regcode", &h.regcode),
            ("productpgp", &h.product_pgp),
            ("registerurl", &h.register_url),
            ("modules", &h.modules),
            ("confurl", &h.conf_url),
            ("filename", &h.filename),
            ("target", &h.target),
            ("frontend", &h.frontend),
            ("buildargs", &h.build_args),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect()
    }

    /// True when no keyword was given at all.
    pub fn is_empty(&self) -> bool {
        *self == Header::default()
    }

    /// `Fingerprints:` split at commas, blanks dropped.
    pub fn fingerprint_list(&self) -> Vec<String> {
        split_list(self.fingerprints.as_ref())
    }

    /// `Include:` package list, split at commas and whitespace.
    pub fn include_list(&self) -> Vec<String> {
        split_list(self.include.as_ref())
    }
}

fn split_list(v: Option<&Spanned<String>>) -> Vec<String> {
    v.map(|s| {
        s.value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// A script section (`%post`, `%runscript`, `%appinstall foo`, ...). Repeated sections are
/// concatenated in file order, as Apptainer does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Script {
    /// The text after the section name on its header line, verbatim (for example
    /// `-c /bin/bash`). For a repeated section, the last non-empty one wins (Apptainer's rule).
    pub args: String,
    /// The body, each line ending in `\n`, indentation and comments kept.
    pub body: String,
    /// Line of the (first) `%section` header line.
    pub line: usize,
}

impl Script {
    /// The arguments with a trailing `# comment` removed, split at whitespace; this is what
    /// Apptainer hands to the shell (`-c /bin/bash` makes the script run under `/bin/bash`).
    pub fn arg_words(&self) -> Vec<String> {
        let clean = self.args.split('#').next().unwrap_or("");
        clean.split_whitespace().map(str::to_owned).collect()
    }

    /// The interpreter line if the body starts with `#!` (honoured for runscript, startscript
    /// and test; ignored for `%post`).
    pub fn shebang(&self) -> Option<&str> {
        let first = self
            .body
            .trim_start_matches(['\n', ' ', '\t'])
            .lines()
            .next()?;
        first.strip_prefix("#!").map(str::trim)
    }
}

/// A `KEY=value` default from `%arguments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgumentDefault {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// A `%labels` (or `%applabels`) line: `KEY value...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// All `%files` sections of a stage with the same source, merged in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesGroup {
    /// `Some(stage)` for `%files from <stage>`; `None` for copies from the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Line of the first `%files` header of this group.
    pub line: usize,
    pub entries: Vec<FilesEntry>,
}

/// One `src [dst]` line of `%files`. Quotes are removed; `dst: None` means "same path as src".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesEntry {
    pub src: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    pub line: usize,
}

/// A SCIF app: every `%app* NAME` section with the same NAME.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct App {
    pub name: String,
    /// Line of the first section that names this app.
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<Script>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Script>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Script>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Script>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Script>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<Script>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// `%appfiles NAME` lines (host copies into the app).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FilesEntry>,
}
