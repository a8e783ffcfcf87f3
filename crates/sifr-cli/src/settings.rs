//! Settings, resolved in one place with one precedence for every entry:
//!
//! command-line flag > `SIFR_<NAME>` > `APPTAINER_<NAME>` > `SINGULARITY_<NAME>` > config file > default.
//!
//! [`CATALOGUE`] is the table of every setting with its doc line; `sifr --help`, the docs and the
//! tests read it. Commands receive a resolved [`Settings`] and never look at the environment for
//! these names themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::args::GlobalArgs;

/// The prefixes searched for a setting's environment variable, strongest first.
pub const ENV_PREFIXES: &[&str] = &["SIFR_", "APPTAINER_", "SINGULARITY_"];

/// Where the default config file lives; `-c/--config` or `SIFR_CONFIG` point elsewhere.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/sifr/sifr.toml";

/// How a setting's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `1/0`, `true/false`, `yes/no`, `on/off` (any case).
    Bool,
    /// A filesystem path.
    Path,
    /// A comma-separated list. The strongest source gives the whole list (the command line's
    /// own repeatable flags, like `-B`, add to it rather than replace it).
    List,
    /// A whole number greater than zero.
    Number,
    /// A size in MiB, zero or more (zero turns the thing sized off).
    Size,
    /// One word out of a fixed set (any case).
    Choice(&'static [&'static str]),
    /// A duration in seconds, zero or more, with an optional fraction (`0.5`).
    Seconds,
}

/// One entry of the settings table.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    /// The key in the config file; upper-cased, it is the environment variable's suffix.
    pub key: &'static str,
    pub kind: Kind,
    /// The value used when nothing else sets it (`""` = unset).
    pub default: &'static str,
    pub doc: &'static str,
    /// Further environment-variable suffixes read after the key's own, under each prefix
    /// (`BINDPATH` for `bind`, as Apptainer reads both).
    pub also: &'static [&'static str],
}

/// Every setting sifr reads. Add new ones here; nothing else may read these variables.
pub const CATALOGUE: &[SettingDef] = &[
    SettingDef {
        key: "debug",
        kind: Kind::Bool,
        default: "false",
        doc: "Print debugging information (flag -d/--debug).",
        also: &[],
    },
    SettingDef {
        key: "verbose",
        kind: Kind::Bool,
        default: "false",
        doc: "Print informational messages (flag -v/--verbose).",
        also: &[],
    },
    SettingDef {
        key: "quiet",
        kind: Kind::Bool,
        default: "false",
        doc: "Print only errors (flag -q/--quiet).",
        also: &[],
    },
    SettingDef {
        key: "silent",
        kind: Kind::Bool,
        default: "false",
        doc: "Print nothing, not even errors (flag -s/--silent).",
        also: &[],
    },
    SettingDef {
        key: "nocolor",
        kind: Kind::Bool,
        default: "false",
        doc: "Never colour the output (flag --nocolor; NO_COLOR is honoured too).",
        also: &[],
    },
    SettingDef {
        key: "tmpdir",
        kind: Kind::Path,
        default: "",
        doc: "Directory for temporary build and extraction trees (default: $TMPDIR, else /tmp).",
        also: &[],
    },
    SettingDef {
        key: "cachedir",
        kind: Kind::Path,
        default: "",
        doc: "Directory for cached blobs and images (default: ~/.apptainer/cache).",
        also: &[],
    },
    SettingDef {
        key: "configdir",
        kind: Kind::Path,
        default: "",
        doc: "Per-user directory holding docker-config.json, the registry logins (default: ~/.apptainer).",
        also: &[],
    },
    SettingDef {
        key: "auth_file",
        kind: Kind::Path,
        default: "",
        doc: "Docker-style auth file that `registry login` writes and pulls read, instead of <configdir>/docker-config.json and ~/.docker/config.json (flag --authfile).",
        also: &[],
    },
    SettingDef {
        key: "bind",
        kind: Kind::List,
        default: "",
        doc: "Bind paths added to every container, `src[:dst[:ro|rw]]`, comma-separated; -B adds to them.",
        also: &["BINDPATH"],
    },
    SettingDef {
        key: "tmpfs_size",
        kind: Kind::Number,
        default: "64",
        doc: "Size in MiB of each container's session tmpfs, which holds --writable-tmpfs changes and --contain's /tmp (Apptainer's `sessiondir max size`).",
        also: &[],
    },
    SettingDef {
        key: "build_cache_size",
        kind: Kind::Size,
        default: "10240",
        doc: "Size in MiB the build cache may take (the trees a definition build keeps after its bootstrap and sections, under the cache directory's build/); the least recently used entries go beyond it. 0 turns the build cache off.",
        also: &[],
    },
    SettingDef {
        key: "isa_check",
        kind: Kind::Choice(crate::cmd::isa_check::IsaCheck::NAMES),
        default: "warn",
        doc: "Before exec/run/shell, compare the CPU features the image's programs need with this host's: warn, error (refuse to start) or off (flag --isa-check).",
        also: &[],
    },
    SettingDef {
        key: "share",
        kind: Kind::Bool,
        default: "true",
        doc: "Launches of the same image by the same user on one node (MPI ranks) share one attached image and one user namespace.",
        also: &[],
    },
    SettingDef {
        key: "share_idle",
        kind: Kind::Seconds,
        default: "0",
        doc: "How long the node's shared attachment of an image stays after its last launch exits, in seconds.",
        also: &[],
    },
    SettingDef {
        key: "nv",
        kind: Kind::Bool,
        default: "false",
        doc: "Bring the host's NVIDIA driver into every container, as --nv does (Apptainer's `always use nv`).",
        also: &[],
    },
    SettingDef {
        key: "nvccli",
        kind: Kind::Bool,
        default: "false",
        doc: "Find the NVIDIA driver's files with nvidia-container-cli, as --nvccli does (implies nv).",
        also: &[],
    },
    SettingDef {
        key: "rocm",
        kind: Kind::Bool,
        default: "false",
        doc: "Bring the host's AMD GPU driver into every container, as --rocm does (Apptainer's `always use rocm`).",
        also: &[],
    },
];

