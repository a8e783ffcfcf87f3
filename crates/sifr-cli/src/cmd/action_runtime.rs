//! The action flags that shape how the container runs beyond its mounts and namespaces:
//! `--compat`, `--no-init`, `--no-pid`, `--no-umask`, `--unsquash`, `--sharens`, `--no-env`,
//! `--no-eval`, `--containlibs`, `--intel-hpu`, the fakeroot tweaks (`--ignore-subuid`, ...),
//! `--app` (the SCIF app, `sifr_launch::apps`), and the ones accepted for scripts whose meaning
//! belongs elsewhere or is Apptainer's own machinery (`--device`, `--underlay`,
//! `--runscript-timeout`). Each has its
//! environment twin in [`RUNTIME_TWINS`].
//!
//! [`RuntimeFlags::fill`] moves them into the `sifr_launch::Request`; `--compat` is expanded
//! there, before the core flags are read, as the set of flags it stands for.

use std::path::PathBuf;

use clap::Args;

use super::action::ActionFlags;
use super::action_env::{Slot, Twin};
use crate::report::Hinted;

/// See the module docs. Names, short names and meanings are Apptainer's.
#[derive(Debug, Clone, Default, Args)]
pub struct RuntimeFlags {
    /// Run an app of a SCIF image (its runscript, environment and labels).
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// As close to Docker/OCI as a native container gets: --containall, --no-init, --no-umask,
    /// --no-eval and --writable-tmpfs.
    #[arg(long)]
    pub compat: bool,
    /// With a PID namespace, run the command as PID 1 (no init above it to reap zombies and
    /// forward signals).
    #[arg(long)]
    pub no_init: bool,
    /// No new PID namespace, even with --containall or for an instance.
    #[arg(long)]
    pub no_pid: bool,
    /// Start the command with umask 0022 instead of the caller's umask.
    #[arg(long)]
    pub no_umask: bool,
    /// Extract a SIF or squashfs image to a temporary sandbox instead of mounting it.
    #[arg(long)]
    pub unsquash: bool,
    /// Share one attached image and namespace set with the other launches of this image on
    /// this node (sifr does so by default unless the `share` setting is off).
    #[arg(long)]
    pub sharens: bool,
    /// Host variables not to import into the container (comma-separated, repeatable).
    #[arg(long, value_name = "NAMES")]
    pub no_env: Vec<String>,
    /// Take --env and APPTAINERENV_* values literally instead of shell-expanding them.
    #[arg(long)]
    pub no_eval: bool,
    /// Host library files to bind into /.singularity.d/libs (comma-separated, repeatable).
    #[arg(long, hide = true, value_name = "FILES", value_delimiter = ',')]
    pub containlibs: Vec<PathBuf>,
    /// Intel Gaudi accelerators: their device nodes in --contain's minimal /dev.
    #[arg(long)]
    pub intel_hpu: bool,
    /// A CDI device (`vendor.com/class=name`); not supported by sifr (its error says what to use).
    #[arg(long, value_name = "NAME")]
    pub device: Vec<String>,
    /// Directories holding CDI device definitions (with --device).
    #[arg(long, value_name = "DIRS")]
    pub cdi_dirs: Vec<String>,
    /// With --fakeroot, map root alone even when /etc/subuid gives you a range.
    #[arg(long)]
    pub ignore_subuid: bool,
    /// With --fakeroot, never use the `fakeroot` command (sifr never does).
    #[arg(long)]
    pub ignore_fakeroot_command: bool,
    /// Do not use user namespaces (Apptainer's setuid mode; sifr always needs them).
    #[arg(long)]
    pub ignore_userns: bool,
    /// Deprecated in Apptainer (overlay is preferred): accepted, with its warning.
    #[arg(long, hide = true)]
    pub underlay: bool,
    /// How long an environment script may run before its commands are killed and the launch
    /// fails (a Go duration such as `90s` or `2m`).
    #[arg(long, value_name = "DURATION")]
    pub runscript_timeout: Option<String>,
}

