//! The `build` flags beyond the core ones (`--section`, `--update`, `--json`,
//! `--mksquashfs-args`, encryption, the fakeroot-method switches, ...) and what each does or
//! why it cannot, decided before any work starts:
//!
//! - `--section` keeps only the named sections of every stage ([`keep_sections`]), which is
//!   what Apptainer's `Bundle.RunSection` checks achieve; `--update` builds into the existing
//!   sandbox (`sifr_build::defbuild` copies it instead of bootstrapping).
//! - `--mksquashfs-args` is read for the mksquashfs options sifr's own SquashFS writer has an
//!   equivalent for ([`squashfs_args`]); the others are reported and ignored.
//! - Encryption (`-e`, `--passphrase`, `--pem-path`): sifr writes no encrypted images. The
//!   key material is checked as Apptainer checks it, then the build stops before any work with
//!   the error Apptainer gives when its encryption tools are missing, never producing a
//!   plain image in place of an encrypted one.
//! - `--remote` fails with Apptainer's own error; `--userns`, `--ignore-fakeroot-command`,
//!   `--ignore-proot` select among methods sifr never uses (setuid, the `fakeroot` command,
//!   proot), so they change nothing; `--library`, `--docker-host`, `--buildkit-host` serve
//!   bootstrap agents sifr does not have (`library`, `docker-daemon`, Dockerfiles).

use std::path::PathBuf;

use clap::Args;
use sifr_squashfs::Compression;

use crate::report::Hinted;

/// `build` flags from Apptainer that the core `BuildArgs` does not define.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildExtraArgs {
    /// Build a data container (a SIF with a data partition) instead of a system image.
    #[arg(long)]
    pub data: bool,
    /// Run only these sections of the definition: setup, post, files, environment, runscript,
    /// startscript, test, help, labels, all (the default) or none; with --update on a sandbox.
    #[arg(long, value_name = "SECTION", value_delimiter = ',')]
    pub section: Vec<String>,
    /// Build into the existing sandbox TARGET, skipping the bootstrap (needs --sandbox).
    #[arg(short = 'u', long)]
    pub update: bool,
    /// SOURCE is a definition in Apptainer's JSON form.
    #[arg(long)]
    pub json: bool,
    /// mksquashfs options: -comp, -Xcompression-level, -processors, -all-root are applied to
    /// sifr's SquashFS writer; others are ignored with a warning.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub mksquashfs_args: Option<String>,
    /// Remote builds are no longer supported (an error, as in Apptainer).
    #[arg(long, hide = true)]
    pub remote: bool,
    /// Build an encrypted image (not supported by sifr: an error).
    #[arg(short = 'e', long)]
    pub encrypt: bool,
    /// Ask for an encryption passphrase (implies --encrypt).
    #[arg(long)]
    pub passphrase: bool,
    /// RSA public key (PEM) to encrypt with (implies --encrypt).
    #[arg(long, value_name = "FILE")]
    pub pem_path: Option<PathBuf>,
    /// Ignore /etc/subuid entries (sifr: the subordinate-id mapping is still used).
    #[arg(long, hide = true)]
    pub ignore_subuid: bool,
    /// Never use the fakeroot command (sifr never does).
    #[arg(long, hide = true)]
    pub ignore_fakeroot_command: bool,
    /// Never use proot (sifr never does).
    #[arg(long, hide = true)]
    pub ignore_proot: bool,
    /// Do not use user namespaces: an unprivileged definition build then cannot run.
    #[arg(long, hide = true)]
    pub ignore_userns: bool,
    /// Build without setuid (sifr never uses setuid).
    #[arg(long)]
    pub userns: bool,
    /// During %test, let the container write to a throw-away layer (an overlay on a tmpfs).
    #[arg(long)]
    pub writable_tmpfs: bool,
    /// Docker-style mount for %post and %test, `type=bind,source=SRC,destination=DST[,ro]`.
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// The BuildKit daemon for Dockerfile builds (which sifr does not do).
    #[arg(long, value_name = "HOST")]
    pub buildkit_host: Option<String>,
}

/// Section names Apptainer's build knows (`RunSection` callers), with `all` and `none`.
pub const SECTIONS: &[&str] = &[
    "all",
    "none",
    "pre",
    "setup",
    "files",
    "post",
    "environment",
    "runscript",
    "startscript",
    "test",
    "help",
    "labels",
];