/// Where a resolved value came from, for `--debug` output and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(String),
    ConfigFile(PathBuf),
    Default,
}

/// A value read for a setting, with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub text: String,
    pub source: Source,
}

/// Settings errors name the variable or file and the bad value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid value `{value}` for setting `{key}` (from {origin}): expected a boolean")]
    NotBool {
        key: String,
        value: String,
        origin: String,
    },
    #[error(
        "invalid value `{value}` for setting `{key}` (from {origin}): expected a whole number above 0"
    )]
    NotNumber {
        key: String,
        value: String,
        origin: String,
    },
    #[error(
        "invalid value `{value}` for setting `{key}` (from {origin}): expected a size in MiB, 0 or more"
    )]
    NotSize {
        key: String,
        value: String,
        origin: String,
    },
    #[error(
        "invalid value `{value}` for setting `{key}` (from {origin}): expected a number of seconds, 0 or more"
    )]
    NotSeconds {
        key: String,
        value: String,
        origin: String,
    },
    #[error(
        "invalid value `{value}` for setting `{key}` (from {origin}): expected one of {choices}"
    )]
    NotChoice {
        key: String,
        value: String,
        origin: String,
        choices: String,
    },
    #[error("cannot read config file `{path}`")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file `{path}`")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("unknown setting `{key}` in config file `{path}`")]
    UnknownKey {
        key: String,
        path: PathBuf,
        hint: Option<String>,
    },
}