/// The twins of [`RuntimeFlags`], Apptainer's `EnvKeys` for each.
pub const RUNTIME_TWINS: &[Twin] = &[
    Twin {
        flag: "app",
        keys: &["APP", "APPNAME"],
        doc: "The SCIF app to run.",
        slot: |f| Slot::Text(&mut f.runtime.app),
    },
    Twin {
        flag: "compat",
        keys: &["COMPAT"],
        doc: "OCI-like defaults (--containall --no-init --no-umask --no-eval --writable-tmpfs).",
        slot: |f| Slot::Switch(&mut f.runtime.compat),
    },
    Twin {
        flag: "no-init",
        keys: &["NOSHIMINIT"],
        doc: "The command is PID 1 of the PID namespace.",
        slot: |f| Slot::Switch(&mut f.runtime.no_init),
    },
    Twin {
        flag: "no-pid",
        keys: &["NO_PID"],
        doc: "No PID namespace, even with --containall.",
        slot: |f| Slot::Switch(&mut f.runtime.no_pid),
    },
    Twin {
        flag: "no-umask",
        keys: &["NO_UMASK"],
        doc: "Start with umask 0022.",
        slot: |f| Slot::Switch(&mut f.runtime.no_umask),
    },
    Twin {
        flag: "unsquash",
        keys: &["UNSQUASH"],
        doc: "Extract the image instead of mounting it.",
        slot: |f| Slot::Switch(&mut f.runtime.unsquash),
    },
    Twin {
        flag: "sharens",
        keys: &["SHARENS"],
        doc: "Share the image and namespaces with other launches.",
        slot: |f| Slot::Switch(&mut f.runtime.sharens),
    },
    Twin {
        flag: "no-env",
        keys: &["NOENV"],
        doc: "Host variables not to import.",
        slot: |f| Slot::List(&mut f.runtime.no_env),
    },
    Twin {
        flag: "no-eval",
        keys: &["NO_EVAL"],
        doc: "Take variable values literally.",
        slot: |f| Slot::Switch(&mut f.runtime.no_eval),
    },
    Twin {
        flag: "containlibs",
        keys: &["CONTAINLIBS"],
        doc: "Host libraries to bind into /.singularity.d/libs.",
        slot: |f| Slot::Paths(&mut f.runtime.containlibs),
    },
    Twin {
        flag: "intel-hpu",
        keys: &["INTEL_HPU"],
        doc: "Intel Gaudi device nodes in a minimal /dev.",
        slot: |f| Slot::Switch(&mut f.runtime.intel_hpu),
    },
    Twin {
        flag: "ignore-subuid",
        keys: &["IGNORE_SUBUID"],
        doc: "With --fakeroot, map root alone.",
        slot: |f| Slot::Switch(&mut f.runtime.ignore_subuid),
    },
    Twin {
        flag: "ignore-fakeroot-command",
        keys: &["IGNORE_FAKEROOT_COMMAND"],
        doc: "Never use the fakeroot command.",
        slot: |f| Slot::Switch(&mut f.runtime.ignore_fakeroot_command),
    },
    Twin {
        flag: "ignore-userns",
        keys: &["IGNORE_USERNS"],
        doc: "Do not use user namespaces.",
        slot: |f| Slot::Switch(&mut f.runtime.ignore_userns),
    },
    Twin {
        flag: "underlay",
        keys: &["UNDERLAY"],
        doc: "Deprecated; accepted with a warning.",
        slot: |f| Slot::Switch(&mut f.runtime.underlay),
    },
    Twin {
        flag: "runscript-timeout",
        keys: &["RUNSCRIPT_TIMEOUT"],
        doc: "Time allowed to each environment script.",
        slot: |f| Slot::Text(&mut f.runtime.runscript_timeout),
    },
];

impl RuntimeFlags {
    /// `--compat`, expanded into the flags it stands for (Apptainer's `actionPreRun`), before
    /// anything reads them.
    pub fn expand_compat(flags: &mut ActionFlags) {
        if flags.runtime.compat {
            flags.containall = true;
            flags.writable_tmpfs = true;
            flags.runtime.no_init = true;
            flags.runtime.no_umask = true;
            flags.runtime.no_eval = true;
        }
    }

    /// Refuse what sifr cannot do, with what to do instead; warn where Apptainer warns.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(d) = self.device.first() {
            return Err(Hinted::new(
                format!("`--device {d}`: sifr does not read CDI device definitions"),
                "bind the device nodes with `--bind /dev/NODE` (without `--contain` the host's \
                 /dev is there already), or use `--nv`/`--rocm` for GPUs",
            )
            .into());
        }
        if self.ignore_userns {
            return Err(Hinted::new(
                "`--ignore-userns`: sifr always runs in a user namespace when not root",
                "drop the flag; sifr needs no setuid helper and no fakeroot command",
            )
            .into());
        }
        if self.underlay {
            tracing::warn!("--underlay is deprecated: default overlay is preferred");
        }
        if let Some(t) = &self.runscript_timeout {
            parse_duration(t).map_err(|e| {
                Hinted::new(
                    format!("invalid `--runscript-timeout` value `{t}`: {e}"),
                    "use a duration such as 30s, 5m or 1h30m",
                )
            })?;
        }
        Ok(())
    }

    /// `--app` (or its twin, whose name `twins` knows) as `sifr_launch` takes it.
    pub fn app_request(&self, twins: &super::action_env::Applied) -> sifr_launch::apps::AppRequest {
        sifr_launch::apps::AppRequest {
            name: self.app.clone().map(|value| sifr_launch::Sourced {
                value,
                origin: twins.source("app", 0),
            }),
        }
    }

    /// Move the flags into `req`.
    pub fn fill(self, req: &mut sifr_launch::Request, intel_hpu_devices: Vec<PathBuf>) {
        req.no_init = self.no_init;
        // Checked by `check` before: a bad value never gets here.
        req.runscript_timeout = self
            .runscript_timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok());
        req.no_pid = self.no_pid;
        req.no_umask = self.no_umask;
        req.unsquash = self.unsquash;
        req.ignore_subuid = self.ignore_subuid;
        req.containlibs = self.containlibs;
        req.no_env = self.no_env;
        req.no_eval = self.no_eval;
        if self.intel_hpu {
            req.devices.extend(intel_hpu_devices);
        }
    }
}

