//! GPU passthrough, a plan contributor: `--nv` and `--rocm` bring the host driver's user-space
//! (libraries, programs, vendor files, the persistenced socket, device nodes) into the container;
//! the image carries CUDA or ROCm, the host the driver that matches its kernel module.
//!
//! Two phases, as everywhere in the runtime:
//! - [`discover`] reads the host (the lists of [`liblist`], the loader cache of [`ldcache`],
//!   `PATH`, `/dev`) before any namespace change and returns plain [`Found`] data, with a warning
//!   for each thing a working driver would have had and this host lacks;
//! - [`mounts`] (pure) turns that data into tagged plan mounts: libraries one file each into the
//!   session-backed `/.singularity.d/libs` (or `libs32`), programs into `/usr/bin`, vendor files
//!   and the socket at their own path, device nodes into `--contain`'s minimal `/dev`.
//!
//! Must not: mount, print, or run anything but `ldconfig -p` / `nvidia-container-cli list`
//! (host tools, read-only); the executor never branches on GPUs.

pub mod devices;
pub mod ldcache;
pub mod liblist;
mod nvccli;

use std::path::{Path, PathBuf};

pub use crate::plan::types::{Found, Lib, Vendor};
use crate::plan::types::{Mount, Tag};
use devices::Selection;
use ldcache::ElfKind;

/// Where 64-bit host libraries appear in the container (on `LD_LIBRARY_PATH` through the
/// image's `99-base.sh`, or added by the runtime when the image has none).
pub const LIBS_DIR: &str = "/.singularity.d/libs";
/// Where 32-bit host libraries appear (same names as the 64-bit ones, so a separate directory).
pub const LIBS32_DIR: &str = "/.singularity.d/libs32";
/// Where driver programs appear.
pub const PROGRAMS_DIR: &str = "/usr/bin";
/// `nvidia-persistenced`'s socket, bound when the daemon runs on the host.
pub const PERSISTENCED_SOCKET: &str = "/var/run/nvidia-persistenced/socket";

/// Host variables that select GPUs, kept under `--cleanenv` when the vendor's flag is given: a
/// scheduler's GPU assignment (Slurm sets `CUDA_VISIBLE_DEVICES`) must not be dropped, or the
/// job would use every GPU of the node.
pub const NVIDIA_ENV: &[&str] = &[
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
];
/// The AMD equivalents.
pub const ROCM_ENV: &[&str] = &[
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
];

/// Which GPU support a launch asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `--nv`.
    pub nvidia: bool,
    /// `--nvccli`: list the driver's files with `nvidia-container-cli` (implies `--nv`).
    pub nvccli: bool,
    /// `--rocm`.
    pub rocm: bool,
    /// The directory of sifr's config file, where an administrator's `nvliblist.conf` and
    /// `rocmliblist.conf` replace the built-in lists.
    pub config_dir: PathBuf,
}

impl Request {
    pub fn any(&self) -> bool {
        self.nvidia || self.nvccli || self.rocm
    }
}

