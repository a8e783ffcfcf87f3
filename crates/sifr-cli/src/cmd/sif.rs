//! `sifr sif ...` (alias `siftool`): raw SIF manipulation, option- and output-compatible with
//! `apptainer sif` / Sylabs `siftool` (same argument order: `info <id> <sif_path>`,
//! `add <sif_path> <object_path>`, same flags, same text). Parsing and printing only; all format
//! work is in the `sif` crate.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sifr_sif::render::{header_text, info_text, list_text};
use sifr_sif::{
    Arch, CreateOptions, DataType, DeleteOptions, Extra, FsType, HashType, Image, ObjectInput,
    PartType, PartitionMeta, SbomFormat, SignatureMeta,
};

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum SifCommand {
    /// Display global header.
    Header {
        /// The SIF image.
        sif_path: PathBuf,
    },
    /// List data objects.
    List {
        /// The SIF image.
        sif_path: PathBuf,
    },
    /// Display info about a data object.
    Info {
        /// Object ID.
        id: u32,
        /// The SIF image.
        sif_path: PathBuf,
    },
    /// Dump a data object's bytes to stdout.
    Dump {
        /// Object ID.
        id: u32,
        /// The SIF image.
        sif_path: PathBuf,
    },
    /// Create a new, empty SIF image.
    New {
        /// The SIF image to create (overwritten if it exists).
        sif_path: PathBuf,
    },
    /// Add a data object to a SIF image.
    Add(AddArgs),
    /// Delete a data object from a SIF image.
    Del {
        /// Object ID.
        id: u32,
        /// The SIF image.
        sif_path: PathBuf,
    },
    /// Set the primary system partition of a SIF image.
    Setprim {
        /// Object ID of a system partition.
        id: u32,
        /// The SIF image.
        sif_path: PathBuf,
    },
}

/// `siftool add` flags; numbering as siftool's.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  sifr sif add image.sif recipe.def --datatype 1\n  \
    sifr sif add image.sif rootfs.squashfs --datatype 4 --parttype 1 --partfs 1 --partarch 2\n  \
    sifr sif add image.sif signature.bin --datatype 5 --signentity 433FE984155206BD962725E20E8713472A879943 --signhash 1"
)]
pub struct AddArgs {
    /// The SIF image.
    pub sif_path: PathBuf,
    /// The file holding the object's data.
    pub object_path: PathBuf,
    /// Data type: 1-Deffile, 2-EnvVar, 3-Labels, 4-Partition, 5-Signature, 6-GenericJSON,
    /// 7-Generic, 8-CryptoMessage, 9-SBOM, 10-OCI.RootIndex, 11-OCI.Blob.
    #[arg(long, default_value_t = 0)]
    pub datatype: i64,
    /// Partition type (with --datatype 4): 1-System, 2-PrimSys, 3-Data, 4-Overlay.
    #[arg(long, default_value_t = 0)]
    pub parttype: i32,
    /// Partition filesystem (with --datatype 4): 1-Squash, 2-Ext3, 3-ImmuObj, 4-Raw,
    /// 5-EncryptedSquashfs, 6-GocryptfsSquashfs.
    #[arg(long, default_value_t = 0)]
    pub partfs: i32,
    /// Partition architecture (with --datatype 4): 1-386, 2-amd64, 3-arm, 4-arm64, 5-ppc64,
    /// 6-ppc64le, 7-mips, 8-mipsle, 9-mips64, 10-mips64le, 11-s390x, 12-riscv64, 13-loong64.
    #[arg(long, default_value_t = 0)]
    pub partarch: i64,
    /// Signature hash (with --datatype 5): 1-SHA256, 2-SHA384, 3-SHA512, 4-BLAKE2s_256,
    /// 5-BLAKE2b_256.
    #[arg(long, default_value_t = 0)]
    pub signhash: i32,
    /// Signing entity fingerprint, 40 hex digits (with --datatype 5).
    #[arg(long, default_value = "")]
    pub signentity: String,
    /// SBOM format (with --datatype 9): cyclonedx-json, cyclonedx-xml, github-json, spdx-json,
    /// spdx-rdf, spdx-tag-value, spdx-yaml, syft-json.
    #[arg(long, default_value = "")]
    pub sbomformat: String,
    /// Group ID (0 = no group).
    #[arg(long, default_value_t = 0)]
    pub groupid: u32,
    /// Linked ID (raw: OR with 0xF0000000 to link to a group).
    #[arg(long, alias = "linkid")]
    pub link: Option<u32>,
    /// Alignment [default: 4096 with --datatype 4, 0 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub alignment: Option<i64>,
    /// Logical name of the object [default: none].
    #[arg(long)]
    pub filename: Option<String>,
}

fn open(path: &Path) -> anyhow::Result<Image> {
    Image::open(path).with_context(|| format!("cannot load sif image `{}`", path.display()))
}

fn open_rw(path: &Path) -> anyhow::Result<Image> {
    Image::open_rw(path).with_context(|| format!("cannot load sif image `{}`", path.display()))
}

fn out(bytes: &[u8]) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)
        .and_then(|()| o.flush())
        .context("cannot write to stdout")
}

