//! The environment-variable twins of the action flags: `APPTAINER_PID=1 sifr exec ...` acts as
//! `sifr exec --pid ...`, as every Apptainer action flag has a variable (its `EnvKeys`, under
//! the `APPTAINER_` prefix or the legacy `SINGULARITY_` one; sifr adds `SIFR_`).
//!
//! [`TABLES`] lists the tables of them ([`TWINS`] for the core flags, then one per area
//! module), each entry with the flag, its variable suffixes and a doc line; [`apply`] fills the parsed [`ActionFlags`] from a captured environment before
//! `action::request` moves them into a `sifr_launch::Request`, so a twin's value goes through
//! exactly the flag's parsing (in `sifr_launch`).
//!
//! Rules, Apptainer's (`pkg/cmdline`): a flag given on the command line beats its variable,
//! except for [`Slot::Append`] twins (`--mount`), whose entries are added to the flag's. Among
//! variables, `SIFR_` beats `APPTAINER_` beats `SINGULARITY_` (`settings::lookup_env`, which
//! also produces Apptainer's warning when the last two differ). A variable that is set but blank
//! changes nothing. There is no config-file layer here, unlike `settings`: these are per-launch
//! choices with no `apptainer.conf` equivalent, and a site-wide `pid = true` would silently change
//! every job. Twins that are settings already (`bind`, `nv`, `nvccli`, `rocm`, `isa_check`)
//! are resolved in `settings` and are not repeated here.
//!
//! This module reads only the environment it is handed (never the process's), and does no
//! parsing beyond booleans and list splitting: bad mount specs, `--no-mount` names and the like
//! are found by the flag's own parser, and [`Applied::source`] names the variable in that error.

use std::path::PathBuf;

use super::action::ActionFlags;
use crate::settings::{EnvSource, lookup_env, parse_bool_text};

/// Where a twin's value goes in [`ActionFlags`], which also says how its text is read.
pub enum Slot<'a> {
    /// A switch: a true value turns the flag on (it cannot turn a given flag off).
    Switch(&'a mut bool),
    /// One value, taken whole, when the flag is absent.
    Text(&'a mut Option<String>),
    /// One path, taken whole, when the flag is absent.
    Path(&'a mut Option<PathBuf>),
    /// A comma-separated list (items trimmed, empty ones dropped) when the flag is absent.
    List(&'a mut Vec<String>),
    /// A comma-separated list of paths when the flag is absent.
    Paths(&'a mut Vec<PathBuf>),
    /// Newline-separated entries (blank lines dropped) added after the flag's own.
    Append(&'a mut Vec<String>),
}

impl Slot<'_> {
    /// How the variable's text is read, for the docs.
    pub fn describe(&self) -> &'static str {
        match self {
            Slot::Switch(_) => "boolean",
            Slot::Text(_) | Slot::Path(_) => "value",
            Slot::List(_) | Slot::Paths(_) => "comma-separated list",
            Slot::Append(_) => "one a line, added to the flag's",
        }
    }
}

/// One flag and its variables.
pub struct Twin {
    /// The long flag, without `--`.
    pub flag: &'static str,
    /// Variable suffixes, strongest first, each tried under `SIFR_`, `APPTAINER_` and
    /// `SINGULARITY_` (Apptainer's `EnvKeys` for the flag, in its order).
    pub keys: &'static [&'static str],
    pub doc: &'static str,
    /// The field of [`ActionFlags`] the value goes to.
    pub slot: for<'a> fn(&'a mut ActionFlags) -> Slot<'a>,
}

/// Every table of twins: [`TWINS`], then one per group of flags that has its own module
/// (`action_<area>.rs`), so that each area keeps its flags and their variables together.
pub const TABLES: &[&[Twin]] = &[
    TWINS,
    super::action_runtime::RUNTIME_TWINS,
    super::action_remote::REMOTE_TWINS,
    GPU_TWINS,
    super::action_net::NET_TWINS,
    super::action_privs::PRIVS_TWINS,
    super::action_cgroup::CGROUP_TWINS,
    super::action_mounts::MOUNTS_TWINS,
];

/// The twins of the GPU flags that are not settings (`--nv`, `--rocm` are: `APPTAINER_NV`).
pub const GPU_TWINS: &[Twin] = &[
    Twin {
        flag: "no-nv",
        keys: &["NV_OFF", "NO_NV"],
        doc: "Turn --nv (or `APPTAINER_NV`) off.",
        slot: |f| Slot::Switch(&mut f.gpu.no_nv),
    },
    Twin {
        flag: "no-rocm",
        keys: &["ROCM_OFF", "NO_ROCM"],
        doc: "Turn --rocm (or `APPTAINER_ROCM`) off.",
        slot: |f| Slot::Switch(&mut f.gpu.no_rocm),
    },
];

/// Every action flag's environment twin, in table order.
pub fn all_twins() -> impl Iterator<Item = &'static Twin> {
    TABLES.iter().flat_map(|t| t.iter())
}

