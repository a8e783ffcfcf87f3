//! `sifr overlay create`: a writable ext3 overlay image, or an overlay partition added to a
//! SIF, as `apptainer overlay create` makes them. Flags, defaults and variables are Apptainer's
//! (`cmd/internal/cli/overlay_create.go`); the work is [`sifr_build::overlay`]'s.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sifr_build::overlay::{self, Caller, CreateOptions, Created};

use super::action_env::Slot;
use super::pull_build_env::CmdTwin;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum OverlayCommand {
    /// Create EXT3 writable overlay image (a new image file, or a partition added to a SIF).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Size of the EXT3 writable overlay in MiB.
    #[arg(
        short = 's',
        long,
        default_value_t = overlay::MIN_SIZE_MIB,
        allow_negative_numbers = true,
        value_name = "MiB"
    )]
    pub size: i64,
    /// Create a sparse overlay (no blocks allocated until written).
    #[arg(short = 'S', long)]
    pub sparse: bool,
    /// Directory to create as part of the overlay layout (under upper/; repeatable).
    #[arg(long = "create-dir", value_name = "DIR")]
    pub create_dir: Vec<String>,
    /// Make overlay layout usable by actions run with --fakeroot (upper/ and work/ owned by
    /// root).
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// Temporary directory for the staging tree (default: the `tmpdir` setting, $TMPDIR, /tmp).
    #[arg(long, hide = true, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
    /// The new ext3 image, or an existing SIF image to add an overlay partition to.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
}

/// `overlay create`'s variables (Apptainer's `EnvKeys`; `TMPDIR` is the `tmpdir` setting).
pub const CREATE_TWINS: &[CmdTwin<CreateArgs>] = &[
    CmdTwin {
        flag: "sparse",
        keys: &["SPARSE"],
        bare: false,
        bare_only: false,
        slot: |a| Slot::Switch(&mut a.sparse),
    },
    CmdTwin {
        flag: "fakeroot",
        keys: &["FAKEROOT"],
        bare: false,
        bare_only: false,
        slot: |a| Slot::Switch(&mut a.fakeroot),
    },
];

pub fn run(c: OverlayCommand, settings: &Settings) -> anyhow::Result<u8> {
    match c {
        OverlayCommand::Create(mut a) => {
            super::pull_build_env::apply_process(&mut a, CREATE_TWINS)?;
            create(a, settings)
        }
    }
}

fn create(a: CreateArgs, settings: &Settings) -> anyhow::Result<u8> {
    let loud = !settings.quiet && !settings.silent;
    let (uid, gid) = sifr_sys::process::ids();
    let path = std::env::var("PATH").unwrap_or_default();
    let user = (uid != 0)
        .then(|| sifr_launch::host::gather(Vec::new()).ok())
        .flatten()
        .and_then(|h| h.user.map(|u| u.name));
    let who = Caller {
        uid,
        gid,
        subids: uid != 0 && overlay::has_subuids(user.as_deref(), uid),
        userns: uid != 0 && overlay::userns_available(),
    };
    let tmpdir = a
        .tmpdir
        .clone()
        .or_else(|| settings.tmpdir.clone())
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let opts = CreateOptions {
        image: a.image,
        size_mib: a.size,
        sparse: a.sparse,
        fakeroot: a.fakeroot,
        dirs: a.create_dir,
        tmpdir,
        path,
    };
    let made = overlay::create(&opts, who, &mut |line| {
        if loud {
            eprintln!("INFO:    {line}");
        }
    })?;
    if let Created::Partition { sif, id } = made {
        tracing::debug!("added ext3 overlay partition {id} to {}", sif.display());
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `overlay create` row of docs/apptainer-flags.tsv: the flag (and its short form)
    /// parses, and each variable suffix is a twin here or a setting.
    #[test]
    fn every_apptainer_overlay_create_flag_and_variable_exists() {
        let tsv = include_str!("../../../../docs/apptainer-flags.tsv");
        let mut cmd = crate::args::full_command()
            .find_subcommand("overlay")
            .and_then(|c| c.find_subcommand("create"))
            .expect("an overlay create command")
            .clone();
        cmd.build();
        let mut checked = 0;
        for line in tsv.lines().filter(|l| l.starts_with("overlay create\t")) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (long, short, keys) = (cols[1], cols[2], cols[3]);
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("overlay create has no --{long}"));
            if !short.is_empty() {
                assert_eq!(arg.get_short(), short.chars().next(), "--{long}");
            }
            for key in keys.split(',').filter(|k| !k.is_empty()) {
                let twin = CREATE_TWINS
                    .iter()
                    .any(|t| t.flag == long && t.keys.contains(&key));
                assert!(
                    twin || key == "TMPDIR",
                    "overlay create --{long}: no twin for {key}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 5, "the tsv's overlay create rows");
    }

    #[test]
    fn variables_fill_unset_switches() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: CreateArgs,
        }
        let mut a = T::try_parse_from(["t", "--size", "128", "x.img"])
            .unwrap()
            .a;
        let env: Vec<(String, String)> = vec![
            ("APPTAINER_SPARSE".into(), "1".into()),
            ("SINGULARITY_FAKEROOT".into(), "true".into()),
        ];
        super::super::pull_build_env::apply(&mut a, CREATE_TWINS, &env.as_slice()).unwrap();
        assert!(a.sparse && a.fakeroot);
        assert_eq!(a.size, 128);
        let a = T::try_parse_from(["t", "x.img"]).unwrap().a;
        assert_eq!(a.size, 64, "Apptainer's default");
    }
}
