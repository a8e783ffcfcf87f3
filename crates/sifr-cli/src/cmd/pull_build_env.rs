//! The environment-variable twins of `pull` and `build` (`APPTAINER_PULL_NAME=x.sif sifr pull
//! ...` acts as `--name x.sif`), and the architecture rules both commands share.
//!
//! Names are Apptainer's, from the `EnvKeys` of `cmd/internal/cli/pull.go`, `build.go` and the
//! common flags in `apptainer.go`. The rules are `action_env`'s (flag beats variable, `SIFR_` >
//! `APPTAINER_` > `SINGULARITY_`, blank changes nothing, `--mount`'s lines are added to the
//! flag's), with one addition: Apptainer reads `DOCKER_HOST`, `DOCKER_USERNAME`,
//! `DOCKER_PASSWORD` and `BUILDKIT_HOST` also without a prefix (its `WithoutPrefix`), after the
//! prefixed names. Twins that are settings (`TMPDIR`, `AUTH_FILE`, `NVCCLI`) are resolved in
//! `settings` and not repeated here.

use std::path::PathBuf;

use super::action_env::{NotBool, Slot};
use super::build::BuildArgs;
use super::pull::PullArgs;
use crate::settings::{EnvSource, lookup_env, parse_bool_text};

/// One flag of a command (`T` is its clap arguments) and its variables.
pub struct CmdTwin<T: 'static> {
    /// The long flag, without `--`.
    pub flag: &'static str,
    /// Variable suffixes, strongest first, each tried under `SIFR_`, `APPTAINER_`, `SINGULARITY_`.
    pub keys: &'static [&'static str],
    /// Also read the suffix alone, with no prefix (Apptainer's `WithoutPrefix`).
    pub bare: bool,
    /// Read only the suffix alone: the prefixed variables are read by `sifr_oci`'s credential
    /// store (`APPTAINER_DOCKER_USERNAME`/`_PASSWORD`), which names them in its errors.
    pub bare_only: bool,
    pub slot: for<'a> fn(&'a mut T) -> Slot<'a>,
}

macro_rules! twin {
    ($flag:literal, [$($key:literal),+], $slot:expr) => {
        CmdTwin { flag: $flag, keys: &[$($key),+], bare: false, bare_only: false, slot: $slot }
    };
    ($flag:literal, [$($key:literal),+], bare, $slot:expr) => {
        CmdTwin { flag: $flag, keys: &[$($key),+], bare: true, bare_only: false, slot: $slot }
    };
    ($flag:literal, [$($key:literal),+], bare_only, $slot:expr) => {
        CmdTwin { flag: $flag, keys: &[$($key),+], bare: true, bare_only: true, slot: $slot }
    };
}

/// `pull`'s twins.
pub const PULL_TWINS: &[CmdTwin<PullArgs>] = &[
    twin!("force", ["FORCE"], |a| Slot::Switch(&mut a.force)),
    twin!("name", ["PULL_NAME"], |a| Slot::Text(&mut a.name)),
    twin!("dir", ["PULLDIR", "PULLFOLDER"], |a| Slot::Path(&mut a.dir)),
    twin!("sandbox", ["SANDBOX"], |a| Slot::Switch(&mut a.sandbox)),
    twin!("allow-unsigned", ["ALLOW_UNSIGNED"], |a| Slot::Switch(
        &mut a.allow_unsigned
    )),
    twin!("allow-unauthenticated", ["ALLOW_UNAUTHENTICATED"], |a| {
        Slot::Switch(&mut a.allow_unauthenticated)
    }),
    twin!("arch", ["PULL_ARCH"], |a| Slot::Text(&mut a.registry.arch)),
    twin!("arch-variant", ["PULL_ARCH_VARIANT"], |a| Slot::Text(
        &mut a.registry.arch_variant
    )),
    twin!("no-https", ["NOHTTPS", "NO_HTTPS"], |a| Slot::Switch(
        &mut a.registry.nohttps
    )),
    twin!("docker-login", ["DOCKER_LOGIN"], |a| Slot::Switch(
        &mut a.registry.docker_login
    )),
    twin!("docker-username", ["DOCKER_USERNAME"], bare_only, |a| {
        Slot::Text(&mut a.registry.docker_username)
    }),
    twin!("docker-password", ["DOCKER_PASSWORD"], bare_only, |a| {
        Slot::Text(&mut a.registry.docker_password)
    }),
    twin!("docker-host", ["DOCKER_HOST"], bare, |a| Slot::Text(
        &mut a.registry.docker_host
    )),
    twin!("disable-cache", ["DISABLE_CACHE"], |a| Slot::Switch(
        &mut a.registry.disable_cache
    )),
    twin!("library", ["LIBRARY"], |a| Slot::Text(
        &mut a.registry.library
    )),
    twin!("no-cleanup", ["NO_CLEANUP"], |a| Slot::Switch(
        &mut a.registry.no_cleanup
    )),
    twin!("reproducible", ["REPRODUCIBLE"], |a| Slot::Switch(
        &mut a.registry.reproducible
    )),
];