pub fn run(c: SifCommand, _settings: &Settings) -> anyhow::Result<u8> {
    match c {
        SifCommand::Header { sif_path } => out(header_text(open(&sif_path)?.header()).as_bytes())?,
        SifCommand::List { sif_path } => out(list_text(&open(&sif_path)?).as_bytes())?,
        SifCommand::Info { id, sif_path } => {
            let text = info_text(&open(&sif_path)?, id).with_context(|| {
                format!("cannot describe object `{id}` of `{}`", sif_path.display())
            })?;
            out(text.as_bytes())?;
        }
        SifCommand::Dump { id, sif_path } => {
            let img = open(&sif_path)?;
            let mut o = std::io::stdout().lock();
            img.copy_object(id, &mut o).with_context(|| {
                format!("cannot dump object `{id}` of `{}`", sif_path.display())
            })?;
            o.flush().context("cannot write to stdout")?;
        }
        SifCommand::New { sif_path } => {
            sifr_sif::create_at_path(&sif_path, CreateOptions::default(), Vec::new())
                .with_context(|| format!("cannot create sif image `{}`", sif_path.display()))?
        }
        SifCommand::Add(a) => add(a)?,
        SifCommand::Del { id, sif_path } => open_rw(&sif_path)?
            .delete_object(id, DeleteOptions::default())
            .with_context(|| format!("cannot delete object `{id}` of `{}`", sif_path.display()))?,
        SifCommand::Setprim { id, sif_path } => {
            open_rw(&sif_path)?.set_primary(id, None).with_context(|| {
                format!(
                    "cannot set primary partition `{id}` of `{}`",
                    sif_path.display()
                )
            })?
        }
    }
    Ok(crate::exit::OK)
}

/// Builds the typed object from siftool's flags (same checks and order as siftool).
fn object_from_flags(a: &AddArgs) -> anyhow::Result<ObjectInput> {
    let Some(dt) = DataType::from_siftool_number(a.datatype) else {
        bail!(
            "--datatype is required with a value from 1 to 11 (got `{}`)",
            a.datatype
        );
    };
    let extra = match dt {
        DataType::Partition => {
            if a.parttype == 0 || a.partfs == 0 || a.partarch == 0 {
                bail!(
                    "with partition datatype, --partfs, --parttype and --partarch must be passed"
                );
            }
            let arch = Arch::from_siftool_number(a.partarch);
            if arch == Arch::Unknown {
                bail!("unknown architecture `{}` (--partarch)", a.partarch);
            }
            Extra::Partition(PartitionMeta {
                fs: FsType::from_code(a.partfs),
                part: PartType::from_code(a.parttype),
                arch,
            })
        }
        DataType::Signature => {
            let fp = decode_hex(&a.signentity).with_context(|| {
                format!(
                    "cannot decode signing entity fingerprint `{}`",
                    a.signentity
                )
            })?;
            let hash = HashType::from_code(a.signhash);
            if matches!(hash, HashType::Unknown(_)) {
                bail!("invalid hash type `{}` (--signhash)", a.signhash);
            }
            let fingerprint: [u8; 20] = fp.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!(
                    "invalid signing entity fingerprint length: got `{}`, want `20`",
                    fp.len()
                )
            })?;
            Extra::Signature(SignatureMeta {
                hash,
                fingerprint: Some(fingerprint),
            })
        }
        DataType::Sbom => {
            if a.sbomformat.is_empty() {
                bail!("with SBOM datatype, --sbomformat must be passed");
            }
            let f = SbomFormat::from_name(&a.sbomformat)
                .ok_or_else(|| anyhow::anyhow!("invalid SBOM format `{}`", a.sbomformat))?;
            Extra::Sbom(f)
        }
        DataType::OciRootIndex | DataType::OciBlob => Extra::OciDigest(String::new()),
        _ => Extra::None,
    };
    let mut obj = ObjectInput::new(dt, extra, Vec::new());
    obj = if a.groupid == 0 {
        obj.no_group()
    } else {
        obj.group(a.groupid)
    };
    if let Some(l) = a.link {
        if l == 0 {
            bail!("invalid object id `0` (--link)");
        }
        obj = obj.link_raw(l);
    }
    if let Some(n) = a.alignment {
        obj = obj.alignment(n.max(0) as u64);
    }
    if let Some(name) = &a.filename {
        obj = obj.name(name);
    }
    Ok(obj)
}

fn add(a: AddArgs) -> anyhow::Result<()> {
    let obj = object_from_flags(&a)?;
    let f = File::open(&a.object_path)
        .with_context(|| format!("cannot open `{}`", a.object_path.display()))?;
    let mut img = open_rw(&a.sif_path)?;
    img.add_object(obj.reader(f), None).with_context(|| {
        format!(
            "cannot add `{}` to `{}`",
            a.object_path.display(),
            a.sif_path.display()
        )
    })?;
    Ok(())
}

/// Hex text to bytes (either case), as Go's `hex.DecodeString`.
fn decode_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd length hex string");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .filter(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("invalid hex byte at position `{i}`"))
        })
        .collect()
}