impl SettingsError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SettingsError::NotBool { .. } => Some("use one of 1, 0, true, false, yes, no".into()),
            SettingsError::NotNumber { key, .. } if key == "tmpfs_size" => {
                Some("the size is in MiB, e.g. `256`".into())
            }
            SettingsError::NotSize { .. } => {
                Some("the size is in MiB, e.g. `10240`; 0 turns it off".into())
            }
            SettingsError::UnknownKey { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

/// Read access to environment variables, so resolution can be tested without touching the
/// process environment.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A captured environment, as `cmd::action` hands the host's to the launch.
impl EnvSource for &[(String, String)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

/// The resolved settings handed to every command.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub debug: bool,
    pub verbose: bool,
    pub quiet: bool,
    pub silent: bool,
    /// Whether stderr output may use colour (only when it is also a terminal).
    pub color: bool,
    pub tmpdir: Option<PathBuf>,
    pub cachedir: Option<PathBuf>,
    /// Where per-user state lives (`~/.apptainer` when unset).
    pub configdir: Option<PathBuf>,
    /// The one auth file for registry credentials, when set.
    pub auth_file: Option<PathBuf>,
    /// Bind specs from the environment or the config file, before the command line's `-B`.
    pub bind: Vec<String>,
    /// Size of the session tmpfs in MiB.
    pub tmpfs_size_mib: u64,
    /// Size the build cache may take, in MiB; 0: no build cache.
    pub build_cache_mib: u64,
    /// What to do when an image's programs need CPU features this host lacks.
    pub isa_check: crate::cmd::isa_check::IsaCheck,
    /// Share attached images between launches on this node (`sifr_launch::share`).
    pub share: bool,
    /// How long a shared attachment outlives its last launch.
    pub share_idle: std::time::Duration,
    /// GPU support for every container (`--nv`, `--nvccli`, `--rocm` add to these).
    pub nv: bool,
    pub nvccli: bool,
    pub rocm: bool,
    /// The directory of the config file (named or default, whether it exists or not): where an
    /// administrator puts `nvliblist.conf` and `rocmliblist.conf`.
    pub config_dir: PathBuf,
    /// Every setting with its text and origin, in catalogue order.
    pub resolved: Vec<(&'static str, Resolved)>,
    /// What resolution found worth a warning (a legacy variable contradicting its
    /// `APPTAINER_` twin); printed once logging is set up.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Resolve every catalogue entry from flags, environment, config file and defaults.
    pub fn resolve(flags: &GlobalArgs, env: &dyn EnvSource) -> Result<Settings, SettingsError> {
        let (config_path, required) = config_path(flags, env);
        let config = load_config(&config_path, required)?;
        let mut out = Settings {
            config_dir: config_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            ..Settings::default()
        };
        for def in CATALOGUE {
            let r = resolve_one(def, flags, env, config.as_ref(), &mut out.warnings);
            match def.key {
                "debug" => out.debug = parse_bool(def, &r)?,
                "verbose" => out.verbose = parse_bool(def, &r)?,
                "quiet" => out.quiet = parse_bool(def, &r)?,
                "silent" => out.silent = parse_bool(def, &r)?,
                "nocolor" => {
                    let no_color = parse_bool(def, &r)? || env.var("NO_COLOR").is_some();
                    out.color = !no_color;
                }
                "tmpdir" => out.tmpdir = non_empty_path(&r.text),
                "cachedir" => out.cachedir = non_empty_path(&r.text),
                "configdir" => out.configdir = non_empty_path(&r.text),
                "auth_file" => out.auth_file = non_empty_path(&r.text),
                "bind" => {
                    out.bind = r
                        .text
                        .split(',')
                        .map(str::trim)
                        .filter(|b| !b.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "tmpfs_size" => out.tmpfs_size_mib = parse_number(def, &r)?,
                "build_cache_size" => out.build_cache_mib = parse_size(def, &r)?,
                "isa_check" => {
                    let t = parse_choice(def, &r)?;
                    out.isa_check = t.parse().unwrap_or_default();
                }
                "share" => out.share = parse_bool(def, &r)?,
                "share_idle" => out.share_idle = parse_seconds(def, &r)?,
                "nv" => out.nv = parse_bool(def, &r)?,
                "nvccli" => out.nvccli = parse_bool(def, &r)?,
                "rocm" => out.rocm = parse_bool(def, &r)?,
                other => unreachable!("setting `{other}` is in the catalogue but not resolved"),
            }
            out.resolved.push((def.key, r));
        }
        Ok(out)
    }

    /// The text and origin of one setting.
    pub fn get(&self, key: &str) -> Option<&Resolved> {
        self.resolved
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r)
    }
}

fn non_empty_path(text: &str) -> Option<PathBuf> {
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// The flag's value, if the flag was given on the command line.
fn flag_value(key: &str, flags: &GlobalArgs) -> Option<String> {
    let set = match key {
        "debug" => flags.debug,
        "verbose" => flags.verbose,
        "quiet" => flags.quiet,
        "silent" => flags.silent,
        "nocolor" => flags.nocolor,
        _ => false,
    };
    set.then(|| "true".to_string())
}

fn resolve_one(
    def: &SettingDef,
    flags: &GlobalArgs,
    env: &dyn EnvSource,
    config: Option<&(PathBuf, toml::Table)>,
    warnings: &mut Vec<String>,
) -> Resolved {
    if let Some(text) = flag_value(def.key, flags) {
        return Resolved {
            text,
            source: Source::Flag,
        };
    }
    let key = def.key.to_ascii_uppercase();
    let suffixes: Vec<&str> = std::iter::once(key.as_str())
        .chain(def.also.iter().copied())
        .collect();
    if let Some(hit) = lookup_env(&suffixes, env) {
        warnings.extend(hit.warning);
        return Resolved {
            text: hit.text,
            source: Source::Env(hit.name),
        };
    }
    if let Some((path, table)) = config
        && let Some(v) = table.get(def.key)
    {
        let text = match v {
            toml::Value::String(s) => s.clone(),
            // A list setting may be written as a TOML array of strings.
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        return Resolved {
            text,
            source: Source::ConfigFile(path.clone()),
        };
    }
    Resolved {
        text: def.default.to_string(),
        source: Source::Default,
    }
}

/// An environment variable found by [`lookup_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvHit {
    /// The variable's full name (`APPTAINER_PID`).
    pub name: String,
    pub text: String,
    /// Set when `APPTAINER_<S>` won and `SINGULARITY_<S>` holds something else, as Apptainer
    /// warns; the legacy variable is then ignored.
    pub warning: Option<String>,
}

/// The strongest of `<prefix><suffix>` that is set, trying every suffix under `SIFR_`, then
/// every suffix under `APPTAINER_`, then under `SINGULARITY_` (the order Apptainer tries a
/// flag's `EnvKeys` under its two prefixes). A set but empty variable still counts: it is the
/// way to override a weaker one with nothing.
pub fn lookup_env(suffixes: &[&str], env: &dyn EnvSource) -> Option<EnvHit> {
    for prefix in ENV_PREFIXES {
        for suffix in suffixes {
            let name = format!("{prefix}{suffix}");
            let Some(text) = env.var(&name) else {
                continue;
            };
            let legacy = format!("SINGULARITY_{suffix}");
            let warning = (*prefix == "APPTAINER_")
                .then(|| env.var(&legacy))
                .flatten()
                .filter(|other| *other != text)
                .map(|_| format!("`{legacy}` and `{name}` differ: using `{name}`"));
            return Some(EnvHit {
                name,
                text,
                warning,
            });
        }
    }
    None
}

/// A boolean's text: `1/0`, `true/false`, `yes/no`, `on/off`, `t/f`, `y/n` in any case; empty is
/// false.
pub fn parse_bool_text(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "n" | "off" | "" => Some(false),
        _ => None,
    }
}

fn origin(r: &Resolved) -> String {
    match &r.source {
        Source::Flag => "the command line".into(),
        Source::Env(n) => format!("environment variable `{n}`"),
        Source::ConfigFile(p) => format!("config file `{}`", p.display()),
        Source::Default => "the default".into(),
    }
}

/// The value of a [`Kind::Choice`] setting, lower-cased, if it is one of the choices.
fn parse_choice(def: &SettingDef, r: &Resolved) -> Result<String, SettingsError> {
    let Kind::Choice(choices) = def.kind else {
        unreachable!("`{}` is not a choice", def.key)
    };
    let v = r.text.trim().to_ascii_lowercase();
    if choices.contains(&v.as_str()) {
        return Ok(v);
    }
    Err(SettingsError::NotChoice {
        key: def.key.to_string(),
        value: r.text.clone(),
        origin: origin(r),
        choices: choices.join(", "),
    })
}

fn parse_bool(def: &SettingDef, r: &Resolved) -> Result<bool, SettingsError> {
    debug_assert_eq!(def.kind, Kind::Bool);
    parse_bool_text(&r.text).ok_or_else(|| SettingsError::NotBool {
        key: def.key.to_string(),
        value: r.text.clone(),
        origin: origin(r),
    })
}

fn parse_number(def: &SettingDef, r: &Resolved) -> Result<u64, SettingsError> {
    debug_assert_eq!(def.kind, Kind::Number);
    match r.text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SettingsError::NotNumber {
            key: def.key.to_string(),
            value: r.text.clone(),
            origin: origin(r),
        }),
    }
}

fn parse_size(def: &SettingDef, r: &Resolved) -> Result<u64, SettingsError> {
    debug_assert_eq!(def.kind, Kind::Size);
    r.text
        .trim()
        .parse::<u64>()
        .map_err(|_| SettingsError::NotSize {
            key: def.key.to_string(),
            value: r.text.clone(),
            origin: origin(r),
        })
}

fn parse_seconds(def: &SettingDef, r: &Resolved) -> Result<std::time::Duration, SettingsError> {
    debug_assert_eq!(def.kind, Kind::Seconds);
    r.text
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|n| std::time::Duration::try_from_secs_f64(n).ok())
        .ok_or_else(|| SettingsError::NotSeconds {
            key: def.key.to_string(),
            value: r.text.clone(),
            origin: origin(r),
        })
}