/// `build`'s twins.
pub const BUILD_TWINS: &[CmdTwin<BuildArgs>] = &[
    twin!("force", ["FORCE"], |a| Slot::Switch(&mut a.force)),
    twin!("sandbox", ["SANDBOX"], |a| Slot::Switch(&mut a.sandbox)),
    twin!("notest", ["NOTEST"], |a| Slot::Switch(&mut a.notest)),
    twin!("fakeroot", ["FAKEROOT"], |a| Slot::Switch(&mut a.fakeroot)),
    twin!("fix-perms", ["FIXPERMS"], |a| Slot::Switch(
        &mut a.fix_perms
    )),
    twin!("data", ["DATA"], |a| Slot::Switch(&mut a.extra.data)),
    twin!("section", ["SECTION"], |a| Slot::List(&mut a.extra.section)),
    twin!("update", ["UPDATE"], |a| Slot::Switch(&mut a.extra.update)),
    twin!("json", ["JSON"], |a| Slot::Switch(&mut a.extra.json)),
    twin!("mksquashfs-args", ["MKSQUASHFS_ARGS"], |a| Slot::Text(
        &mut a.extra.mksquashfs_args
    )),
    twin!("mount", ["MOUNT"], |a| Slot::Append(&mut a.extra.mount)),
    twin!("writable-tmpfs", ["WRITABLE_TMPFS"], |a| Slot::Switch(
        &mut a.extra.writable_tmpfs
    )),
    twin!("userns", ["USERNS"], |a| Slot::Switch(&mut a.extra.userns)),
    twin!("ignore-subuid", ["IGNORE_SUBUID"], |a| Slot::Switch(
        &mut a.extra.ignore_subuid
    )),
    twin!(
        "ignore-fakeroot-command",
        ["IGNORE_FAKEROOT_COMMAND"],
        |a| { Slot::Switch(&mut a.extra.ignore_fakeroot_command) }
    ),
    twin!("ignore-proot", ["IGNORE_PROOT"], |a| Slot::Switch(
        &mut a.extra.ignore_proot
    )),
    twin!("ignore-userns", ["IGNORE_USERNS"], |a| Slot::Switch(
        &mut a.extra.ignore_userns
    )),
    twin!("buildkit-host", ["BUILDKIT_HOST"], bare, |a| Slot::Text(
        &mut a.extra.buildkit_host
    )),
    twin!("arch", ["BUILD_ARCH"], |a| Slot::Text(&mut a.registry.arch)),
    twin!("arch-variant", ["BUILD_ARCH_VARIANT"], |a| Slot::Text(
        &mut a.registry.arch_variant
    )),
    twin!("no-https", ["NOHTTPS", "NO_HTTPS"], |a| Slot::Switch(
        &mut a.registry.nohttps
    )),
    twin!("docker-login", ["DOCKER_LOGIN"], |a| Slot::Switch(
        &mut a.registry.docker_login
    )),
    twin!("docker-username", ["DOCKER_USERNAME"], bare_only, |a| {
        Slot::Text(&mut a.registry.docker_username)
    }),
    twin!("docker-password", ["DOCKER_PASSWORD"], bare_only, |a| {
        Slot::Text(&mut a.registry.docker_password)
    }),
    twin!("docker-host", ["DOCKER_HOST"], bare, |a| Slot::Text(
        &mut a.registry.docker_host
    )),
    twin!("disable-cache", ["DISABLE_CACHE"], |a| Slot::Switch(
        &mut a.registry.disable_cache
    )),
    twin!("library", ["LIBRARY"], |a| Slot::Text(
        &mut a.registry.library
    )),
    twin!("no-cleanup", ["NO_CLEANUP"], |a| Slot::Switch(
        &mut a.registry.no_cleanup
    )),
    twin!("reproducible", ["REPRODUCIBLE"], |a| Slot::Switch(
        &mut a.registry.reproducible
    )),
];