/// Apptainer's `checkSections`: `all` and `none` stand alone. Returns warnings for names no
/// section has (Apptainer silently matches nothing with them).
pub fn check_sections(sections: &[String]) -> anyhow::Result<Vec<String>> {
    let has = |s: &str| sections.iter().any(|x| x == s);
    if has("all") && sections.len() > 1 {
        anyhow::bail!(
            "Could not check build sections: section specification error: cannot have all and any other option"
        );
    }
    if has("none") && sections.len() > 1 {
        anyhow::bail!(
            "Could not check build sections: section specification error: cannot have none and any other option"
        );
    }
    Ok(sections
        .iter()
        .filter(|s| !SECTIONS.contains(&s.as_str()))
        .map(|s| {
            format!(
                "--section {s}: no such section (known: {})",
                SECTIONS[2..].join(", ")
            )
        })
        .collect())
}

/// Drop from every stage the sections `--section` leaves out (an empty list means all).
pub fn keep_sections(def: &mut sifr_deffile::Definition, sections: &[String]) {
    if sections.is_empty() || sections.iter().any(|s| s == "all") {
        return;
    }
    let run = |s: &str| sections.iter().any(|x| x == s);
    for stage in &mut def.stages {
        if !run("pre") {
            stage.pre = None;
        }
        if !run("setup") {
            stage.setup = None;
        }
        if !run("files") {
            stage.files.clear();
        }
        if !run("post") {
            stage.post = None;
        }
        if !run("environment") {
            stage.environment = None;
        }
        if !run("runscript") {
            stage.runscript = None;
        }
        if !run("startscript") {
            stage.startscript = None;
        }
        if !run("test") {
            stage.test = None;
        }
        if !run("help") {
            stage.help = None;
        }
        if !run("labels") {
            stage.labels.clear();
        }
    }
}

/// Apptainer's `checkBuildTarget` rules for `--update`.
pub fn check_update(target: &std::path::Path, sandbox: bool) -> anyhow::Result<()> {
    let abs = if target.is_absolute() {
        target.to_path_buf()
    } else {
        std::env::current_dir()?.join(target)
    };
    if !sandbox {
        anyhow::bail!(
            "While checking build target: only sandbox update is supported: --sandbox flag is missing"
        );
    }
    match std::fs::metadata(&abs) {
        Ok(md) if !md.is_dir() => anyhow::bail!(
            "While checking build target: only sandbox update is supported: {} is not a directory",
            abs.display()
        ),
        Ok(_) => Ok(()),
        Err(_) => anyhow::bail!(
            "While checking build target: could not update sandbox {}: doesn't exist",
            abs.display()
        ),
    }
}

/// What `--mksquashfs-args` changes in sifr's SquashFS writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SquashfsArgs {
    pub compression: Option<Compression>,
    pub threads: Option<usize>,
    pub all_root: bool,
    /// Options with no equivalent, reported to the user.
    pub ignored: Vec<String>,
}

/// Options mksquashfs takes with one value.
const WITH_VALUE: &[&str] = &[
    "-b",
    "-mem",
    "-e",
    "-ef",
    "-wildcards",
    "-regex",
    "-force-uid",
    "-force-gid",
    "-p",
    "-pf",
    "-sort",
    "-root-mode",
    "-mkfs-time",
    "-all-time",
    "-Xbcj",
    "-Xdict-size",
    "-Xhc",
    "-Xwindow-size",
    "-Xstrategy",
    "-read-queue",
    "-write-queue",
    "-fragment-queue",
];

/// Options that only change how mksquashfs runs or what sifr does anyway.
const NO_EFFECT: &[&str] = &[
    "-noappend",
    "-no-progress",
    "-progress",
    "-quiet",
    "-info",
    "-no-recovery",
    "-reproducible",
    "-not-reproducible",
    "-no-exports",
    "-exports",
    "-no-sparse",
];

/// Read `--mksquashfs-args` (split at whitespace, as Apptainer splits it).
pub fn squashfs_args(text: &str) -> anyhow::Result<SquashfsArgs> {
    let mut out = SquashfsArgs::default();
    let mut codec: Option<String> = None;
    let mut level: Option<String> = None;
    let mut words = text.split_whitespace();
    let missing = |opt: &str| {
        Hinted::new(
            format!("--mksquashfs-args: `{opt}` needs a value"),
            "give it as `--mksquashfs-args \"-comp zstd -Xcompression-level 19\"`",
        )
    };
    while let Some(w) = words.next() {
        match w {
            "-comp" => codec = Some(words.next().ok_or_else(|| missing(w))?.to_string()),
            "-Xcompression-level" => {
                level = Some(words.next().ok_or_else(|| missing(w))?.to_string())
            }
            "-processors" => {
                let n = words.next().ok_or_else(|| missing(w))?;
                out.threads = Some(n.parse().map_err(|_| {
                    Hinted::new(
                        format!("--mksquashfs-args: invalid -processors value `{n}`"),
                        "give a whole number of threads",
                    )
                })?);
            }
            "-all-root" | "-root-owned" => out.all_root = true,
            w if NO_EFFECT.contains(&w) => {}
            w if WITH_VALUE.contains(&w) => {
                let v = words.next().unwrap_or_default();
                out.ignored.push(format!("{w} {v}").trim_end().to_string());
            }
            w => out.ignored.push(w.to_string()),
        }
    }
    if codec.is_some() || level.is_some() {
        let codec = codec.unwrap_or_else(|| "gzip".into());
        let spec = match &level {
            Some(l) => format!("{codec}:{l}"),
            None => codec,
        };
        out.compression = Some(spec.parse().map_err(|e| {
            Hinted::new(
                format!("--mksquashfs-args: {e}"),
                "sifr writes gzip, zstd, xz and lz4; give -comp with one of them",
            )
        })?);
    }
    Ok(out)
}