/// The twins of the core action flags. Names are Apptainer's, from the `EnvKeys` of
/// `cmd/internal/cli/action_flags.go`.
pub const TWINS: &[Twin] = &[
    Twin {
        flag: "cleanenv",
        keys: &["CLEANENV"],
        doc: "Do not pass the host environment.",
        slot: |f| Slot::Switch(&mut f.cleanenv),
    },
    Twin {
        flag: "contain",
        keys: &["CONTAIN"],
        doc: "Minimal /dev, empty private /tmp, /var/tmp and home, no cwd bind.",
        slot: |f| Slot::Switch(&mut f.contain),
    },
    Twin {
        flag: "containall",
        keys: &["CONTAINALL"],
        doc: "--contain plus --cleanenv, --pid and --ipc.",
        slot: |f| Slot::Switch(&mut f.containall),
    },
    Twin {
        flag: "no-home",
        keys: &["NO_HOME"],
        doc: "Do not mount the home directory.",
        slot: |f| Slot::Switch(&mut f.no_home),
    },
    Twin {
        flag: "home",
        keys: &["HOME"],
        doc: "The home directory to mount, `src[:dst]`.",
        slot: |f| Slot::Text(&mut f.home),
    },
    Twin {
        flag: "cwd",
        // Apptainer's `--cwd` reads CWD and TARGET_CWD, its hidden twin `--pwd` PWD and
        // TARGET_PWD; sifr has one flag with both names, so it reads all four, `--cwd`'s first.
        keys: &["CWD", "TARGET_CWD", "PWD", "TARGET_PWD"],
        doc: "The working directory inside the container.",
        slot: |f| Slot::Path(&mut f.pwd),
    },
    Twin {
        flag: "writable",
        keys: &["WRITABLE"],
        doc: "Write into the image itself.",
        slot: |f| Slot::Switch(&mut f.writable),
    },
    Twin {
        flag: "writable-tmpfs",
        keys: &["WRITABLE_TMPFS"],
        doc: "Writes go to the session tmpfs and vanish at exit.",
        slot: |f| Slot::Switch(&mut f.writable_tmpfs),
    },
    Twin {
        flag: "overlay",
        keys: &["OVERLAY", "OVERLAYIMAGE"],
        doc: "The overlay layers (directories, ext3 or SquashFS images, SIFs), `:ro` for a read-only one.",
        slot: |f| Slot::List(&mut f.overlay),
    },
    Twin {
        flag: "pid",
        keys: &["PID", "UNSHARE_PID"],
        doc: "A new PID namespace under a small init.",
        slot: |f| Slot::Switch(&mut f.pid),
    },
    Twin {
        flag: "ipc",
        keys: &["IPC", "UNSHARE_IPC"],
        doc: "A new IPC namespace.",
        slot: |f| Slot::Switch(&mut f.ipc),
    },
    Twin {
        flag: "uts",
        keys: &["UTS", "UNSHARE_UTS"],
        doc: "A new UTS namespace.",
        slot: |f| Slot::Switch(&mut f.uts),
    },
    Twin {
        flag: "hostname",
        keys: &["HOSTNAME"],
        doc: "The container's host name (implies --uts).",
        slot: |f| Slot::Text(&mut f.hostname),
    },
    Twin {
        flag: "workdir",
        keys: &["WORKDIR"],
        doc: "With --contain, the directory that keeps /tmp, /var/tmp and home.",
        slot: |f| Slot::Path(&mut f.workdir),
    },
    Twin {
        flag: "no-mount",
        keys: &["NO_MOUNT"],
        doc: "Default mounts to leave out.",
        slot: |f| Slot::List(&mut f.no_mount),
    },
    Twin {
        flag: "mount",
        keys: &["MOUNT"],
        doc: "Docker-style bind specs, one a line.",
        slot: |f| Slot::Append(&mut f.mount),
    },
    Twin {
        flag: "env-file",
        keys: &["ENV_FILE"],
        doc: "Files of `NAME=value` lines to set variables from.",
        slot: |f| Slot::Paths(&mut f.env_file),
    },
    Twin {
        flag: "fakeroot",
        keys: &["FAKEROOT"],
        doc: "Run as root inside a user namespace.",
        slot: |f| Slot::Switch(&mut f.fakeroot),
    },
    Twin {
        flag: "userns",
        keys: &["USERNS", "UNSHARE_USERNS"],
        doc: "Run in a user namespace even as root.",
        slot: |f| Slot::Switch(&mut f.userns),
    },
];