/// Fill `args` from the twins in `table` set in `env` where the command line left them unset.
/// Returns the warnings (a `SINGULARITY_` variable contradicting its `APPTAINER_` twin).
pub fn apply<T>(
    args: &mut T,
    table: &[CmdTwin<T>],
    env: &dyn EnvSource,
) -> Result<Vec<String>, NotBool> {
    let mut warnings = Vec::new();
    for twin in table {
        let prefixed = lookup_env(twin.keys, env);
        if twin.bare_only && prefixed.is_some() {
            continue;
        }
        let prefixed = prefixed.filter(|_| !twin.bare_only);
        let hit = prefixed.or_else(|| {
            twin.bare
                .then(|| {
                    twin.keys.iter().find_map(|k| {
                        env.var(k).map(|text| crate::settings::EnvHit {
                            name: k.to_string(),
                            text,
                            warning: None,
                        })
                    })
                })
                .flatten()
        });
        let Some(hit) = hit else { continue };
        warnings.extend(hit.warning);
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
        match (twin.slot)(args) {
            Slot::Switch(on) => {
                let value = parse_bool_text(text).ok_or_else(|| NotBool {
                    flag: twin.flag,
                    var: hit.name.clone(),
                    value: hit.text.clone(),
                })?;
                *on |= value;
            }
            Slot::Text(v) if v.is_none() => *v = Some(text.to_owned()),
            Slot::Path(v) if v.is_none() => *v = Some(PathBuf::from(text)),
            Slot::List(v) if v.is_empty() => v.extend(list()),
            Slot::Paths(v) if v.is_empty() => v.extend(list().map(PathBuf::from)),
            Slot::Text(_) | Slot::Path(_) | Slot::List(_) | Slot::Paths(_) => {}
            Slot::Append(v) => v.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            ),
        }
    }
    Ok(warnings)
}

/// [`apply`] on the process environment, warnings logged, a bad boolean as a hinted error.
pub fn apply_process<T>(args: &mut T, table: &[CmdTwin<T>]) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let warnings = apply(args, table, &env.as_slice())
        .map_err(|e| crate::report::Hinted::new(e.to_string(), e.hint()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(())
}

/// The architectures Apptainer accepts for `--arch`, in its message's order.
const SUPPORTED_ARCHS: &[&str] = &[
    "arm", "arm64", "amd64", "386", "ppc64le", "s390x", "riscv64", "loong64",
];

/// Apptainer's architecture names (its `ArchMap` keys).
const ARCH_NAMES: &[&str] = &[
    "arm64", "amd64", "arm32v5", "arm32v6", "arm32v7", "arm64v8", "386", "ppc64le", "s390x",
    "riscv64", "loong64",
];

/// `--arch`/`--arch-variant` that name no architecture Apptainer knows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchError {
    #[error(
        "arch: {arch} is not valid, supported archs are: [{}]{variants}",
        SUPPORTED_ARCHS.join(" ")
    )]
    Invalid {
        arch: String,
        /// `, supported variants are [...], please remove --arch-variant option` for variants.
        variants: String,
    },
}