/// The encryption variables Apptainer reads.
const ENCRYPTION_VARS: &[&str] = &[
    "APPTAINER_ENCRYPTION_PASSPHRASE",
    "APPTAINER_ENCRYPTION_PEM_PATH",
    "APPTAINER_ENCRYPTION_PEM_DATA",
];

/// Apptainer's handling of `-e`, `--passphrase` and `--pem-path` up to the point where it
/// would encrypt; sifr cannot, so a build that would be encrypted stops here. Returns a
/// warning to print when encryption variables are set without `--encrypt`.
pub fn check_encryption(
    extra: &BuildExtraArgs,
    env: &dyn Fn(&str) -> Option<String>,
    unprivileged: bool,
) -> anyhow::Result<Option<String>> {
    // --passphrase and --pem-path imply --encrypt (Apptainer's preRun).
    let encrypt = extra.encrypt || extra.passphrase || extra.pem_path.is_some();
    let from_env = ENCRYPTION_VARS.iter().find(|v| env(v).is_some());
    if !encrypt {
        return Ok(from_env.map(|_| {
            "Encryption related env vars found, but --encrypt was not specified. NOT encrypting container.".to_string()
        }));
    }
    if let Some(p) = &extra.pem_path
        && !p.exists()
    {
        anyhow::bail!("Specified PEM file {}: does not exist.", p.display());
    }
    if extra.pem_path.is_none()
        && !extra.passphrase
        && let Some(var) = from_env
        && *var == "APPTAINER_ENCRYPTION_PEM_PATH"
        && let Some(p) = env(var)
        && !std::path::Path::new(&p).exists()
    {
        anyhow::bail!("Specified PEM file {p}: does not exist.");
    }
    let material = extra.pem_path.is_some() || extra.passphrase || from_env.is_some();
    if !material {
        if unprivileged {
            anyhow::bail!(
                "Missing encryption info, please add `--passphrase` or `--pem-path` or corresponding environment variable"
            );
        }
        // Apptainer as root builds a plain image when no key is given.
        return Ok(None);
    }
    let tool = if unprivileged {
        "gocryptfs"
    } else {
        "cryptsetup"
    };
    Err(Hinted::new(
        format!(
            "Unable to build an encrypted image: sifr does not support container encryption (Apptainer would need {tool} here)"
        ),
        "build without --encrypt, --passphrase and --pem-path, and keep the image on storage only its users can read",
    )
    .into())
}

/// `build --data TARGET SOURCE`: a data container, as Apptainer's `buildDataPartition` e2e
/// test makes one: the SquashFS image SOURCE copied into a SIF as a data partition (the host's
/// architecture, as Apptainer records for data), with the definition Apptainer stores for an
/// image source.
pub fn build_data(target: &std::path::Path, source: &str, force: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(source).with_context(|| format!("cannot read `{source}`"))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"hsqs" {
        return Err(Hinted::new(
            format!("--data: `{source}` is not a SquashFS image"),
            "make one with `mksquashfs DIR data.sqfs`, then `build --data data.sif data.sqfs`",
        )
        .into());
    }
    if !force && std::fs::symlink_metadata(target).is_ok() {
        return Err(Hinted::new(
            format!("build target `{}` already exists", target.display()),
            "use --force to overwrite it",
        )
        .into());
    }
    let tmp = target.with_file_name(format!(
        ".{}.sifr-data-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let write = || -> anyhow::Result<()> {
        let mut file = std::fs::File::open(source)?;
        let out = std::fs::File::create(&tmp)?;
        let mut c = sifr_sif::Creator::new(
            std::io::BufWriter::with_capacity(1 << 20, out),
            sifr_sif::CreateOptions::apptainer(),
        )?;
        c.add(sifr_sif::ObjectInput::deffile(
            format!("bootstrap: localimage\nfrom: {source}\n\n").into_bytes(),
        ))?;
        c.add_partition_with::<anyhow::Error>(
            "",
            sifr_sif::PartitionMeta {
                fs: sifr_sif::FsType::Squash,
                part: sifr_sif::PartType::Data,
                arch: sifr_sif::Arch::host(),
            },
            |sink| {
                std::io::copy(&mut file, sink)?;
                Ok(())
            },
        )?;
        let out = c.finish()?.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        std::fs::rename(&tmp, target)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.context(format!(
            "cannot write the data container `{}`",
            target.display()
        ))
    })
}

