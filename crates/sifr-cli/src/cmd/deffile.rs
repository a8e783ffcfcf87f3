//! `sifr deffile check`: validate definition files without building. Reads the files and the
//! build-arg file, hands their text to the `deffile` crate, and renders its diagnostics;
//! must not interpret definition files itself.
//!
//! Output: nothing on stdout when every file is valid (with `--json`, the parsed definition);
//! on stderr one `error: FILE:LINE:COL: what` plus `hint:` per invalid file, and
//! `warning: FILE:LINE:COL: what` for things Apptainer accepts that are probably mistakes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::exit;
use crate::report::{self, AlreadyReported, Hinted};
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum DeffileCommand {
    /// Check definition files for errors without building (exit 0 when all are valid).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the parsed definition as JSON on stdout (an array of `{file, ...}` objects when
    /// several files are given).
    #[arg(long)]
    pub json: bool,
    // kept apart from `build`'s --build-arg flags: the help texts differ on purpose (this
    // command says which of the two wins), and one shared struct would change one command's
    // --help and man page.
    /// Value for a `{{ NAME }}` placeholder; may be repeated. Beats `--build-arg-file`.
    #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub build_args: Vec<(String, String)>,
    /// File of `NAME=VALUE` lines for `{{ NAME }}` placeholders.
    #[arg(long = "build-arg-file", value_name = "FILE")]
    pub build_arg_file: Option<PathBuf>,
    /// Warn about build arguments no placeholder uses instead of failing.
    #[arg(long)]
    pub warn_unused_build_args: bool,
    /// Ask the base images' registries over plain HTTP, as `build --nohttps` pulls.
    #[arg(long = "no-https", alias = "nohttps")]
    pub nohttps: bool,
    /// Do not ask the base images' registries whether they answer (also
    /// SIFR_NO_REGISTRY_CHECK=1): for checking a file where the registry is out of reach.
    #[arg(long)]
    pub no_registry_check: bool,
    /// Definition files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    sifr_deffile::parse_build_arg(s).map_err(|e| {
        let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
        format!("{e}{hint}")
    })
}

pub fn run(c: DeffileCommand, settings: &Settings) -> anyhow::Result<u8> {
    match c {
        DeffileCommand::Check(args) => check(&args, settings),
    }
}

/// Parser options from the build-argument flags that `deffile check` and `build` share.
pub(crate) fn parse_options(
    build_args: &[(String, String)],
    build_arg_file: Option<&Path>,
    warn_unused_build_args: bool,
) -> anyhow::Result<sifr_deffile::Options> {
    let build_arg_file = match build_arg_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read build-arg file `{}`", p.display()))?,
        ),
        None => None,
    };
    Ok(sifr_deffile::Options {
        build_args: build_args.to_vec(),
        build_arg_file,
        warn_unused_build_args,
        allow_unknown_stages: false,
    })
}

fn check(args: &CheckArgs, settings: &Settings) -> anyhow::Result<u8> {
    let opts = parse_options(
        &args.build_args,
        args.build_arg_file.as_deref(),
        args.warn_unused_build_args,
    )?;
    let mut parsed = Vec::new();
    let mut failures = Vec::new();
    let mut bad_files = 0;
    // An unprivileged build of a debootstrap stage needs subordinate ids; the file may still
    // be built as root, so this is a warning here and an error in `build`.
    let only_root = unprivileged_root_only();
    for file in &args.files {
        match check_one(file, &opts) {
            Ok(def) => {
                if !settings.quiet && !settings.silent {
                    print_warnings(
                        file,
                        &def,
                        report::render_colour(settings) == report::Colour::Ansi,
                    );
                }
                let reach = crate::cmd::pull::RegistryArgs {
                    nohttps: args.nohttps,
                    ..Default::default()
                };
                let errors = preflight(
                    file,
                    &def,
                    only_root.as_deref(),
                    (!args.no_registry_check).then_some(&reach),
                    false,
                    settings,
                );
                if !errors.is_empty() {
                    bad_files += 1;
                    failures.extend(errors.into_iter().map(|(_, e)| e));
                }
                parsed.push((file, def));
            }
            Err(e) => {
                bad_files += 1;
                failures.push(e);
            }
        }
    }
    if args.json && !parsed.is_empty() {
        print_json(&parsed)?;
    }
    match failures.len() {
        0 => Ok(exit::OK),
        // One file: let the usual renderer print it.
        1 if args.files.len() == 1 => Err(failures.remove(0)),
        _ => {
            if !settings.silent {
                for e in &failures {
                    eprintln!("{}", report::render(e, report::render_colour(settings)));
                }
            }
            Err(AlreadyReported {
                summary: format!(
                    "{bad_files} of {} definition files are invalid",
                    args.files.len()
                ),
                code: exit::FAILURE,
            }
            .into())
        }
    }
}

/// Why an unprivileged build by the caller would have only root mapped (no subordinate ids),
/// or `None` (root, or subordinate ids available).
pub(crate) fn unprivileged_root_only() -> Option<String> {
    let user = sifr_launch::host::gather(Vec::new())
        .ok()
        .and_then(|h| h.user.map(|u| u.name));
    let path = std::env::var("PATH").unwrap_or_default();
    match sifr_launch::fakeroot::predict(user.as_deref(), &path)? {
        sifr_launch::fakeroot::Mode::RootOnly { reason } => Some(reason),
        sifr_launch::fakeroot::Mode::Subids { .. } => None,
    }
}

