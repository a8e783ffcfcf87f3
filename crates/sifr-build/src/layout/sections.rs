//! The definition file's sections turned into files under `/.singularity.d` and `/scif`.
//!
//! [`insert_metadata`] runs after `%post` and writes, in Apptainer's order: `runscript.help`,
//! `labels.json`, the stored definition `Singularity` (an older one is moved to
//! `bootstrap_history/Apptainer<N>`), `%environment` (appended to `env/90-environment.sh`),
//! `startscript`, `runscript` and `test`.
//!
//! [`write_apps`] runs before `%post` (the `%appinstall` scripts, see [`apps_post_script`], run
//! inside the app directories it creates) and lays out the SCIF apps plus the global
//! `env/94-appsbase.sh`, which Apptainer writes (empty when there are no apps) on every build.

use std::collections::BTreeMap;
use std::path::Path;

use sifr_deffile::{App, Script, Stage};

use super::fsat::{Kind, Root};
use super::gojson::Value;
use super::labels::{self, BuildLabelInputs, BuildTime};
use super::{LayoutError, SINGULARITY_D};

/// Where `%post` may write `KEY value` lines that become labels (`$APPTAINER_LABELS`).
pub const BUILD_LABELS: &str = ".build.labels";

/// The Apptainer release whose behaviour sifr matches: what `apptainer --version` prints under
/// sifr, and the version part of the build label. One place, so the two cannot disagree.
pub const APPTAINER_VERSION: &str = "1.5.3";

/// The value of `org.label-schema.usage.apptainer.version` this build records:
/// `<APPTAINER_VERSION>+sifr.<version>`. Apptainer writes a bare semantic version there and
/// tools compare it as one; build metadata after `+` keeps it a valid semantic version (and a
/// valid PEP 440 one) that compares as the Apptainer release sifr matches, while still naming
/// the tool that built the image for anyone debugging a difference between the two.
pub fn tool_version() -> String {
    format!("{APPTAINER_VERSION}+sifr.{}", env!("CARGO_PKG_VERSION"))
}

/// Everything [`insert_metadata`] needs besides the tree and the definition.
#[derive(Debug, Clone)]
pub struct MetadataOptions {
    /// The build time recorded in the labels.
    pub time: BuildTime,
    /// `org.label-schema.usage.apptainer.version`; normally [`tool_version`].
    pub version: String,
    /// The requested build architecture in Go/OCI spelling (`amd64`, `arm64`, ...).
    pub arch: String,
    /// The architecture variant (`v8`, ...), if any.
    pub variant: Option<String>,
    /// `--force`: `%labels` and `%help` replace existing values.
    pub force: bool,
    /// `--update` (building into an existing sandbox): the header labels are only rewritten
    /// when `force` is also set.
    pub update: bool,
    /// `(tag, digest)` of the OCI base image, for `org.opencontainers.image.base.*`.
    pub base_image: Option<(String, String)>,
}

impl MetadataOptions {
    /// Options with our own version string, not forced, no update, no base image.
    pub fn new(time: BuildTime, arch: impl Into<String>) -> MetadataOptions {
        MetadataOptions {
            time,
            version: tool_version(),
            arch: arch.into(),
            variant: None,
            force: false,
            update: false,
            base_image: None,
        }
    }
}

/// Write the metadata of `stage` into the root filesystem at `root`. `definition` is the text
/// stored as `/.singularity.d/Singularity`: the whole definition file after build-argument
/// substitution (`Definition::substituted`), as Apptainer stores it.
pub fn insert_metadata(
    root: &Path,
    stage: &Stage,
    definition: &str,
    opts: &MetadataOptions,
) -> Result<(), LayoutError> {
    let root = Root::open(root)?;
    insert_help(&root, stage, opts.force)?;
    insert_labels(&root, stage, opts)?;
    insert_definition(&root, definition)?;
    insert_environment(&root, stage)?;
    for (script, name) in [
        (&stage.startscript, "startscript"),
        (&stage.runscript, "runscript"),
        (&stage.test, "test"),
    ] {
        if let Some(s) = script.as_ref().filter(|s| !s.body.is_empty()) {
            root.write(
                &format!("{SINGULARITY_D}/{name}"),
                shebang_script(s).as_bytes(),
                0o755,
            )?;
        }
    }
    Ok(())
}