/// The config file: `-c/--config`, else `SIFR_CONFIG`, else the default path; and whether it
/// must exist (an explicitly named file must, the default one is optional).
fn config_path(flags: &GlobalArgs, env: &dyn EnvSource) -> (PathBuf, bool) {
    if let Some(p) = &flags.config {
        (p.clone(), true)
    } else if let Some(p) = env.var("SIFR_CONFIG") {
        (PathBuf::from(p), true)
    } else {
        (PathBuf::from(DEFAULT_CONFIG_FILE), false)
    }
}

fn load_config(
    path: &Path,
    required: bool,
) -> Result<Option<(PathBuf, toml::Table)>, SettingsError> {
    let path = path.to_path_buf();
    if !required && !Path::new(&path).exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e| SettingsError::ParseConfig {
        path: path.clone(),
        source: Box::new(e),
    })?;
    for key in table.keys() {
        if !CATALOGUE.iter().any(|d| d.key == key) {
            let hint = closest_key(key).map(|k| format!("did you mean `{k}`?"));
            return Err(SettingsError::UnknownKey {
                key: key.clone(),
                path,
                hint,
            });
        }
    }
    Ok(Some((path, table)))
}

fn closest_key(key: &str) -> Option<&'static str> {
    CATALOGUE
        .iter()
        .map(|d| (d.key, edit_distance(key, d.key)))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod settings_tests;