/// Apptainer's `ConvertArch`: `--arch` and `--arch-variant` combined into one of its
/// architecture names (`arm64` + `8` = `arm64v8`, `arm` alone = `arm32v7`).
pub fn convert_arch(arch: &str, variant: &str) -> Result<String, ArchError> {
    let with_variant = |prefix: &str, known: &str| {
        let v = variant.strip_prefix('v').unwrap_or(variant);
        let name = format!("{prefix}v{v}");
        if ARCH_NAMES.contains(&name.as_str()) {
            Ok(name)
        } else {
            Err(ArchError::Invalid {
                arch: name,
                variants: format!(
                    ", supported variants are [{known}], please remove --arch-variant option"
                ),
            })
        }
    };
    match arch {
        "arm64" if variant.is_empty() => Ok("arm64".into()),
        "arm64" => with_variant("arm64", "8"),
        "arm" if variant.is_empty() => Ok("arm32v7".into()),
        "arm" => with_variant("arm32", "5, 6, 7"),
        other if ARCH_NAMES.contains(&other) => Ok(other.into()),
        other => Err(ArchError::Invalid {
            arch: other.into(),
            variants: String::new(),
        }),
    }
}

/// The host's architecture in Apptainer's (Go's) spelling, `--arch`'s default.
pub fn host_arch() -> String {
    sifr_oci::manifest::Platform::host().architecture
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pull(args: &[&str], pairs: &[(&str, &str)]) -> PullArgs {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: PullArgs,
        }
        let mut a = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .a;
        apply(&mut a, PULL_TWINS, &env(pairs).as_slice()).unwrap();
        a
    }

    fn build(args: &[&str], pairs: &[(&str, &str)]) -> BuildArgs {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: BuildArgs,
        }
        let mut a = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .a;
        apply(&mut a, BUILD_TWINS, &env(pairs).as_slice()).unwrap();
        a
    }

    #[test]
    fn pull_twins_fill_what_the_command_line_left_out() {
        let a = pull(
            &["docker://alpine"],
            &[
                ("APPTAINER_PULL_NAME", "x.sif"),
                ("SINGULARITY_PULLFOLDER", "/d"),
                ("APPTAINER_NO_HTTPS", "1"),
                ("APPTAINER_PULL_ARCH", "arm64"),
                ("DOCKER_USERNAME", "bare"),
            ],
        );
        assert_eq!(a.name.as_deref(), Some("x.sif"));
        assert_eq!(a.dir.as_deref(), Some(std::path::Path::new("/d")));
        assert!(a.registry.nohttps);
        assert_eq!(a.registry.arch.as_deref(), Some("arm64"));
        assert_eq!(a.registry.docker_username.as_deref(), Some("bare"));
        // The flag wins; a prefixed variable beats the bare one.
        let a = pull(
            &["--name", "flag.sif", "docker://alpine"],
            &[
                ("APPTAINER_PULL_NAME", "x.sif"),
                ("DOCKER_HOST", "bare"),
                ("APPTAINER_DOCKER_HOST", "prefixed"),
            ],
        );
        assert_eq!(a.name.as_deref(), Some("flag.sif"));
        assert_eq!(a.registry.docker_host.as_deref(), Some("prefixed"));
        // The prefixed credential variables are the credential store's (it names them in its
        // errors); a bare one under a prefixed one is ignored, as Apptainer prefers the prefix.
        let a = pull(
            &["docker://alpine"],
            &[
                ("APPTAINER_DOCKER_USERNAME", "p"),
                ("DOCKER_USERNAME", "bare"),
            ],
        );
        assert_eq!(a.registry.docker_username, None);
    }

    #[test]
    fn build_twins_split_sections_and_append_mounts() {
        let a = build(
            &["--mount", "type=bind,src=/a,dst=/a", "t", "s.def"],
            &[
                ("APPTAINER_SECTION", "post, labels"),
                ("APPTAINER_MOUNT", "type=bind,src=/b,dst=/b\n"),
                ("APPTAINER_UPDATE", "yes"),
                ("APPTAINER_BUILD_ARCH", "arm64"),
                ("SINGULARITY_FIXPERMS", "true"),
            ],
        );
        assert_eq!(a.extra.section, vec!["post", "labels"]);
        assert_eq!(
            a.extra.mount,
            vec!["type=bind,src=/a,dst=/a", "type=bind,src=/b,dst=/b"]
        );
        assert!(a.extra.update && a.fix_perms);
        assert_eq!(a.registry.arch.as_deref(), Some("arm64"));
    }

    #[test]
    fn a_switch_twin_that_is_no_boolean_is_refused() {
        let mut a = pull(&["docker://alpine"], &[]);
        let e = apply(
            &mut a,
            PULL_TWINS,
            &env(&[("APPTAINER_SANDBOX", "maybe")]).as_slice(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`--sandbox`"), "{e}");
    }

    #[test]
    fn arch_and_variant_combine_as_apptainer_does() {
        // Apptainer's TestConvertArch cases (internal/pkg/build/oci/oci_test.go).
        assert_eq!(convert_arch("arm64", "").unwrap(), "arm64");
        assert_eq!(convert_arch("arm64", "v8").unwrap(), "arm64v8");
        assert_eq!(convert_arch("arm64", "8").unwrap(), "arm64v8");
        assert_eq!(convert_arch("arm", "").unwrap(), "arm32v7");
        assert_eq!(convert_arch("arm", "6").unwrap(), "arm32v6");
        assert_eq!(convert_arch("amd64", "").unwrap(), "amd64");
        assert_eq!(
            convert_arch("arm64", "7").unwrap_err().to_string(),
            "arch: arm64v7 is not valid, supported archs are: [arm arm64 amd64 386 ppc64le s390x riscv64 loong64], supported variants are [8], please remove --arch-variant option"
        );
        assert_eq!(
            convert_arch("mips", "").unwrap_err().to_string(),
            "arch: mips is not valid, supported archs are: [arm arm64 amd64 386 ppc64le s390x riscv64 loong64]"
        );
    }

    /// Every `pull`/`build` row of docs/apptainer-flags.tsv: the flag (and its short form)
    /// parses, and each variable suffix is a twin here or a setting.
    #[test]
    fn every_apptainer_pull_and_build_flag_and_variable_exists() {
        use clap::CommandFactory as _;
        let tsv = include_str!("../../../../docs/apptainer-flags.tsv");
        let settings: Vec<String> = crate::settings::CATALOGUE
            .iter()
            .map(|d| d.key.to_ascii_uppercase())
            .collect();
        let mut checked = 0;
        for line in tsv.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (command, long, short, keys) = (cols[0], cols[1], cols[2], cols[3]);
            let (cmd, twins): (clap::Command, Vec<(&str, &[&str])>) = match command {
                "pull" => (
                    crate::args::Cli::command()
                        .find_subcommand("pull")
                        .unwrap()
                        .clone(),
                    PULL_TWINS.iter().map(|t| (t.flag, t.keys)).collect(),
                ),
                "build" => (
                    crate::args::Cli::command()
                        .find_subcommand("build")
                        .unwrap()
                        .clone(),
                    BUILD_TWINS.iter().map(|t| (t.flag, t.keys)).collect(),
                ),
                _ => continue,
            };
            let mut cmd = cmd;
            cmd.build();
            let arg = cmd
                .get_arguments()
                .find(|a| {
                    a.get_long() == Some(long)
                        || a.get_all_aliases().is_some_and(|al| al.contains(&long))
                })
                .unwrap_or_else(|| panic!("{command} has no --{long}"));
            if !short.is_empty() {
                assert_eq!(
                    arg.get_short().map(String::from).as_deref(),
                    Some(short),
                    "{command} --{long}"
                );
            }
            for key in keys.split(',').filter(|k| !k.is_empty()) {
                let twin = twins.iter().any(|(f, ks)| *f == long && ks.contains(&key));
                assert!(
                    twin || settings.contains(&key.to_string()),
                    "{command} --{long}: no twin {key}"
                );
            }
            checked += 1;
        }
        assert!(checked > 50, "{checked} rows");
    }
}