/// A variable that is not a boolean where the flag is a switch.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid value `{value}` for `--{flag}` (from environment variable `{var}`): expected a boolean"
)]
pub struct NotBool {
    pub flag: &'static str,
    pub var: String,
    pub value: String,
}

impl NotBool {
    pub fn hint(&self) -> String {
        format!(
            "use one of 1, 0, true, false, yes, no, or unset `{}`",
            self.var
        )
    }
}

/// A flag that took (some of) its value from a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FromEnv {
    flag: &'static str,
    var: String,
    /// The index of the first entry the variable gave (non-zero when appended to the flag's).
    first: usize,
}

/// What [`apply`] did: which flags came from which variables, and what deserves a warning.
#[derive(Debug, Default)]
pub struct Applied {
    from_env: Vec<FromEnv>,
    /// A legacy `SINGULARITY_` variable contradicted its `APPTAINER_` twin.
    pub warnings: Vec<String>,
}

impl Applied {
    /// `environment variable `NAME`` when the value of `flag` (its `index`th entry, for a list)
    /// came from the environment, for error messages.
    pub fn origin(&self, flag: &str, index: usize) -> Option<String> {
        let source = self.source(flag, index);
        source.is_named().then(|| source.to_string())
    }

    /// Where the value of `flag` (its `index`th entry, for a list) came from: the variable
    /// that gave it, else the command line.
    pub fn source(&self, flag: &str, index: usize) -> sifr_launch::Origin {
        self.from_env
            .iter()
            .find(|e| e.flag == flag && index >= e.first)
            .map_or(sifr_launch::Origin::CommandLine, |e| {
                sifr_launch::Origin::EnvVar(e.var.clone())
            })
    }

    /// The variable each flag took its value from, as `(flag, variable)`.
    pub fn sources(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.from_env.iter().map(|e| (e.flag, e.var.as_str()))
    }
}

/// `flags` completed from `env`'s twins ([`apply`] on a copy), with a bad value as an error
/// that carries its hint.
pub fn completed(
    flags: &ActionFlags,
    env: &[(String, String)],
) -> anyhow::Result<(ActionFlags, Applied)> {
    let mut flags = flags.clone();
    let applied =
        apply(&mut flags, &env).map_err(|e| crate::report::Hinted::new(e.to_string(), e.hint()))?;
    Ok((flags, applied))
}