/// The checks made before a build starts ([`sifr_build::defbuild::preflight`]), relative to
/// the current directory as the build reads sources: warnings are printed, errors returned
/// with what each is about (`FILE:LINE: what`, with a hint). `build`: for `sifr build`, where
/// every certain failure is an error; `deffile check` warns of some (below). With `registry`
/// (the flags the pull will use), each base image's registry is asked whether it answers.
pub(crate) fn preflight(
    file: &Path,
    def: &sifr_deffile::Definition,
    only_root: Option<&str>,
    registry: Option<&crate::cmd::pull::RegistryArgs>,
    build: bool,
    settings: &Settings,
) -> Vec<(sifr_build::defbuild::preflight::Kind, anyhow::Error)> {
    use sifr_build::defbuild::preflight::{Facts, Kind, check};
    let context = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let def_dir = file
        .parent()
        .map(|d| context.join(d))
        .and_then(|d| d.canonicalize().ok());
    let facts = Facts {
        context: &context,
        def_dir: def_dir.as_deref(),
        only_root,
    };
    let (yellow, reset) = if report::render_colour(settings) == report::Colour::Ansi {
        ("\x1b[33m", "\x1b[0m")
    } else {
        ("", "")
    };
    let mut errors = Vec::new();
    let mut problems = check(def, &facts);
    if let Some(args) = registry {
        problems.extend(reach_registries(def, args));
    }
    for p in problems {
        let message = format!("{}:{}: {}", file.display(), p.line, p.message);
        // `deffile check` is often run from elsewhere than the build: a path the build would
        // find from the file's directory, or a mapping a root build does not need, is a warning
        // there.
        let fatal = p.fatal && (build || (p.kind != Kind::Subids && !p.beside_def));
        if fatal {
            let e = match p.hint {
                Some(h) => anyhow::Error::new(Hinted::new(message, h)),
                None => anyhow::anyhow!(message),
            };
            errors.push((p.kind, e));
        } else if !settings.quiet && !settings.silent {
            eprintln!("{yellow}WARNING:{reset} {message}");
            if let Some(h) = p.hint {
                eprintln!("{}hint: {h}", report::INDENT);
            }
        }
    }
    errors
}

/// Set (not `0`): the preflight asks no registry (`deffile check --no-registry-check`, and
/// for `build`, where the pull then meets an unreachable registry itself).
pub const NO_REGISTRY_CHECK: &str = "SIFR_NO_REGISTRY_CHECK";

/// How long a registry may take to answer the preflight's one request.
const REACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// [`sifr_build::defbuild::preflight::check_registries`] with a client using the pull's
/// scheme and TLS trust; no credentials (a `401` is an answer) and no retries.
fn reach_registries(
    def: &sifr_deffile::Definition,
    args: &crate::cmd::pull::RegistryArgs,
) -> Vec<sifr_build::defbuild::preflight::Problem> {
    use sifr_build::defbuild::preflight;
    let off = std::env::var(NO_REGISTRY_CHECK).is_ok_and(|v| !v.is_empty() && v != "0");
    if off || preflight::registry_bases(def).is_empty() {
        return Vec::new();
    }
    let opts = sifr_oci::client::ClientOptions {
        plain_http: args.nohttps,
        retries: 0,
        connect_timeout: REACH_TIMEOUT,
        ..Default::default()
    };
    let env = |k: &str| std::env::var(k).ok();
    // A client that cannot be set up (a bad SSL_CERT_FILE) fails the pull with its own
    // error; the preflight leaves that to it.
    match sifr_oci::client::Client::new(opts, Default::default(), env) {
        Ok(client) => preflight::check_registries(def, &client, REACH_TIMEOUT),
        Err(_) => Vec::new(),
    }
}

/// Parse one file; the error names `FILE:LINE:COL` and carries the parser's hint.
pub(crate) fn check_one(
    file: &Path,
    opts: &sifr_deffile::Options,
) -> anyhow::Result<sifr_deffile::Definition> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    sifr_deffile::parse_bytes(&bytes, opts).map_err(|e| {
        let message = format!("{}: {e}", place(file, e.location()));
        match e.hint() {
            Some(h) => anyhow::Error::new(Hinted::new(message, h)),
            None => anyhow::anyhow!(message),
        }
    })
}

fn place(file: &Path, at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, col)) => format!("{}:{line}:{col}", file.display()),
        None => file.display().to_string(),
    }
}

fn print_warnings(file: &Path, def: &sifr_deffile::Definition, color: bool) {
    let (yellow, reset) = if color {
        ("\x1b[33m", "\x1b[0m")
    } else {
        ("", "")
    };
    for w in &def.warnings {
        let at = (w.line > 0).then_some((w.line, w.col));
        eprintln!("{yellow}WARNING:{reset} {}: {}", place(file, at), w.message);
    }
    if !def.unused_build_args.is_empty() {
        let names: Vec<String> = def
            .unused_build_args
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        eprintln!(
            "{yellow}WARNING:{reset} {}: unused build arguments: {}",
            file.display(),
            names.join(", ")
        );
    }
}

fn print_json(parsed: &[(&PathBuf, sifr_deffile::Definition)]) -> anyhow::Result<()> {
    let text = if let [(_, def)] = parsed {
        serde_json::to_string_pretty(def)?
    } else {
        let all: Vec<serde_json::Value> = parsed
            .iter()
            .map(|(file, def)| {
                let mut v = serde_json::to_value(def)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "file".into(),
                        serde_json::Value::String(file.display().to_string()),
                    );
                }
                Ok(v)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        serde_json::to_string_pretty(&all)?
    };
    println!("{text}");
    Ok(())
}
