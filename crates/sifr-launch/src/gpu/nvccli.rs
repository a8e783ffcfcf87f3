//! `--nvccli`: ask NVIDIA's own `nvidia-container-cli list` which driver files this host has,
//! instead of matching `nvliblist.conf` against the loader cache.
//!
//! Apptainer runs `nvidia-container-cli configure`, which writes the libraries into the
//! container's root and so needs a writable `/usr/bin` (`--writable-tmpfs`, and without fakeroot
//! often a `--fix-perms` sandbox). sifr only asks for the list and binds the files the same way
//! as `--nv`, so read-only SIF images work unchanged; what the tool knows (the exact driver file
//! set, its version's libraries) is kept. Runs the host tool before any namespace change;
//! [`parse`] is pure.

use std::path::{Path, PathBuf};

use super::ldcache::{ElfKind, Entry};
use super::{Found, Lib, Vendor};

/// The tool's name on `PATH`.
pub const TOOL: &str = "nvidia-container-cli";

/// Why the tool's list could not be used (the caller falls back to `nvliblist.conf`).
#[derive(Debug, thiserror::Error)]
pub enum NvccliError {
    #[error("`{TOOL}` is not installed (not found on PATH)")]
    Missing,
    #[error("cannot run `{}`", path.display())]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{} list` failed: {message}", path.display())]
    Failed { path: PathBuf, message: String },
}

/// Run `nvidia-container-cli list --binaries --libraries --ipcs` and classify its output.
pub fn list(path_env: &str, cache: &[Entry]) -> Result<Found, NvccliError> {
    let path = super::find_program(TOOL, path_env).ok_or(NvccliError::Missing)?;
    let out = std::process::Command::new(&path)
        .args(["list", "--binaries", "--libraries", "--ipcs"])
        .output()
        .map_err(|source| NvccliError::Run {
            path: path.clone(),
            source,
        })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NvccliError::Failed { path, message });
    }
    let host = ElfKind::host();
    Ok(parse(
        &String::from_utf8_lossy(&out.stdout),
        cache,
        |p| host.and_then(|h| lib_class(p, h)),
        canonical,
    ))
}

fn canonical(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

/// `Some(bits32)` for a library the host runs natively (`false`) or in 32-bit mode (`true`).
fn lib_class(p: &Path, host: ElfKind) -> Option<bool> {
    let k = ElfKind::of_file(p)?;
    if k == host {
        Some(false)
    } else if Some(k) == host.compat32() {
        Some(true)
    } else {
        None
    }
}

/// Classify the tool's lines (one absolute path each): libraries (`.so` in the name) are bound
/// under their own name and under every loader-cache name that resolves to the same file (the
/// tool prints `libcuda.so.535.54.03`, programs load `libcuda.so.1`); sockets under `/run` or
/// `/var/run` are files; anything else is a program.
pub fn parse(
    text: &str,
    cache: &[Entry],
    class: impl Fn(&Path) -> Option<bool>,
    canonical: impl Fn(&Path) -> Option<PathBuf>,
) -> Found {
    let mut f = Found {
        vendor: Vendor::Nvidia,
        libs: Vec::new(),
        programs: Vec::new(),
        files: Vec::new(),
        devices: Vec::new(),
        env: Vec::new(),
        warnings: Vec::new(),
    };
    for line in text.lines().map(str::trim).filter(|l| l.starts_with('/')) {
        let p = Path::new(line);
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.contains(".so") {
            let Some(bits32) = class(p) else { continue };
            let real = canonical(p);
            let mut names = vec![name.to_string()];
            // Only names of the same library can be links to it (and this keeps the number of
            // paths resolved small: the cache has hundreds of entries).
            let stem = name.find(".so").map_or(name, |i| &name[..i + 3]);
            for e in cache.iter().filter(|e| e.name.starts_with(stem)) {
                if real.is_some() && canonical(&e.path) == real && !names.contains(&e.name) {
                    names.push(e.name.clone());
                }
            }
            for n in names {
                f.libs.push(Lib {
                    name: n,
                    path: p.into(),
                    bits32,
                });
            }
        } else if line.starts_with("/run/") || line.starts_with("/var/run/") {
            f.files.push(p.into());
        } else if !line.starts_with("/dev/") && !line.starts_with("/lib/firmware/") {
            f.programs.push((name.to_string(), p.into()));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_split_and_libraries_get_their_cache_names() {
        let text = "/usr/bin/nvidia-smi\n/usr/bin/nvidia-persistenced\n\
            /usr/lib/x86_64-linux-gnu/libcuda.so.535.54.03\n\
            /usr/lib/i386-linux-gnu/libcuda.so.535.54.03\n\
            /run/nvidia-persistenced/socket\n/lib/firmware/nvidia/535.54.03/gsp_ga10x.bin\n";
        let cache = vec![
            Entry {
                name: "libcuda.so.1".into(),
                path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
            },
            Entry {
                name: "libcuda.so.1".into(),
                path: "/usr/lib/i386-linux-gnu/libcuda.so.1".into(),
            },
        ];
        let class = |p: &Path| Some(p.to_str().unwrap().contains("i386"));
        // The symlinks resolve to the versioned files next to them.
        let canon = |p: &Path| {
            Some(PathBuf::from(
                p.to_str().unwrap().replace(".so.1", ".so.535.54.03"),
            ))
        };
        let f = parse(text, &cache, class, canon);
        assert_eq!(
            f.programs,
            vec![
                (
                    "nvidia-smi".to_string(),
                    PathBuf::from("/usr/bin/nvidia-smi")
                ),
                (
                    "nvidia-persistenced".to_string(),
                    PathBuf::from("/usr/bin/nvidia-persistenced")
                )
            ]
        );
        let libs: Vec<(&str, bool)> = f.libs.iter().map(|l| (l.name.as_str(), l.bits32)).collect();
        assert_eq!(
            libs,
            vec![
                ("libcuda.so.535.54.03", false),
                ("libcuda.so.1", false),
                ("libcuda.so.535.54.03", true),
                ("libcuda.so.1", true)
            ]
        );
        assert_eq!(
            f.files,
            vec![PathBuf::from("/run/nvidia-persistenced/socket")]
        );
    }
}
