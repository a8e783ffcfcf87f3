//! What an image path is (sandbox directory, SIF, bare SquashFS) and how it will be attached
//! (a bind of the directory, kernel squashfs on a loop device, the in-tree FUSE server, or
//! extraction to a temporary sandbox).
//!
//! Runs in the launcher on the host, before any namespace change, with the caller's ids. It only
//! reads: the SIF header and descriptor table (never the partition), the first bytes of a bare
//! image, and whether `/dev/fuse` can be opened. It must not mount or print: the fallback to
//! extraction is returned as an [`Attach::Extract`] whose [`Attach::notice`] the CLI shows.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The magic number at offset 0 of a SquashFS 4 superblock (`hsqs`, little-endian).
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// Which container format the image path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sandbox,
    Sif,
    Squashfs,
}

/// An image whose root filesystem has been located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Absolute, canonical host path.
    pub path: PathBuf,
    pub format: Format,
    /// Where the SquashFS root filesystem starts in the file (0 for a bare image).
    pub offset: u64,
    /// Its length in bytes (the file's length for a bare image).
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot open image `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image `{}` is not a sandbox directory, a SIF file or a squashfs image", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("cannot read the SIF image `{}`", path.display())]
    Sif {
        path: PathBuf,
        #[source]
        source: sifr_sif::Error,
    },
    #[error("SIF image `{}` has no primary system partition", path.display())]
    NoPrimaryPartition { path: PathBuf },
    #[error(
        "the primary partition of `{}` (offset {offset}) is {fs}, only squashfs is supported",
        path.display()
    )]
    NotSquashfs {
        path: PathBuf,
        offset: u64,
        fs: String,
    },
    #[error(
        "image `{}` is built for architecture `{image}`, but this host is `{host}`",
        path.display()
    )]
    Arch {
        path: PathBuf,
        image: String,
        host: String,
    },
    #[error("`--writable` needs a sandbox directory, and `{}` is an image file", path.display())]
    WritableFile { path: PathBuf },
}

impl ImageError {
    /// A fix the user can apply, where one is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            ImageError::Arch { image, host, .. } => Some(format!(
                "run it on a `{image}` host, enable emulation of `{image}` binaries \
                 (binfmt_misc with qemu-user-static), or pull the image for this host with \
                 `--arch {host}`"
            )),
            ImageError::WritableFile { .. } => Some(
                "drop `--writable`: changes go to a temporary overlay; or build a sandbox \
                 with `sifr build --sandbox DIR IMAGE`"
                    .into(),
            ),
            ImageError::UnknownFormat { .. } => {
                Some("images must be SIF files, squashfs files or sandbox directories".into())
            }
            _ => None,
        }
    }
}

/// Locate the root filesystem of the image at `path`. A SIF's primary partition must be
/// squashfs and built for this host's architecture.
pub fn open(path: &Path) -> Result<Image, ImageError> {
    let open_err = |source| ImageError::Open {
        path: path.to_path_buf(),
        source,
    };
    let path = std::fs::canonicalize(path).map_err(open_err)?;
    let md = std::fs::metadata(&path).map_err(open_err)?;
    if md.is_dir() {
        return Ok(Image {
            path,
            format: Format::Sandbox,
            offset: 0,
            size: 0,
        });
    }
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(&path).map_err(open_err)?;
    let n = f.read(&mut magic).map_err(open_err)?;
    if n == 4 && &magic == SQUASHFS_MAGIC {
        return Ok(Image {
            size: md.len(),
            path,
            format: Format::Squashfs,
            offset: 0,
        });
    }
    drop(f);
    let sif = match sifr_sif::Image::open(&path) {
        Ok(s) => s,
        Err(sifr_sif::Error::BadMagic { .. } | sifr_sif::Error::TooSmall { .. }) => {
            return Err(ImageError::UnknownFormat { path });
        }
        Err(source) => return Err(ImageError::Sif { path, source }),
    };
    let Some(d) = sif.primary_partition() else {
        return Err(ImageError::NoPrimaryPartition { path });
    };
    let (offset, size) = (d.offset(), d.size());
    let Some(meta) = d.partition() else {
        return Err(ImageError::NoPrimaryPartition { path });
    };
    if meta.fs != sifr_sif::FsType::Squash {
        return Err(ImageError::NotSquashfs {
            path,
            offset,
            fs: format!("{:?}", meta.fs).to_lowercase(),
        });
    }
    let host = sifr_sif::Arch::host();
    if meta.arch != host && meta.arch != sifr_sif::Arch::Unknown {
        return Err(ImageError::Arch {
            path,
            image: meta.arch.go_name().into(),
            host: host.go_name().into(),
        });
    }
    Ok(Image {
        path,
        format: Format::Sif,
        offset,
        size,
    })
}

/// The [`Attach::Extract`] reason when `--unsquash` asked for extraction.
const UNSQUASH: &str = "asked for with `--unsquash`";

/// How the image's root filesystem will be made available to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// Bind the sandbox directory.
    Directory,
    /// Kernel squashfs on a read-only, auto-clearing loop device (real root only).
    Loop,
    /// The in-tree FUSE server, forked inside the user + mount namespace.
    Fuse,
    /// Extract to a temporary sandbox, removed after the container exits. `reason` says why
    /// FUSE could not be used.
    Extract { reason: String },
}

impl Attach {
    /// A one-line notice for the user, when the choice costs them something (time, disk).
    pub fn notice(&self, image: &Image) -> Option<String> {
        match self {
            // Asked for: nothing to announce.
            Attach::Extract { reason } if reason == UNSQUASH => None,
            Attach::Extract { reason } => Some(format!(
                "FUSE is not usable ({reason}); extracting `{}` to a temporary sandbox",
                image.path.display()
            )),
            _ => None,
        }
    }
}

/// What the container asks of its image, which decides how [`choose`] attaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachWants {
    /// The container runs without a user namespace as real root
    /// ([`crate::LaunchPlan::kernel_mounts`]; false for `--userns` and `--fakeroot`, whose
    /// namespace's root cannot mount squashfs).
    pub kernel_mounts: bool,
    /// `--writable`: only a sandbox directory can be written.
    pub writable: bool,
    /// `--unsquash`: extract the image even where it could be mounted.
    pub unsquash: bool,
}

/// Choose how to attach `image`: a directory is bound; with `wants.kernel_mounts`, a loop device
/// when `/dev/loop-control` exists; otherwise FUSE when `/dev/fuse` opens, extraction if not.
pub fn choose(image: &Image, wants: AttachWants) -> Result<Attach, ImageError> {
    let AttachWants {
        kernel_mounts,
        writable,
        unsquash,
    } = wants;
    if image.format == Format::Sandbox {
        return Ok(Attach::Directory);
    }
    if writable {
        return Err(ImageError::WritableFile {
            path: image.path.clone(),
        });
    }
    if unsquash {
        return Ok(Attach::Extract {
            reason: UNSQUASH.into(),
        });
    }
    // Root without loop devices (inside some container runtimes) is served like a user.
    if kernel_mounts && Path::new("/dev/loop-control").exists() {
        return Ok(Attach::Loop);
    }
    // Only a probe: the server opens its own fd later, inside the namespaces. Opening needs
    // read-write access, which distributions grant to everyone (mode 0666) but minimal systems
    // may not (0600).
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => Ok(Attach::Fuse),
        Err(e) => Ok(Attach::Extract {
            reason: format!("cannot open `/dev/fuse`: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_a_sandbox_attached_by_bind() {
        let d = tempfile::tempdir().unwrap();
        let img = open(d.path()).unwrap();
        assert_eq!(img.format, Format::Sandbox);
        assert_eq!(
            choose(
                &img,
                AttachWants {
                    kernel_mounts: false,
                    writable: true,
                    unsquash: true,
                }
            )
            .unwrap(),
            Attach::Directory
        );
    }

    #[test]
    fn a_bare_squashfs_is_recognised_by_its_magic_and_refuses_writable() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img.sqfs");
        std::fs::write(&p, b"hsqs and more").unwrap();
        let img = open(&p).unwrap();
        assert_eq!(
            (img.format, img.offset, img.size),
            (Format::Squashfs, 0, 13)
        );
        assert!(matches!(
            choose(
                &img,
                AttachWants {
                    kernel_mounts: true,
                    writable: true,
                    unsquash: false,
                }
            ),
            Err(ImageError::WritableFile { .. })
        ));
        assert_eq!(
            choose(
                &img,
                AttachWants {
                    kernel_mounts: true,
                    writable: false,
                    unsquash: false,
                }
            )
            .unwrap(),
            Attach::Loop
        );
        // `--unsquash` extracts even where the kernel could mount, and says nothing about it.
        let unsquashed = choose(
            &img,
            AttachWants {
                kernel_mounts: true,
                writable: false,
                unsquash: true,
            },
        )
        .unwrap();
        assert!(matches!(unsquashed, Attach::Extract { .. }));
        assert_eq!(unsquashed.notice(&img), None);
    }

    #[test]
    fn an_unknown_file_is_refused_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.img");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let e = open(&p).unwrap_err();
        assert!(matches!(e, ImageError::UnknownFormat { .. }), "{e:?}");
        assert!(e.to_string().contains("x.img"));
    }
}