/// `--remote`'s error, Apptainer's text.
pub const REMOTE_ERROR: &str = "--remote is no longer supported, try building locally without it";

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> sifr_deffile::Definition {
        sifr_deffile::parse(text, &sifr_deffile::Options::default()).unwrap()
    }

    #[test]
    fn all_and_none_stand_alone() {
        // Apptainer's checkSections (cmd/internal/cli/build_linux.go).
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_sections(&s(&["all"])).unwrap().is_empty());
        assert!(check_sections(&s(&["post", "labels"])).unwrap().is_empty());
        assert!(
            check_sections(&s(&["all", "post"]))
                .unwrap_err()
                .to_string()
                .contains("cannot have all and any other option")
        );
        assert!(
            check_sections(&s(&["none", "post"]))
                .unwrap_err()
                .to_string()
                .contains("cannot have none and any other option")
        );
        assert_eq!(check_sections(&s(&["postt"])).unwrap().len(), 1);
    }

    #[test]
    fn sections_left_out_are_dropped_from_every_stage() {
        let mut d = def(
            "Bootstrap: scratch\n%post\necho p\n%labels\nA b\n%environment\nexport X=1\n%files\n/a /b\n%test\ntrue\n",
        );
        keep_sections(&mut d, &["post".to_string(), "labels".to_string()]);
        let s = &d.stages[0];
        assert!(s.post.is_some() && !s.labels.is_empty());
        assert!(s.environment.is_none() && s.files.is_empty() && s.test.is_none());
        let mut d = def("Bootstrap: scratch\n%post\necho p\n");
        keep_sections(&mut d, &["none".to_string()]);
        assert!(d.stages[0].post.is_none());
        let mut d = def("Bootstrap: scratch\n%post\necho p\n");
        keep_sections(&mut d, &[]);
        assert!(d.stages[0].post.is_some());
    }

    #[test]
    fn mksquashfs_args_map_to_the_writer() {
        let a = squashfs_args("-comp zstd -Xcompression-level 19 -processors 4 -noappend").unwrap();
        assert_eq!(a.compression, Some("zstd:19".parse().unwrap()));
        assert_eq!(a.threads, Some(4));
        assert!(a.ignored.is_empty());
        let a = squashfs_args("-comp xz -b 1M -all-root -no-xattrs").unwrap();
        assert_eq!(a.compression, Some("xz".parse().unwrap()));
        assert!(a.all_root);
        assert_eq!(a.ignored, vec!["-b 1M", "-no-xattrs"]);
        assert!(squashfs_args("-comp lzo").is_err());
        assert!(squashfs_args("-comp").is_err());
        assert_eq!(squashfs_args("").unwrap(), SquashfsArgs::default());
    }

    #[test]
    fn encryption_is_checked_then_refused() {
        let none = |_: &str| None;
        let flags = |encrypt, passphrase, pem: Option<&str>| BuildExtraArgs {
            encrypt,
            passphrase,
            pem_path: pem.map(PathBuf::from),
            ..BuildExtraArgs::default()
        };
        assert_eq!(
            check_encryption(&flags(false, false, None), &none, true).unwrap(),
            None
        );
        // Variables without --encrypt: Apptainer's warning, no encryption.
        let with = |k: &str| (k == "APPTAINER_ENCRYPTION_PASSPHRASE").then(|| "x".to_string());
        assert!(
            check_encryption(&flags(false, false, None), &with, true)
                .unwrap()
                .unwrap()
                .contains("NOT encrypting")
        );
        assert!(
            check_encryption(&flags(true, false, None), &none, true)
                .unwrap_err()
                .to_string()
                .starts_with("Missing encryption info")
        );
        // As root without key material Apptainer builds a plain image.
        assert_eq!(
            check_encryption(&flags(true, false, None), &none, false).unwrap(),
            None
        );
        assert_eq!(
            check_encryption(&flags(false, false, Some("/nonexistent.pem")), &none, false)
                .unwrap_err()
                .to_string(),
            "Specified PEM file /nonexistent.pem: does not exist."
        );
        let e = check_encryption(&flags(false, true, None), &none, true).unwrap_err();
        assert!(e.to_string().contains("gocryptfs"), "{e}");
        let e = check_encryption(&flags(true, false, None), &with, false).unwrap_err();
        assert!(e.to_string().contains("cryptsetup"), "{e}");
    }
}