/// The file text for `%runscript`, `%startscript` or `%test`: the body's own `#!` line if it
/// has one (leading blank lines skipped), else `#!/bin/sh`; the section's arguments (up to a
/// `#`) appended to that line after a space; then a blank line, the rest of the body, and a
/// newline.
pub fn shebang_script(s: &Script) -> String {
    let trimmed = s.body.trim_start_matches(['\n', '\r', ' ', '\t']);
    let (mut shebang, rest) = if trimmed.starts_with("#!") {
        match trimmed.split_once('\n') {
            Some((first, rest)) => (first.trim().to_owned(), rest),
            None => (trimmed.trim().to_owned(), ""),
        }
    } else {
        ("#!/bin/sh".to_owned(), s.body.as_str())
    };
    if !s.args.is_empty() {
        shebang.push(' ');
        shebang.push_str(s.args.split('#').next().unwrap_or(""));
    }
    format!("{shebang}\n\n{rest}\n")
}

fn insert_help(root: &Root, stage: &Stage, force: bool) -> Result<(), LayoutError> {
    let Some(help) = stage.help.as_ref().filter(|h| !h.body.is_empty()) else {
        return Ok(());
    };
    let path = format!("{SINGULARITY_D}/runscript.help");
    if root.kind(&path)?.is_none() || force {
        root.write(&path, format!("{}\n", help.body).as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Read a `labels.json`-style object of strings; `None` when the file is missing.
fn read_labels(root: &Root, rel: &str) -> Result<Option<BTreeMap<String, String>>, LayoutError> {
    let Some(bytes) = root.read(rel)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| LayoutError::Labels {
            path: root.host_path(rel),
            source,
        })
}

fn insert_labels(root: &Root, stage: &Stage, opts: &MetadataOptions) -> Result<(), LayoutError> {
    let path = format!("{SINGULARITY_D}/labels.json");
    let mut labels = read_labels(root, &path)?.unwrap_or_default();

    if let Some(bytes) = root.read(BUILD_LABELS)? {
        root.remove(BUILD_LABELS)?;
        labels.extend(labels::parse_label_lines(&String::from_utf8_lossy(&bytes)));
    }

    let header = if !opts.update || opts.force {
        labels::header_pairs(&stage.header)
    } else {
        Vec::new()
    };
    let has_help = stage.help.as_ref().is_some_and(|h| !h.body.is_empty());
    labels::add_build_labels(
        &mut labels,
        &BuildLabelInputs {
            time: &opts.time,
            version: &opts.version,
            has_help,
            header: &header,
            base: opts
                .base_image
                .as_ref()
                .map(|(n, d)| (n.as_str(), d.as_str())),
            arch: &opts.arch,
            variant: opts.variant.as_deref(),
        },
    );

    for l in &stage.labels {
        if opts.force || !labels.contains_key(&l.key) {
            labels.insert(l.key.clone(), l.value.clone());
        }
    }
    root.write(&path, Value::map(&labels).indent("\t").as_bytes(), 0o644)
}

fn insert_definition(root: &Root, definition: &str) -> Result<(), LayoutError> {
    let path = format!("{SINGULARITY_D}/Singularity");
    let history = format!("{SINGULARITY_D}/bootstrap_history");
    if matches!(root.kind(&path)?, Some(Kind::File | Kind::Symlink)) {
        root.mkdir_all(&history)?;
        let n = root.list(&history)?.len();
        root.rename(&path, &format!("{history}/Apptainer{n}"))?;
    }
    root.write(&path, definition.as_bytes(), 0o644)
}

fn insert_environment(root: &Root, stage: &Stage) -> Result<(), LayoutError> {
    let Some(env) = stage.environment.as_ref().filter(|e| !e.body.is_empty()) else {
        return Ok(());
    };
    let path = format!("{SINGULARITY_D}/env/90-environment.sh");
    if root.kind(&path)?.is_none() {
        root.write(
            &path,
            format!("#!/bin/sh\n\n{}\n", env.body).as_bytes(),
            0o755,
        )
    } else {
        root.append(&path, format!("\n{}\n", env.body).as_bytes())
    }
}

/// `/scif/apps/<name>` of an app, refusing names that are not one plain path component.
fn app_base(app: &App) -> Result<String, LayoutError> {
    let n = app.name.as_str();
    if n.is_empty() || n == "." || n == ".." || n.contains('/') || n.contains('\0') {
        return Err(LayoutError::BadAppName {
            name: app.name.clone(),
        });
    }
    Ok(format!("scif/apps/{n}"))
}

/// The text Apptainer appends to `%post` for each app's `%appinstall`, in app order: it
/// sources the app's `01-base.sh` and runs the install body inside the app directory.
pub fn apps_post_script(stage: &Stage) -> String {
    let mut out = String::new();
    for app in &stage.apps {
        let base = format!("/scif/apps/{}", app.name);
        let install = app.install.as_ref().map_or("", |s| s.body.as_str());
        out.push_str(&format!(
            "\ncd /\n. {base}/scif/env/01-base.sh\n\ncd {base}\n{install}\n\ncd /\n"
        ));
    }
    out
}

/// Lay out every SCIF app of `stage` (directories, `scif/env/01-base.sh`, `%appenv`,
/// `%apprun`, `%appstart`, `%apptest`, `%apphelp`, `%applabels`) and write
/// `/.singularity.d/env/94-appsbase.sh`. `%appfiles` copies are left to the caller's file
/// copier (their destinations are relative to `/scif/apps/<name>`).
pub fn write_apps(root: &Path, stage: &Stage) -> Result<(), LayoutError> {
    let root = Root::open(root)?;
    let mut global = String::new();
    for app in &stage.apps {
        let base = app_base(app)?;
        let meta = format!("{base}/scif");
        let data = format!("scif/data/{}", app.name);
        for d in [
            base.clone(),
            meta.clone(),
            format!("{base}/bin"),
            format!("{base}/lib"),
            format!("{meta}/env"),
            format!("{data}/input"),
            format!("{data}/output"),
        ] {
            root.mkdir_all(&d)?;
        }
        root.write(
            &format!("{meta}/env/01-base.sh"),
            scif_env_base(&app.name).as_bytes(),
            0o755,
        )?;
        let body =
            |s: &Option<Script>| s.as_ref().map(|s| s.body.clone()).filter(|b| !b.is_empty());
        if let Some(env) = body(&app.env) {
            root.write(
                &format!("{meta}/env/90-environment.sh"),
                env.as_bytes(),
                0o755,
            )?;
        }
        for (script, name) in [
            (&app.run, "runscript"),
            (&app.start, "startscript"),
            (&app.test, "test"),
        ] {
            if let Some(b) = body(script) {
                root.write(
                    &format!("{meta}/{name}"),
                    format!("#!/bin/sh\n\n{b}\n").as_bytes(),
                    0o755,
                )?;
            }
        }
        if let Some(help) = body(&app.help) {
            root.write(&format!("{meta}/runscript.help"), help.as_bytes(), 0o644)?;
        }
        let mut labels = BTreeMap::new();
        labels.insert("SCIF_APP_NAME".to_owned(), app.name.clone());
        for l in &app.labels {
            labels.insert(l.key.clone(), l.value.clone());
        }
        root.write(
            &format!("{meta}/labels.json"),
            Value::map(&labels).indent("\t").as_bytes(),
            0o644,
        )?;
        global.push_str(&global_app_env(&root, app, &meta)?);
    }
    root.write(
        &format!("{SINGULARITY_D}/env/94-appsbase.sh"),
        global.as_bytes(),
        0o755,
    )
}

fn scif_env_base(name: &str) -> String {
    format!(
        "#!/bin/sh\n\nSCIF_APPNAME={name}\nSCIF_APPROOT=\"/scif/apps/{name}\"\n\
         SCIF_APPMETA=\"/scif/apps/{name}/scif\"\nSCIF_DATA=\"/scif/data\"\n\
         SCIF_APPDATA=\"/scif/data/{name}\"\nSCIF_APPINPUT=\"/scif/data/{name}/input\"\n\
         SCIF_APPOUTPUT=\"/scif/data/{name}/output\"\n\
         export SCIF_APPDATA SCIF_APPNAME SCIF_APPROOT SCIF_APPMETA SCIF_APPINPUT SCIF_APPOUTPUT SCIF_DATA\n"
    )
}

/// This app's part of `94-appsbase.sh`: variables named after the app (characters other than
/// ASCII letters, digits and `_` become `_`), plus one line per metadata file that exists.
fn global_app_env(root: &Root, app: &App, meta: &str) -> Result<String, LayoutError> {
    let v: String = app
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut s = format!(
        "## App Global Exports For: {v}\n\n\
         SCIF_APPDATA_{v}=/scif/data/{v}\n\
         SCIF_APPMETA_{v}=/scif/apps/{v}/scif\n\
         SCIF_APPROOT_{v}=/scif/apps/{v}\n\
         SCIF_APPBIN_{v}=/scif/apps/{v}/bin\n\
         SCIF_APPLIB_{v}=/scif/apps/{v}/lib\n\n\
         export SCIF_APPDATA_{v} SCIF_APPMETA_{v} SCIF_APPROOT_{v} SCIF_APPBIN_{v} SCIF_APPLIB_{v}\n"
    );
    for (file, var, path) in [
        (
            "env/90-environment.sh",
            "APPENV",
            "scif/env/90-environment.sh",
        ),
        ("labels.json", "APPLABELS", "scif/labels.json"),
        ("runscript", "APPRUN", "scif/runscript"),
        ("startscript", "APPSTART", "scif/startscript"),
    ] {
        if root.kind(&format!("{meta}/{file}"))?.is_some() {
            s.push_str(&format!(
                "export SCIF_{var}_{v}=\"/scif/apps/{v}/{path}\"\n"
            ));
        }
    }
    Ok(s)
}
