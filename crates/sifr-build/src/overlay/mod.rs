//! `overlay create`: a writable ext3 overlay image laid out as Apptainer lays it out (its
//! `internal/app/apptainer/overlay_create.go`), either a new image file or an overlay partition
//! added to an existing SIF, so that Apptainer and sifr can use each other's overlays.
//!
//! The layout: an ext3 file system whose root holds `upper/` and `work/` (the overlayfs upper
//! and work directories that `--overlay` mounts), plus `upper/DIR` for each `--create-dir`;
//! the directories are owned by the caller (by root with `--fakeroot`), mode 0755, or 0777 when
//! the caller's uid or gid is above 65535, as Apptainer makes them.
//!
//! The file system is made by the real `mkfs.ext3 -d STAGING FILE` from e2fsprogs, not by a
//! writer of our own: the journal, the block groups and the directory format must be exactly
//! what `e2fsck`, the kernel's ext3/ext4 driver and `fuse2fs` accept, and e2fsprogs is the
//! reference for all three; `-d` copies the staging tree with its owners and modes. Apptainer
//! uses the same tool and refuses one without `-d`, as we do.
//!
//! Nothing partial is left behind: the file system is built in a temporary file next to the
//! target (`IMAGE.PID-N.ext3`, mode 0600) and renamed into place only when complete; an added
//! SIF partition is undone (header and descriptors restored, the file cut back to its length)
//! when adding it fails.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use target::{Target, add_partition, classify};

mod target;

/// The smallest overlay Apptainer makes, in MiB.
pub const MIN_SIZE_MIB: i64 = 64;

