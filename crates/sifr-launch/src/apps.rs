//! SCIF apps at launch (`--app NAME`), as Apptainer v1.5.3 uses them: its action script picks
//! the app's script and its `95-apps.sh` gives the app's environment.
//!
//! - The name is checked when the request is typed ([`App::from_request`]): one plain path
//!   component, since it becomes `/scif/apps/NAME`. An empty name means no app, as in
//!   Apptainer.
//! - Inside the container, before the environment, the app must exist as `/scif/apps/NAME`
//!   ([`check`]); an unknown app ends the launch with status 1 (Apptainer's `95-apps.sh` prints
//!   "Could not locate the container application" and exits 1), naming the image's apps.
//! - The environment ([`env_steps`]) replaces the stock `95-apps.sh` at its place among the
//!   image's `/.singularity.d/env` scripts (after `94-appsbase.sh`, before `99-base.sh`):
//!   `SCIF_APPS` and `SCIF_APPROOT`, `PATH` with the app's directory and `bin`,
//!   `LD_LIBRARY_PATH` with its `lib`, then the app's `scif/env/01-base.sh` and `%appenv`
//!   (`scif/env/90-environment.sh`) sourced as the image's own scripts are, natively or in the
//!   interpreter. Between the two, the SCIF variables of the active app that Apptainer's
//!   `apptainer help inspect` lists but its scripts never set (`SCIF_APPBIN`, `SCIF_APPRUN`, ...)
//!   are exported, so that `%appenv` may use or change them (docs/compat.md, SCIF apps).
//! - `run`, `test` and `instance start` run the app's `scif/runscript`, `scif/test` or
//!   `scif/startscript` ([`script_argv`]); without one the launch ends with status 1, as in
//!   Apptainer. `exec` and `shell` run as without an app, in the app's environment.
//!
//! Apptainer's fallbacks to an app called `singularity` (Singularity 2's layout) are kept.

use std::path::{Path, PathBuf};

use crate::envscript::Builtin;
use crate::plan::Action;
use crate::request::{Origin, Sourced};
use crate::vars::Vars;

/// Where the apps are installed, in the container.
pub const APPS_DIR: &str = "/scif/apps";

/// The app Singularity 2's layout falls back to (Apptainer's `95-apps.sh` and action script).
const LEGACY: &str = "singularity";

/// `--app` as asked for: one field of [`crate::Request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRequest {
    /// `--app NAME` or its twins (`APPTAINER_APP`, `APPTAINER_APPNAME`, ...).
    pub name: Option<Sourced<String>>,
}

/// A SCIF app to run, its name checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    name: String,
}

/// An `--app` value that cannot name an app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `--app` value `{name}`: an app name is a single path component")]
pub struct InvalidName {
    pub name: String,
    pub origin: Origin,
}

impl InvalidName {
    pub fn hint(&self) -> String {
        "name an app under /scif/apps of the image (`inspect --list-apps IMAGE` lists them)".into()
    }
}

/// Why an app cannot run, found inside the container. Apptainer's scripts exit 1 in each case;
/// so does the launch ([`crate::ExecError::exit_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppMissing {
    /// No `/scif/apps/NAME` in the image. Apptainer's words first, then the image's apps.
    #[error(
        "Could not locate the container application: {name} ({})",
        listed(apps)
    )]
    Unknown { name: String, apps: Vec<String> },
    /// The app has no script for the action (`no runscript for contained app: NAME` ...).
    #[error("no {what} for contained app: {name}")]
    NoScript { name: String, what: &'static str },
}

fn listed(apps: &[String]) -> String {
    if apps.is_empty() {
        "the image has no SCIF apps".into()
    } else {
        format!("the image's apps: {}", apps.join(", "))
    }
}

impl AppMissing {
    pub fn hint(&self) -> String {
        match self {
            AppMissing::Unknown { apps, .. } if apps.is_empty() => {
                "run the image without `--app`".into()
            }
            AppMissing::Unknown { apps, .. } => format!("use `--app {}`", apps[0]),
            AppMissing::NoScript { name, what } => {
                let section = match *what {
                    "runscript" => "%apprun",
                    "tests" => "%apptest",
                    _ => "%appstart",
                };
                format!(
                    "the app was built without a `{section} {name}` section; \
                     `exec --app {name} IMAGE COMMAND` runs a command in its environment"
                )
            }
        }
    }
}