/// Fill `flags` from the twins set in `env` where the command line left them unset (or, for
/// [`Slot::Append`], after its entries).
pub fn apply(flags: &mut ActionFlags, env: &dyn EnvSource) -> Result<Applied, NotBool> {
    let mut applied = Applied::default();
    for twin in all_twins() {
        let Some(hit) = lookup_env(twin.keys, env) else {
            continue;
        };
        applied.warnings.extend(hit.warning);
        let text = hit.text.trim();
        if text.is_empty() {
            continue;
        }
        let list = || {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut first = 0;
        let took = match (twin.slot)(flags) {
            Slot::Switch(on) => {
                let value = parse_bool_text(text).ok_or_else(|| NotBool {
                    flag: twin.flag,
                    var: hit.name.clone(),
                    value: hit.text.clone(),
                })?;
                // A flag given stays on; a false variable simply leaves an absent flag off.
                let took = !*on && value;
                *on |= value;
                took
            }
            Slot::Text(v) if v.is_none() => {
                *v = Some(text.to_owned());
                true
            }
            Slot::Path(v) if v.is_none() => {
                *v = Some(PathBuf::from(text));
                true
            }
            Slot::List(v) if v.is_empty() => {
                v.extend(list());
                true
            }
            Slot::Paths(v) if v.is_empty() => {
                v.extend(list().map(PathBuf::from));
                true
            }
            // Given on the command line: the flag wins.
            Slot::Text(_) | Slot::Path(_) | Slot::List(_) | Slot::Paths(_) => false,
            Slot::Append(v) => {
                first = v.len();
                v.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
                true
            }
        };
        if took {
            applied.from_env.push(FromEnv {
                flag: twin.flag,
                var: hit.name,
                first,
            });
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    /// `sifr exec ARGS img true`'s action flags.
    fn flags(args: &[&str]) -> ActionFlags {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            flags: ActionFlags,
        }
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .flags
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn applied(args: &[&str], pairs: &[(&str, &str)]) -> (ActionFlags, Applied) {
        let mut f = flags(args);
        let a = apply(&mut f, &env(pairs).as_slice()).unwrap();
        (f, a)
    }

    #[test]
    fn switches_turn_on_from_any_prefix_and_their_unshare_aliases() {
        let (f, a) = applied(&[], &[("APPTAINER_PID", "1")]);
        assert!(f.pid && !f.ipc);
        assert_eq!(
            a.origin("pid", 0).as_deref(),
            Some("environment variable `APPTAINER_PID`")
        );
        let (f, _) = applied(&[], &[("SINGULARITY_CONTAINALL", "yes")]);
        assert!(f.containall);
        let (f, _) = applied(&[], &[("SIFR_WRITABLE_TMPFS", "true")]);
        assert!(f.writable_tmpfs);
        let (f, _) = applied(
            &[],
            &[("APPTAINER_UNSHARE_USERNS", "1"), ("SINGULARITY_UTS", "1")],
        );
        assert!(f.userns && f.uts);
    }

    #[test]
    fn a_false_or_blank_variable_leaves_the_flag_alone() {
        let (f, a) = applied(&[], &[("APPTAINER_PID", "0"), ("APPTAINER_CONTAIN", " ")]);
        assert!(!f.pid && !f.contain);
        assert_eq!(a.sources().count(), 0);
        // A flag given stays given: the variable cannot turn it off.
        let (f, a) = applied(&["--pid"], &[("APPTAINER_PID", "false")]);
        assert!(f.pid);
        assert_eq!(a.origin("pid", 0), None);
    }

    #[test]
    fn the_flag_beats_the_variable_for_values_and_lists() {
        let (f, a) = applied(
            &[
                "--hostname",
                "flag",
                "--no-mount",
                "tmp",
                "--env-file",
                "/f",
            ],
            &[
                ("APPTAINER_HOSTNAME", "env"),
                ("APPTAINER_NO_MOUNT", "home"),
                ("APPTAINER_ENV_FILE", "/e"),
            ],
        );
        assert_eq!(f.hostname.as_deref(), Some("flag"));
        assert_eq!(f.no_mount, vec!["tmp"]);
        assert_eq!(f.env_file, vec![PathBuf::from("/f")]);
        assert_eq!(a.sources().count(), 0);
    }

    #[test]
    fn sifr_beats_apptainer_beats_singularity_and_a_contradiction_warns() {
        let (f, a) = applied(
            &[],
            &[
                ("SIFR_HOSTNAME", "s"),
                ("APPTAINER_HOSTNAME", "a"),
                ("SINGULARITY_HOSTNAME", "g"),
            ],
        );
        assert_eq!(f.hostname.as_deref(), Some("s"));
        assert!(a.warnings.is_empty());
        let (f, a) = applied(
            &[],
            &[("APPTAINER_HOSTNAME", "a"), ("SINGULARITY_HOSTNAME", "g")],
        );
        assert_eq!(f.hostname.as_deref(), Some("a"));
        assert_eq!(
            a.warnings,
            vec![
                "`SINGULARITY_HOSTNAME` and `APPTAINER_HOSTNAME` differ: using `APPTAINER_HOSTNAME`"
            ]
        );
        let (f, _) = applied(&[], &[("SINGULARITY_HOSTNAME", "g")]);
        assert_eq!(f.hostname.as_deref(), Some("g"));
    }

    #[test]
    fn cwd_reads_its_four_names_cwd_first() {
        let (f, a) = applied(
            &[],
            &[("APPTAINER_PWD", "/p"), ("APPTAINER_TARGET_CWD", "/t")],
        );
        assert_eq!(f.pwd.as_deref(), Some(std::path::Path::new("/t")));
        assert_eq!(
            a.origin("cwd", 0).as_deref(),
            Some("environment variable `APPTAINER_TARGET_CWD`")
        );
        let (f, _) = applied(&["--cwd", "/flag"], &[("APPTAINER_CWD", "/c")]);
        assert_eq!(f.pwd.as_deref(), Some(std::path::Path::new("/flag")));
    }

    #[test]
    fn lists_split_on_commas_and_trim() {
        let (f, _) = applied(
            &[],
            &[
                ("APPTAINER_NO_MOUNT", "home, tmp,,cwd"),
                ("APPTAINER_ENV_FILE", "/a.env, /b.env"),
            ],
        );
        assert_eq!(f.no_mount, vec!["home", "tmp", "cwd"]);
        assert_eq!(
            f.env_file,
            vec![PathBuf::from("/a.env"), PathBuf::from("/b.env")]
        );
    }

    #[test]
    fn mount_variable_lines_are_added_after_the_flags_own() {
        let (f, a) = applied(
            &["--mount", "type=bind,src=/f,dst=/f"],
            &[(
                "APPTAINER_MOUNT",
                "type=bind,src=/a,dst=/a\n\n  type=bind,src=/b,dst=/b,ro\n",
            )],
        );
        assert_eq!(
            f.mount,
            vec![
                "type=bind,src=/f,dst=/f",
                "type=bind,src=/a,dst=/a",
                "type=bind,src=/b,dst=/b,ro"
            ]
        );
        assert_eq!(a.origin("mount", 0), None);
        assert_eq!(
            a.origin("mount", 2).as_deref(),
            Some("environment variable `APPTAINER_MOUNT`")
        );
    }

    #[test]
    fn a_switch_that_is_not_a_boolean_names_the_variable_and_value() {
        let mut f = flags(&[]);
        let e = apply(&mut f, &env(&[("APPTAINER_PID", "maybe")]).as_slice()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value `maybe` for `--pid` (from environment variable `APPTAINER_PID`): expected a boolean"
        );
        assert!(e.hint().contains("unset `APPTAINER_PID`"));
    }

    /// docs/runtime.md has a row for every twin with all its names and how it is read.
    #[test]
    fn runtime_doc_lists_every_twin() {
        let doc = include_str!("../../../../docs/runtime.md");
        let (_, doc) = doc
            .split_once("## Environment-variable twins of the flags")
            .expect("docs/runtime.md has the twins section");
        for t in all_twins() {
            let head = format!("| `--{}` |", t.flag);
            let row = doc
                .lines()
                .find(|l| l.starts_with(&head))
                .unwrap_or_else(|| panic!("docs/runtime.md has no row for --{}", t.flag));
            for k in t.keys {
                assert!(row.contains(&format!("`{k}`")), "{row} lacks {k}");
            }
            let how = (t.slot)(&mut flags(&[])).describe();
            assert!(row.contains(how), "{row}: not read as {how}");
        }
    }

    #[test]
    fn every_twin_names_a_real_flag_and_no_setting() {
        use clap::CommandFactory as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            flags: ActionFlags,
        }
        let cmd = T::command();
        let settings: Vec<String> = crate::settings::CATALOGUE
            .iter()
            .flat_map(|d| {
                std::iter::once(d.key.to_ascii_uppercase())
                    .chain(d.also.iter().map(|a| a.to_string()))
            })
            .collect();
        let mut seen = Vec::new();
        for t in all_twins() {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(t.flag)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&t.flag))),
                "no flag --{}",
                t.flag
            );
            assert!(!t.doc.is_empty() && !t.keys.is_empty(), "{}", t.flag);
            for k in t.keys {
                assert!(!settings.contains(&k.to_string()), "{k} is a setting too");
                assert!(!seen.contains(k), "{k} twice");
                seen.push(k);
            }
        }
    }
}