impl Vendor {
    /// The flag that asks for it, for messages.
    pub fn flag(self) -> &'static str {
        match self {
            Vendor::Nvidia => "--nv",
            Vendor::Amd => "--rocm",
        }
    }
    fn list_name(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvliblist.conf",
            Vendor::Amd => "rocmliblist.conf",
        }
    }
    fn builtin(self) -> &'static str {
        match self {
            Vendor::Nvidia => liblist::NVIDIA_BUILTIN,
            Vendor::Amd => liblist::ROCM_BUILTIN,
        }
    }
    /// The host variables kept under `--cleanenv`.
    pub fn env_names(self) -> &'static [&'static str] {
        match self {
            Vendor::Nvidia => NVIDIA_ENV,
            Vendor::Amd => ROCM_ENV,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("cannot read the GPU library list `{}`", path.display())]
    ReadList {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which `/dev` the container sees, and so how GPU device nodes reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevView {
    /// `--contain`: a minimal `/dev`, into which only the selected GPU nodes are bound.
    Minimal,
    /// The host's whole `/dev`: every node shows, so the selection is passed to CUDA instead.
    Host,
}

impl DevView {
    /// The view `--contain` (`contain`) gives.
    pub fn of(contain: bool) -> Self {
        if contain { Self::Minimal } else { Self::Host }
    }
}

/// Look at the host for each vendor asked for, for a container that sees `/dev` as `dev`.
pub fn discover(
    req: &Request,
    host_env: &[(String, String)],
    dev: DevView,
) -> Result<Vec<Found>, GpuError> {
    let var = |k: &str| {
        host_env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let path_env = var("PATH").unwrap_or(crate::vars::DEFAULT_PATH);
    let mut out = Vec::new();
    let mut cache: Option<Result<Vec<ldcache::Entry>, ldcache::CacheError>> = None;
    let mut read_cache = || {
        cache
            .get_or_insert_with(|| ldcache::read_host(path_env))
            .clone()
    };
    if req.nvidia || req.nvccli {
        let mut found = None;
        if req.nvccli {
            match nvccli::list(path_env, &read_cache().unwrap_or_default()) {
                Ok(f) => found = Some(f),
                Err(why) => tracing::warn!("--nvccli: {why}; using nvliblist.conf instead"),
            }
        }
        let mut f = match found {
            Some(f) => f,
            None => from_list(Vendor::Nvidia, &req.config_dir, path_env, read_cache())?,
        };
        nvidia_devices(
            &mut f,
            var("NVIDIA_VISIBLE_DEVICES"),
            var("CUDA_VISIBLE_DEVICES"),
            dev,
        );
        if Path::new(PERSISTENCED_SOCKET).exists() {
            f.files.push(PERSISTENCED_SOCKET.into());
        }
        out.push(f);
    }
    if req.rocm {
        let mut f = from_list(Vendor::Amd, &req.config_dir, path_env, read_cache())?;
        let kfd = Path::new("/dev/kfd");
        if kfd.exists() {
            f.devices.push(kfd.into());
        } else {
            f.warnings.push(
                "no AMD GPU driver found on this host: `/dev/kfd` does not exist (is the amdgpu kernel module loaded?)".into(),
            );
        }
        let dri = Path::new("/dev/dri");
        if dri.is_dir() {
            f.devices.push(dri.into());
        }
        out.push(f);
    }
    Ok(out)
}

/// The administrator's list from the config directory, else the built-in one.
fn read_list(vendor: Vendor, config_dir: &Path) -> Result<(liblist::LibList, String), GpuError> {
    let p = config_dir.join(vendor.list_name());
    match std::fs::read_to_string(&p) {
        Ok(text) => Ok((liblist::parse(&text), p.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
            liblist::parse(vendor.builtin()),
            format!("the built-in {}", vendor.list_name()),
        )),
        Err(source) => Err(GpuError::ReadList { path: p, source }),
    }
}

/// Discovery through a library list: libraries from the loader cache, programs from `PATH`,
/// vendor files that exist.
fn from_list(
    vendor: Vendor,
    config_dir: &Path,
    path_env: &str,
    cache: Result<Vec<ldcache::Entry>, ldcache::CacheError>,
) -> Result<Found, GpuError> {
    let (list, origin) = read_list(vendor, config_dir)?;
    tracing::debug!("{}: using {origin}", vendor.flag());
    let mut warnings = Vec::new();
    let entries = cache.unwrap_or_else(|e| {
        warnings.push(format!(
            "{e}, and `ldconfig -p` gave nothing: no host library is bound"
        ));
        Vec::new()
    });
    let libs = match ElfKind::host() {
        Some(host) => libraries(&list.libraries, &entries, host, ElfKind::of_file),
        None => Vec::new(),
    };
    let programs: Vec<(String, PathBuf)> = list
        .programs
        .iter()
        .filter_map(|p| find_program(p, path_env).map(|path| (p.clone(), path)))
        .collect();
    let files: Vec<PathBuf> = list.files.iter().filter(|f| f.exists()).cloned().collect();
    if vendor == Vendor::Nvidia {
        let driver = libs.iter().any(|l| l.name.starts_with("libcuda.so"));
        if !driver {
            let mut what = vec![format!(
                "no `libcuda.so` in the loader cache `{}`",
                ldcache::CACHE_PATH
            )];
            if programs.is_empty() {
                what.push("no `nvidia-smi` on PATH".into());
            }
            let also = if libs.is_empty() {
                String::new()
            } else {
                format!(
                    "; only {} other librar{} of {origin} will be bound",
                    libs.len(),
                    if libs.len() == 1 { "y" } else { "ies" }
                )
            };
            warnings.push(format!(
                "no NVIDIA driver found on this host ({}){also}",
                what.join(", ")
            ));
        }
    }
    Ok(Found {
        vendor,
        libs,
        programs,
        files,
        devices: Vec::new(),
        env: Vec::new(),
        warnings,
    })
}

/// The cache entries matching the list's name prefixes whose ELF class and machine the host
/// runs: native ones, and 32-bit ones of the host's compatibility mode. One file per name and
/// class, the first the cache lists (the loader's preference).
pub fn libraries(
    prefixes: &[String],
    cache: &[ldcache::Entry],
    host: ElfKind,
    elf_of: impl Fn(&Path) -> Option<ElfKind>,
) -> Vec<Lib> {
    let compat = host.compat32();
    let mut out: Vec<Lib> = Vec::new();
    for e in cache {
        if !prefixes.iter().any(|p| e.name.starts_with(p.as_str())) || e.name.contains('/') {
            continue;
        }
        let Some(kind) = elf_of(&e.path) else {
            continue;
        };
        let bits32 = if kind == host {
            false
        } else if Some(kind) == compat {
            true
        } else {
            continue;
        };
        if out.iter().any(|l| l.name == e.name && l.bits32 == bits32) {
            continue;
        }
        out.push(Lib {
            name: e.name.clone(),
            path: e.path.clone(),
            bits32,
        });
    }
    out
}

/// `execvp`'s search on the host: the first executable regular file named `name` in `PATH`.
pub fn find_program(name: &str, path_env: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    path_env
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Device nodes for `--contain`, chosen by `NVIDIA_VISIBLE_DEVICES`; with the host's whole
/// `/dev` visible the same choice is handed to CUDA as `CUDA_VISIBLE_DEVICES` (unless the host
/// sets that itself).
fn nvidia_devices(f: &mut Found, nvd: Option<&str>, cvd: Option<&str>, dev: DevView) {
    let nodes = devices::list_dev(Path::new("/dev"), "nvidia");
    if nodes.is_empty() {
        f.warnings.push(
            "no `/dev/nvidia*` device nodes on this host (is the nvidia kernel module loaded?)"
                .into(),
        );
        return;
    }
    let sel = Selection::parse(nvd);
    if let Selection::Unresolved(v) = &sel {
        f.warnings.push(format!(
            "NVIDIA_VISIBLE_DEVICES=`{v}` names GPUs by UUID or MIG name, which sifr cannot resolve without the driver; every GPU is visible (use indices, or --nvccli)"
        ));
    }
    let (chosen, missing) = devices::select_nvidia(&nodes, &sel);
    for i in missing {
        f.warnings.push(format!(
            "NVIDIA_VISIBLE_DEVICES names GPU {i}, but `/dev/nvidia{i}` does not exist"
        ));
    }
    if dev == DevView::Host && cvd.is_none() {
        match &sel {
            Selection::Indices(ids) => {
                let list: Vec<String> = ids.iter().map(u32::to_string).collect();
                f.env.push(("CUDA_VISIBLE_DEVICES".into(), list.join(",")));
            }
            Selection::None => f.env.push(("CUDA_VISIBLE_DEVICES".into(), "-1".into())),
            Selection::All | Selection::Unresolved(_) => {}
        }
    }
    f.devices = chosen;
}

/// The plan mounts for what was found: libraries into a fresh session directory at
/// [`LIBS_DIR`]/[`LIBS32_DIR`] (so the image's own content there is hidden, as in Apptainer),
/// one read-only file bind each; programs into [`PROGRAMS_DIR`]; files at their path; device
/// nodes only into a [`DevView::Minimal`] `/dev` (the full `/dev` bind has them otherwise). The
/// first vendor wins a destination both name (`libOpenCL.so.1` with `--nv --rocm`).
pub fn mounts(found: &[Found], dev: DevView) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    // Libraries and programs: read-only, no device nodes.
    let bind_ro = |src: &Path, dst: PathBuf| Mount {
        readonly: true,
        nodev: true,
        ..Mount::host(Tag::Gpu, src, dst)
    };
    for (dir, bits32) in [(LIBS_DIR, false), (LIBS32_DIR, true)] {
        let libs: Vec<&Lib> = found
            .iter()
            .flat_map(|f| &f.libs)
            .filter(|l| l.bits32 == bits32)
            .collect();
        if libs.is_empty() {
            continue;
        }
        out.push(Mount {
            readonly: true,
            ..Mount::scratch(Tag::Gpu, dir)
        });
        for l in libs {
            out.push(bind_ro(&l.path, Path::new(dir).join(&l.name)));
        }
    }
    for f in found {
        for (name, path) in &f.programs {
            out.push(bind_ro(path, Path::new(PROGRAMS_DIR).join(name)));
        }
        for p in &f.files {
            out.push(Mount {
                nodev: true,
                ..Mount::host(Tag::Gpu, p, p)
            });
        }
        if dev == DevView::Minimal {
            for d in &f.devices {
                out.push(Mount::host(Tag::Gpu, d, d));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| seen.insert(m.dst.clone()));
    out
}

/// The mounts of `--containlibs`: each host file read-only into [`LIBS_DIR`] under its own
/// name, with the session directory there; the plan drops an entry whose destination a GPU
/// flag's [`mounts`] already has (the directory, a library of the same name).
pub fn lib_mounts(libs: &[PathBuf]) -> Vec<Mount> {
    if libs.is_empty() {
        return Vec::new();
    }
    let mut out = vec![Mount {
        readonly: true,
        ..Mount::scratch(Tag::Gpu, LIBS_DIR)
    }];
    for lib in libs {
        let Some(name) = lib.file_name() else {
            continue;
        };
        out.push(Mount {
            readonly: true,
            nodev: true,
            ..Mount::host(Tag::Gpu, lib, Path::new(LIBS_DIR).join(name))
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::types::Source;

    const X86_64: ElfKind = ElfKind {
        bits64: true,
        machine: 62,
    };

    fn entry(name: &str, path: &str) -> ldcache::Entry {
        ldcache::Entry {
            name: name.into(),
            path: path.into(),
        }
    }

    #[test]
    fn libraries_match_prefixes_and_keep_host_and_compat_classes() {
        let cache = [
            entry("libcuda.so.1", "/l64/libcuda.so.1"),
            entry("libcuda.so.1", "/l32/libcuda.so.1"),
            entry("libcuda.so.1", "/hwcaps/libcuda.so.1"),
            entry("libcuda.so", "/l64/libcuda.so"),
            entry("libcudart.so.12", "/l64/libcudart.so.12"),
            entry("libnvidia-ml.so.1", "/arm/libnvidia-ml.so.1"),
            entry("libnvidia-ml.so.1", "/script/libnvidia-ml.so.1"),
        ];
        let elf = |p: &Path| {
            let s = p.to_str().unwrap();
            if s.starts_with("/l32") {
                Some(ElfKind {
                    bits64: false,
                    machine: 3,
                })
            } else if s.starts_with("/arm") {
                Some(ElfKind {
                    bits64: true,
                    machine: 183,
                })
            } else if s.starts_with("/script") {
                None
            } else {
                Some(X86_64)
            }
        };
        let got = libraries(
            &["libcuda.so".into(), "libnvidia-ml.so".into()],
            &cache,
            X86_64,
            elf,
        );
        let names: Vec<(&str, &str, bool)> = got
            .iter()
            .map(|l| (l.name.as_str(), l.path.to_str().unwrap(), l.bits32))
            .collect();
        assert_eq!(
            names,
            vec![
                ("libcuda.so.1", "/l64/libcuda.so.1", false),
                ("libcuda.so.1", "/l32/libcuda.so.1", true),
                ("libcuda.so", "/l64/libcuda.so", false),
            ]
        );
    }

    fn found() -> Found {
        Found {
            vendor: Vendor::Nvidia,
            libs: vec![
                Lib {
                    name: "libcuda.so.1".into(),
                    path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
                    bits32: false,
                },
                Lib {
                    name: "libcuda.so.1".into(),
                    path: "/usr/lib/i386-linux-gnu/libcuda.so.1".into(),
                    bits32: true,
                },
            ],
            programs: vec![("nvidia-smi".into(), "/usr/bin/nvidia-smi".into())],
            files: vec![PERSISTENCED_SOCKET.into()],
            devices: vec!["/dev/nvidia0".into(), "/dev/nvidiactl".into()],
            env: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn render(ms: &[Mount]) -> Vec<String> {
        ms.iter()
            .map(|m| {
                let src = match &m.source {
                    Source::Host(p) => p.display().to_string(),
                    other => format!("{other:?}"),
                };
                format!(
                    "{src} -> {}{}{}",
                    m.dst.display(),
                    if m.readonly { " ro" } else { "" },
                    if m.nodev { "" } else { " dev" }
                )
            })
            .collect()
    }

    #[test]
    fn mounts_put_libraries_programs_files_and_contained_devices() {
        assert_eq!(
            render(&mounts(&[found()], DevView::Minimal)),
            vec![
                "Scratch -> /.singularity.d/libs ro",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1 -> /.singularity.d/libs/libcuda.so.1 ro",
                "Scratch -> /.singularity.d/libs32 ro",
                "/usr/lib/i386-linux-gnu/libcuda.so.1 -> /.singularity.d/libs32/libcuda.so.1 ro",
                "/usr/bin/nvidia-smi -> /usr/bin/nvidia-smi ro",
                "/var/run/nvidia-persistenced/socket -> /var/run/nvidia-persistenced/socket",
                "/dev/nvidia0 -> /dev/nvidia0 dev",
                "/dev/nvidiactl -> /dev/nvidiactl dev",
            ]
        );
        let open = render(&mounts(&[found()], DevView::Host));
        assert!(!open.iter().any(|m| m.contains("/dev/")), "{open:?}");
    }

    #[test]
    fn nothing_found_adds_no_mount_and_two_vendors_share_a_destination_once() {
        let empty = Found {
            libs: Vec::new(),
            programs: Vec::new(),
            files: Vec::new(),
            devices: Vec::new(),
            ..found()
        };
        assert!(mounts(&[empty], DevView::Minimal).is_empty());
        let amd = Found {
            vendor: Vendor::Amd,
            ..found()
        };
        let both = mounts(&[found(), amd], DevView::Minimal);
        let mut dsts: Vec<_> = both.iter().map(|m| &m.dst).collect();
        let n = dsts.len();
        dsts.dedup();
        assert_eq!(dsts.len(), n);
    }
}