impl App {
    /// The app of `req`, if one was named. Apptainer takes an empty name as none.
    pub fn from_request(req: &AppRequest) -> Result<Option<App>, InvalidName> {
        let Some(s) = &req.name else {
            return Ok(None);
        };
        let name = s.value.as_str();
        if name.is_empty() {
            return Ok(None);
        }
        if name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(InvalidName {
                name: name.to_owned(),
                origin: s.origin.clone(),
            });
        }
        Ok(Some(App {
            name: name.to_owned(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/scif/apps/NAME`.
    fn root(&self) -> String {
        format!("{APPS_DIR}/{}", self.name)
    }
}

/// `root` (the container's `/`) joined with an absolute container path.
fn at(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The apps of the image at `root`: the directories of `/scif/apps` holding a `scif`
/// directory (what `inspect --list-apps` lists), sorted.
pub fn list(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(at(root, APPS_DIR)) else {
        return Vec::new();
    };
    let mut apps: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.path().join("scif").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    apps.sort();
    apps
}

/// Whether `app` exists in the image at `root` (Apptainer's `test -d /scif/apps/NAME/`).
pub fn check(app: &App, root: &Path) -> Result<(), AppMissing> {
    if at(root, &app.root()).is_dir() {
        Ok(())
    } else {
        Err(AppMissing::Unknown {
            name: app.name.clone(),
            apps: list(root),
        })
    }
}

/// Whether `path` is a file someone may execute (the action script's `test -x`).
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The argv of `action` for `app` in the image at `root`: its script with the action's
/// arguments for `run`, `test` and the instance actions; `None` for `exec` and `shell`, which
/// run as without an app. As Apptainer's action script, a missing script falls back to the
/// legacy app's `scif/test` (sic) before the error.
pub fn script_argv(
    app: &App,
    action: &Action,
    root: &Path,
) -> Result<Option<Vec<String>>, AppMissing> {
    let (file, what, args) = match action {
        Action::Run(a) | Action::InstanceRun(a) => ("runscript", "runscript", a),
        Action::Test(a) => ("test", "tests", a),
        Action::Start(a) => ("startscript", "startscript", a),
        Action::Exec(_) | Action::Shell(_) => return Ok(None),
    };
    let own = format!("{}/scif/{file}", app.root());
    let legacy = format!("{APPS_DIR}/{LEGACY}/scif/test");
    let Some(script) = [own, legacy].into_iter().find(|p| executable(&at(root, p))) else {
        return Err(AppMissing::NoScript {
            name: app.name.clone(),
            what,
        });
    };
    let mut argv = vec![script];
    argv.extend(args.iter().cloned());
    Ok(Some(argv))
}

/// One step of the app's environment: a change made natively, or a script to source (its
/// path, and its text, `None` when it could not be read).
pub enum Step {
    Builtin(Builtin),
    Script(PathBuf, Option<String>),
}

/// The steps that replace `95-apps.sh` for `app` in the image at `root` (see the module docs).
pub fn env_steps(app: &App, root: &Path) -> Vec<Step> {
    let own = app.root();
    let legacy = format!("{APPS_DIR}/{LEGACY}");
    let dir = |p: &str| at(root, p).is_dir();
    let file = |p: &str| at(root, p).is_file();
    let first = |own: String, legacy: String, test: &dyn Fn(&str) -> bool| {
        [own, legacy].into_iter().find(|p| test(p))
    };
    let bin = first(format!("{own}/bin"), format!("{legacy}/bin"), &dir);
    let lib = first(format!("{own}/lib"), format!("{legacy}/lib"), &dir);
    let paths = {
        let own = own.clone();
        let legacy = legacy.clone();
        move |env: &mut Vars| {
            env.set("SCIF_APPS", APPS_DIR);
            env.set("SCIF_APPROOT", &own);
            let path = env.get("PATH").unwrap_or_default().to_owned();
            let mut path = format!("{own}:{legacy}:{path}");
            if let Some(b) = &bin {
                path = format!("{b}:{path}");
            }
            env.set("PATH", &path);
            if let Some(l) = &lib {
                // Apptainer writes `LIB:$LD_LIBRARY_PATH`, which leaves an empty entry (the
                // working directory, to the loader) when the variable is empty; sifr does not.
                let ld = match env.get("LD_LIBRARY_PATH") {
                    Some(v) if !v.is_empty() => format!("{l}:{v}"),
                    _ => l.clone(),
                };
                env.set("LD_LIBRARY_PATH", &ld);
            }
        }
    };
    let mut steps = vec![Step::Builtin(Box::new(paths))];
    let script = |name: &str| {
        first(
            format!("{own}/scif/env/{name}"),
            format!("{legacy}/scif/env/{name}"),
            &file,
        )
        .map(|p| {
            let text = std::fs::read(at(root, &p))
                .inspect_err(|e| tracing::warn!("cannot read `{p}`: {e}"))
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            Step::Script(PathBuf::from(p), text)
        })
    };
    steps.extend(script("01-base.sh"));
    // The active app's variables of the SCIF specification, for the files that exist (as
    // `94-appsbase.sh` exports the per-app ones).
    let meta = format!("{own}/scif");
    let mut scif: Vec<(&str, String)> = vec![
        ("SCIF_APPBIN", format!("{own}/bin")),
        ("SCIF_APPLIB", format!("{own}/lib")),
    ];
    for (var, name) in [
        ("SCIF_APPENV", "env/90-environment.sh"),
        ("SCIF_APPLABELS", "labels.json"),
        ("SCIF_APPRUN", "runscript"),
        ("SCIF_APPSTART", "startscript"),
        ("SCIF_APPTEST", "test"),
        ("SCIF_APPHELP", "runscript.help"),
    ] {
        let p = format!("{meta}/{name}");
        if file(&p) {
            scif.push((var, p));
        }
    }
    steps.push(Step::Builtin(Box::new(move |env: &mut Vars| {
        for (k, v) in &scif {
            env.set(k, v);
        }
    })));
    steps.extend(script("90-environment.sh"));
    steps
}

/// Where the app's steps go among the image's environment scripts (sorted by name): right after
/// `95-apps.sh`, whose stock text they replace, or where it would sort when the image has none.
pub fn env_position(scripts: &[PathBuf]) -> usize {
    scripts
        .iter()
        .position(|p| p.file_name().is_some_and(|n| n > "95-apps.sh"))
        .unwrap_or(scripts.len())
}

#[cfg(test)]
#[path = "apps_tests.rs"]
mod tests;