/// The Intel Gaudi accelerator nodes of this host, `/dev/accel/accel*` (Apptainer's list).
pub fn intel_hpu_devices() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("/dev/accel")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("accel"))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// A Go duration (`1h30m`, `90s`, `1.5m`, `250ms`), as Apptainer's `time.ParseDuration` reads
/// `--runscript-timeout`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = t;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration `{t}`"))?;
        if num_len == 0 {
            return Err(format!("invalid duration `{t}`"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration `{t}`"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("unknown unit `{u}` in duration `{t}`")),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_bad_ones_say_why() {
        let s = |t| parse_duration(t).map(|d| d.as_secs_f64());
        assert_eq!(s("90s"), Ok(90.0));
        assert_eq!(s("1h30m"), Ok(5400.0));
        assert_eq!(s("1.5m"), Ok(90.0));
        assert_eq!(s("250ms"), Ok(0.25));
        assert_eq!(s("0"), Ok(0.0));
        assert!(s("10").unwrap_err().contains("missing unit"));
        assert!(s("5d").unwrap_err().contains("unknown unit `d`"));
        assert!(s("").is_err());
    }

    /// `--app` reaches the request with its origin; a name that is not one path component is
    /// refused with the flag, the value, the variable it came from and a hint.
    #[test]
    fn app_names_carry_their_origin() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            flags: ActionFlags,
        }
        let typed = |args: &[&str], env: &[(&str, &str)]| {
            let flags = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .unwrap()
                .flags;
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let action = sifr_launch::Action::Run(vec![]);
            let settings = crate::settings::Settings::default();
            let req = super::super::action::request(
                &flags,
                &settings,
                std::path::Path::new("/img"),
                action,
                &env,
            )
            .unwrap();
            req.options(&env).map(|o| o.app).map_err(|e| {
                crate::report::render(
                    &super::super::action::request_error(e),
                    crate::report::Colour::Plain,
                )
            })
        };
        let app = typed(&["--app", "foo"], &[]).unwrap().unwrap();
        assert_eq!(app.name(), "foo");
        // The command line wins over the twin; an empty name is no app.
        let app = typed(&["--app", "foo"], &[("APPTAINER_APP", "bar")]).unwrap();
        assert_eq!(app.unwrap().name(), "foo");
        assert_eq!(
            typed(&[], &[("APPTAINER_APPNAME", "bar")])
                .unwrap()
                .unwrap()
                .name(),
            "bar"
        );
        assert_eq!(typed(&["--app", ""], &[]).unwrap(), None);
        assert_eq!(
            typed(&["--app", "a/b"], &[]).unwrap_err(),
            "FATAL:   invalid `--app` value `a/b`: an app name is a single path component\n         \
             hint: name an app under /scif/apps of the image (`inspect --list-apps IMAGE` lists \
             them)"
        );
        let e = typed(&[], &[("SINGULARITY_APP", "..")]).unwrap_err();
        assert!(
            e.starts_with(
                "FATAL:   in environment variable `SINGULARITY_APP`\n         caused by: invalid"
            ),
            "{e}"
        );
    }

    #[test]
    fn compat_stands_for_its_five_flags() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            flags: ActionFlags,
        }
        let mut f = T::try_parse_from(["t", "--compat"]).unwrap().flags;
        RuntimeFlags::expand_compat(&mut f);
        assert!(f.containall && f.writable_tmpfs);
        assert!(f.runtime.no_init && f.runtime.no_umask && f.runtime.no_eval);
    }

    #[test]
    fn what_sifr_cannot_do_is_refused_with_a_hint() {
        for (flags, want) in [
            (
                RuntimeFlags {
                    device: vec!["v.com/gpu=0".into()],
                    ..Default::default()
                },
                "CDI",
            ),
            (
                RuntimeFlags {
                    runscript_timeout: Some("soon".into()),
                    ..Default::default()
                },
                "`soon`",
            ),
        ] {
            let e = flags.check().unwrap_err();
            let text = crate::report::render(&e, crate::report::Colour::Plain);
            assert!(text.contains(want) && text.contains("hint:"), "{text}");
        }
        assert!(RuntimeFlags::default().check().is_ok());
    }
}