const MIB: u64 = 1 << 20;
const MKFS: &str = "mkfs.ext3";
const DEBUGFS: &str = "debugfs";
/// Where e2fsprogs lives when the caller's `PATH` lacks the sbin directories (Debian's
/// ordinary users), searched after `PATH` as Apptainer's default binary path does.
const SBIN: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// What `overlay create` was asked for.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The new ext3 image, or an existing SIF to add an overlay partition to.
    pub image: PathBuf,
    /// Size in MiB (at least [`MIN_SIZE_MIB`]).
    pub size_mib: i64,
    /// Allocate no blocks up front (a sparse file) instead of writing zeros.
    pub sparse: bool,
    /// Make the layout root's (for actions run with `--fakeroot`).
    pub fakeroot: bool,
    /// Directories to create under `upper/` (`--create-dir`), as given.
    pub dirs: Vec<String>,
    /// Where the staging tree is made (`--tmpdir`).
    pub tmpdir: PathBuf,
    /// The caller's `PATH`, searched for `mkfs.ext3` and `debugfs` (then [`SBIN`]).
    pub path: String,
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new ext3 image file.
    Image(PathBuf),
    /// An overlay partition, object `id`, added to the SIF at this path.
    Partition { sif: PathBuf, id: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("image size must be equal or greater than {MIN_SIZE_MIB} MiB (--size {size})")]
    TooSmall { size: i64 },
    #[error("--size {size} MiB is too large")]
    TooLarge { size: i64 },
    #[error("{tool} not found in PATH or {}", SBIN.join(", "))]
    ToolMissing { tool: &'static str },
    #[error("cannot run `{}`", path.display())]
    ToolRun {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{}` seems too old as it doesn't support -d, this is required to create the overlay layout",
        path.display()
    )]
    MkfsTooOld { path: PathBuf },
    #[error("overlay directory `{dir}` created outside of overlay layout upper/ (--create-dir)")]
    DirEscapes { dir: String },
    #[error(
        "overlay directory `{dir:?}` holds a newline, which --fakeroot cannot handle (--create-dir)"
    )]
    DirNewline { dir: String },
    #[error("--fakeroot used without user namespaces")]
    FakerootWithoutUserns,
    #[error("cannot inspect `{}`", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("EXT3 overlay image {} already exists", path.display())]
    Ext3Exists { path: PathBuf },
    #[error("destination image must be SIF image: `{}` is neither a SIF nor an ext3 image", path.display())]
    NotSif { path: PathBuf },
    #[error("while opening image file {}", path.display())]
    OpenSif {
        path: PathBuf,
        #[source]
        source: sifr_sif::Error,
    },
    #[error("while getting root FS partition: no root filesystem partition found in {}", path.display())]
    NoRootPartition { path: PathBuf },
    #[error("encrypted root FS partition in {}: could not add writable overlay", path.display())]
    EncryptedRoot { path: PathBuf },
    #[error("SIF image {} is signed: could not add writable overlay", path.display())]
    Signed { path: PathBuf },
    #[error(
        "a writable overlay partition already exists in {} (ID: {id}), delete it first with \"sifr sif del {id} {}\"",
        path.display(),
        path.display()
    )]
    OverlayExists { path: PathBuf, id: u32 },
    #[error("while zero'ing overlay image {}", path.display())]
    Fill {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("while creating {}", path.display())]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("while creating ext3 partition in {}: {} exited with {status}: {stderr}", path.display(), tool.display())]
    Tool {
        tool: PathBuf,
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("while renaming {} to {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("while adding ext3 overlay partition to {}", path.display())]
    AddPartition {
        path: PathBuf,
        #[source]
        source: sifr_sif::Error,
    },
    #[error("while adding ext3 overlay partition to {}: cannot restore it after a failed add", path.display())]
    Restore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OverlayError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            OverlayError::TooSmall { .. } => format!("give --size {MIN_SIZE_MIB} or more"),
            OverlayError::ToolMissing { .. } | OverlayError::MkfsTooOld { .. } => {
                "install e2fsprogs 1.43 or newer (`apt-get install e2fsprogs`, `dnf install e2fsprogs`)"
                    .into()
            }
            OverlayError::DirEscapes { .. } => {
                "name a directory inside the container, such as /usr/local/data".into()
            }
            OverlayError::FakerootWithoutUserns => {
                "user namespaces are not available, so an overlay made with --fakeroot would \
                 interfere with the fakeroot command's overlay operation; leave out --fakeroot"
                    .into()
            }
            OverlayError::Ext3Exists { .. } => {
                "the image is ready to use with --overlay; remove it first to make a new one".into()
            }
            OverlayError::NotSif { .. } => {
                "name a new file, or a SIF image to add an overlay partition to".into()
            }
            OverlayError::Signed { .. } => {
                "an overlay partition would change the signed image; add it to an unsigned copy \
                 (`sifr build copy.sif image.sif`), or use a separate overlay image file"
                    .into()
            }
            OverlayError::EncryptedRoot { .. } => {
                "use a separate overlay image file with --overlay".into()
            }
            OverlayError::OverlayExists { path, .. } => format!(
                "or use the one it has: `sifr exec --writable {} ...`",
                path.display()
            ),
            OverlayError::Fill { path, .. } | OverlayError::Rename { to: path, .. } => format!(
                "check that {} has space and is writable (--sparse allocates no space up front)",
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .display()
            ),
            OverlayError::Staging { .. } => {
                "check the temporary directory (--tmpdir, APPTAINER_TMPDIR, TMPDIR)".into()
            }
            _ => return None,
        })
    }
}

/// What Apptainer says about `--fakeroot` for an unprivileged caller before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakerootAdvice {
    /// Nothing to say.
    Quiet,
    /// Made without `--fakeroot` by a user with no subordinate ids while user namespaces work:
    /// suggest `--fakeroot` (an `INFO` in Apptainer).
    Suggest,
    /// `--fakeroot` without user namespaces: refused ([`OverlayError::FakerootWithoutUserns`]).
    Refuse,
}

/// Apptainer's judgement for `uid`: root and users with subordinate ids need no advice (a
/// fakeroot container can override their ownership); for others it depends on whether user
/// namespaces work at all.
pub fn fakeroot_advice(uid: u32, subids: bool, userns: bool, fakeroot: bool) -> FakerootAdvice {
    match (uid == 0 || subids, userns, fakeroot) {
        (true, _, _) => FakerootAdvice::Quiet,
        (false, false, true) => FakerootAdvice::Refuse,
        (false, true, false) => FakerootAdvice::Suggest,
        _ => FakerootAdvice::Quiet,
    }
}

/// Whether `user` (uid `uid`) has a subordinate uid range, as Apptainer's `IsUIDMapped` asks.
pub fn has_subuids(user: Option<&str>, uid: u32) -> bool {
    let text = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    sifr_launch::fakeroot::subid_range(&text, user, uid).is_some()
}

/// Whether unprivileged user namespaces are on (neither sysctl turns them off).
pub fn userns_available() -> bool {
    let off = |p: &str, v: &str| std::fs::read_to_string(p).is_ok_and(|t| t.trim() == v);
    !off("/proc/sys/user/max_user_namespaces", "0")
        && !off("/proc/sys/kernel/unprivileged_userns_clone", "0")
}

/// `upper/`'s subdirectories to create for `--create-dir DIR`, as relative paths, each
/// component in order (`/usr/local` gives `usr`, `usr/local`). `..` may not climb out of
/// `upper/` (Apptainer's check compares joined paths by prefix, which `../upperX` passes).
pub fn create_dir_components(dir: &str) -> Result<Vec<PathBuf>, OverlayError> {
    let mut at = PathBuf::new();
    let mut out = Vec::new();
    for c in Path::new(dir).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !at.pop() {
                    return Err(OverlayError::DirEscapes { dir: dir.into() });
                }
            }
            Component::Normal(n) => {
                at.push(n);
                out.push(at.clone());
            }
        }
    }
    Ok(out)
}

/// `name` in the quoting of debugfs's command parser: inside double quotes, a quote doubled.
fn debugfs_quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// Find `tool` in `path`, then in [`SBIN`].
fn find_tool(tool: &'static str, path: &str) -> Result<PathBuf, OverlayError> {
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(SBIN.iter().copied())
        .map(|d| Path::new(d).join(tool))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or(OverlayError::ToolMissing { tool })
}

/// Apptainer's check that `mkfs.ext3` takes `-d`: its usage text names it.
fn check_mkfs(mkfs: &Path) -> Result<(), OverlayError> {
    let out = Command::new(mkfs)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| OverlayError::ToolRun {
            path: mkfs.into(),
            source,
        })?;
    if String::from_utf8_lossy(&out.stderr).contains("[-d ") {
        Ok(())
    } else {
        Err(OverlayError::MkfsTooOld { path: mkfs.into() })
    }
}

/// A path removed when dropped (a file, or a directory tree), unless kept.
struct Removed {
    path: PathBuf,
    tree: bool,
    keep: bool,
}

impl Drop for Removed {
    fn drop(&mut self) {
        if !self.keep {
            let _ = if self.tree {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
        }
    }
}

/// A new file or directory `prefix + PID-N + suffix` in `dir`, made exclusively.
fn unique<T>(
    dir: &Path,
    prefix: &OsStr,
    suffix: &str,
    mut make: impl FnMut(&Path) -> std::io::Result<T>,
) -> Result<(PathBuf, T), OverlayError> {
    let pid = std::process::id();
    let mut last = None;
    for n in 0..1000u32 {
        let mut name = prefix.to_owned();
        name.push(format!("{pid}-{n}{suffix}"));
        let p = dir.join(name);
        match make(&p) {
            Ok(t) => return Ok((p, t)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(source) => return Err(OverlayError::Staging { path: p, source }),
        }
    }
    Err(OverlayError::Staging {
        path: dir.into(),
        source: last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()),
    })
}

/// Who asks: the layout's owners and what [`fakeroot_advice`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The caller has subordinate uids ([`has_subuids`]).
    pub subids: bool,
    /// Unprivileged user namespaces work ([`userns_available`]).
    pub userns: bool,
}

/// Make the overlay `opts` asks for. `info` receives Apptainer's `INFO` lines (the
/// `--fakeroot` advice), each without its prefix.
pub fn create(
    opts: &CreateOptions,
    who: Caller,
    info: &mut dyn FnMut(&str),
) -> Result<Created, OverlayError> {
    let Caller { uid, gid, .. } = who;
    if opts.size_mib < MIN_SIZE_MIB {
        return Err(OverlayError::TooSmall {
            size: opts.size_mib,
        });
    }
    let bytes = u64::try_from(opts.size_mib)
        .ok()
        .and_then(|m| m.checked_mul(MIB))
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or(OverlayError::TooLarge {
            size: opts.size_mib,
        })?;
    let mkfs = find_tool(MKFS, &opts.path)?;
    check_mkfs(&mkfs)?;
    // Root owns a layout made by root already; others get root's ownership afterwards.
    let chown = opts.fakeroot && uid != 0;
    let debugfs = chown.then(|| find_tool(DEBUGFS, &opts.path)).transpose()?;
    let mut upper_dirs = Vec::new();
    for d in &opts.dirs {
        if chown && d.contains('\n') {
            return Err(OverlayError::DirNewline { dir: d.clone() });
        }
        upper_dirs.extend(create_dir_components(d)?);
    }
    let target = classify(&opts.image)?;
    match fakeroot_advice(uid, who.subids, who.userns, opts.fakeroot) {
        FakerootAdvice::Quiet => {}
        FakerootAdvice::Suggest => {
            info("Creating overlay image for use without fakeroot.");
            info("Consider re-running with --fakeroot option.");
        }
        FakerootAdvice::Refuse => {
            info("User namespaces are not available, so using --fakeroot here would");
            info("  actually interfere with fakeroot command overlay operation");
            return Err(OverlayError::FakerootWithoutUserns);
        }
    }

    let (tmp, mut tmp_guard) = fill_temp(&opts.image, bytes, opts.sparse)?;
    let stage = Staging::make(&opts.tmpdir)?;
    // Apptainer's modes; with --fakeroot it runs as root in a user namespace, so 0755.
    let big = !opts.fakeroot && (uid > 65535 || gid > 65535);
    let mode = if big { 0o777 } else { 0o755 };
    let mut made = vec![PathBuf::from("upper"), PathBuf::from("work")];
    made.extend(upper_dirs.iter().map(|d| Path::new("upper").join(d)));
    for rel in &made {
        stage.mkdir(rel, mode)?;
    }
    let mut mkfs_cmd = Command::new(&mkfs);
    // mke2fs discards a file's blocks by default (it punches holes in a regular file), which
    // would leave the zeros written above sparse again; Apptainer's non-sparse image meets
    // that fate, but the point of writing zeros is to hold the space, so keep them.
    if !opts.sparse {
        mkfs_cmd.args(["-E", "nodiscard"]);
    }
    mkfs_cmd.arg("-d").arg(&stage.guard.path).arg(&tmp);
    run_tool(&mkfs, &tmp, &mut mkfs_cmd, None)?;
    if let Some(debugfs) = debugfs {
        // Root's ownership without a user namespace: debugfs sets the owner fields of the
        // inodes mkfs made from the staging tree (the root too, in case a mkfs gives it the
        // staging directory's owner). Apptainer re-runs itself in a root-mapped user
        // namespace for this, which fails where user namespaces are off; the inodes end the
        // same.
        let mut script = String::new();
        for p in std::iter::once(PathBuf::new()).chain(made) {
            let p = format!("/{}", p.display());
            for field in ["uid", "gid"] {
                script.push_str(&format!(
                    "set_inode_field {} {field} 0\n",
                    debugfs_quote(&p)
                ));
            }
        }
        run_tool(
            &debugfs,
            &tmp,
            Command::new(&debugfs)
                .arg("-w")
                .arg("-f")
                .arg("-")
                .arg(&tmp),
            Some(script),
        )?;
    }
    drop(stage);
    match target {
        Target::New => {
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|source| OverlayError::Fill {
                    path: tmp.clone(),
                    source,
                })?;
            rename_new(&tmp, &opts.image)?;
            tmp_guard.keep = true;
            Ok(Created::Image(opts.image.clone()))
        }
        Target::Sif(img) => {
            let data = File::open(&tmp).map_err(|source| OverlayError::Fill {
                path: tmp.clone(),
                source,
            })?;
            let id = add_partition(*img, &opts.image, data)?;
            Ok(Created::Partition {
                sif: opts.image.clone(),
                id,
            })
        }
    }
}

/// The temporary image next to `image`, `bytes` long: zeros written, or a sparse file.
fn fill_temp(image: &Path, bytes: u64, sparse: bool) -> Result<(PathBuf, Removed), OverlayError> {
    let dir = image
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut prefix = image
        .file_name()
        .unwrap_or(OsStr::new("overlay"))
        .to_owned();
    prefix.push(".");
    let (tmp, mut f) = unique(dir, &prefix, ".ext3", |p| {
        File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
    })
    .map_err(|e| match e {
        OverlayError::Staging { path, source } => OverlayError::Fill { path, source },
        e => e,
    })?;
    let guard = Removed {
        path: tmp.clone(),
        tree: false,
        keep: false,
    };
    let fill = |f: &mut File| -> std::io::Result<()> {
        if sparse {
            f.set_len(bytes)?;
        } else {
            let zeros = vec![0u8; MIB as usize];
            for _ in 0..bytes / MIB {
                f.write_all(&zeros)?;
            }
        }
        // Apptainer's explicit 0600, whatever the umask left.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
    };
    fill(&mut f).map_err(|source| OverlayError::Fill {
        path: tmp.clone(),
        source,
    })?;
    Ok((tmp, guard))
}

/// The staging tree that becomes the image's root directory.
struct Staging {
    guard: Removed,
}

impl Staging {
    fn make(tmpdir: &Path) -> Result<Staging, OverlayError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let (path, ()) = unique(tmpdir, OsStr::new("overlay-"), "", |p| {
            std::fs::DirBuilder::new().mode(0o700).create(p)
        })?;
        Ok(Staging {
            guard: Removed {
                path,
                tree: true,
                keep: false,
            },
        })
    }

    /// `rel` (its parents already made) with exactly `mode`, whatever the umask; one already
    /// there (`--create-dir` given twice) is left as it is.
    fn mkdir(&self, rel: &Path, mode: u32) -> Result<(), OverlayError> {
        let p = self.guard.path.join(rel);
        let err = |source| OverlayError::Staging {
            path: p.clone(),
            source,
        };
        match std::fs::create_dir(&p) {
            Ok(()) => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(err)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}

/// Run an e2fsprogs tool on `image` (stdin `input`), its stderr kept for the error. debugfs
/// exits 0 whatever its requests did, so its stderr must hold nothing but its banner.
fn run_tool(
    tool: &Path,
    image: &Path,
    cmd: &mut Command,
    input: Option<String>,
) -> Result<(), OverlayError> {
    let ran = |source| OverlayError::ToolRun {
        path: tool.into(),
        source,
    };
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ran)?;
    if let (Some(text), Some(mut stdin)) = (input.as_ref(), child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(ran)?;
    }
    let out = child.wait_with_output().map_err(ran)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| input.is_none() || !(l.starts_with("debugfs ") || l.trim().is_empty()))
        .collect();
    if out.status.success() && (input.is_none() || complaints.is_empty()) {
        return Ok(());
    }
    Err(OverlayError::Tool {
        tool: tool.into(),
        path: image.into(),
        status: out.status.to_string(),
        stderr: complaints.join("\n").trim().to_string(),
    })
}

/// Rename `tmp` to `image`, never over a file that appeared since it was judged absent.
fn rename_new(tmp: &Path, image: &Path) -> Result<(), OverlayError> {
    let err = |source: std::io::Error| OverlayError::Rename {
        from: tmp.into(),
        to: image.into(),
        source,
    };
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, tmp, CWD, image, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(OverlayError::Ext3Exists { path: image.into() }),
        // File systems without RENAME_NOREPLACE (some network ones): a plain rename.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            std::fs::rename(tmp, image).map_err(err)
        }
        Err(e) => Err(err(e.into())),
    }
}

#[cfg(test)]
mod tests;
