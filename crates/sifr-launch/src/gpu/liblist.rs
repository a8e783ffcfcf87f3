//! `nvliblist.conf` / `rocmliblist.conf`: the table of what a GPU flag brings from the host,
//! parsed into programs, library name prefixes and plain files (Apptainer's format and its
//! classification rules). The built-in tables are the files under `crates/sifr-launch/etc`.
//!
//! Pure text processing: reading the administrator's copy is the caller's job
//! ([`super::discover`]); nothing here looks at the host.

use std::path::PathBuf;

/// The built-in `nvliblist.conf`.
pub const NVIDIA_BUILTIN: &str = include_str!("../../etc/nvliblist.conf");
/// The built-in `rocmliblist.conf`.
pub const ROCM_BUILTIN: &str = include_str!("../../etc/rocmliblist.conf");

/// One list, classified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibList {
    /// Programs looked up on the host `PATH`, bound into `/usr/bin`.
    pub programs: Vec<String>,
    /// Library name prefixes matched against the loader cache (`libcuda.so` matches
    /// `libcuda.so.1` and `libcuda.so`).
    pub libraries: Vec<String>,
    /// Absolute paths bound at the same path when they exist (ICD and vendor JSON files).
    pub files: Vec<PathBuf>,
}

/// Classify the lines of a list: `#` comments and blank lines are skipped; an entry containing
/// `.so` is a library (an absolute one is reduced to its file name, which is what the cache is
/// searched by); another absolute path is a file; anything else is a program (a `/` inside a
/// relative name cannot be a program name on `PATH` and is skipped).
pub fn parse(text: &str) -> LibList {
    let mut out = LibList::default();
    for line in text.lines() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        if entry.contains(".so") {
            let name = entry.rsplit('/').next().unwrap_or(entry);
            if !name.is_empty() && !out.libraries.iter().any(|l| l == name) {
                out.libraries.push(name.to_string());
            }
        } else if entry.starts_with('/') {
            out.files.push(PathBuf::from(entry));
        } else if !entry.contains('/') && !out.programs.iter().any(|p| p == entry) {
            out.programs.push(entry.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_as_apptainer_does() {
        let l = parse(
            "# comment\n\nnvidia-smi\nlibcuda.so   # trailing comment\n/usr/lib/libfoo.so.1\n\
             /usr/share/vulkan/icd.d/nvidia_icd.json\nbad/name\nlibcuda.so\n",
        );
        assert_eq!(l.programs, vec!["nvidia-smi"]);
        assert_eq!(l.libraries, vec!["libcuda.so", "libfoo.so.1"]);
        assert_eq!(
            l.files,
            vec![PathBuf::from("/usr/share/vulkan/icd.d/nvidia_icd.json")]
        );
    }

    #[test]
    fn builtin_lists_hold_the_driver_pieces_the_issue_names() {
        let nv = parse(NVIDIA_BUILTIN);
        for p in [
            "nvidia-smi",
            "nvidia-debugdump",
            "nvidia-persistenced",
            "nvidia-cuda-mps-control",
            "nvidia-cuda-mps-server",
        ] {
            assert!(nv.programs.iter().any(|x| x == p), "{p}");
        }
        for l in [
            "libcuda.so",
            "libnvidia-ml.so",
            "libEGL_nvidia.so",
            "libGLX_nvidia.so",
        ] {
            assert!(nv.libraries.iter().any(|x| x == l), "{l}");
        }
        assert!(
            nv.files
                .contains(&PathBuf::from("/usr/share/vulkan/icd.d/nvidia_icd.json"))
        );
        // The CUDA runtime belongs to the image, never to the driver list.
        assert!(!nv.libraries.iter().any(|x| x.starts_with("libcudart")));
        let rocm = parse(ROCM_BUILTIN);
        assert_eq!(rocm.programs, vec!["rocm-smi", "rocminfo"]);
        assert!(rocm.libraries.iter().any(|x| x == "libdrm_amdgpu.so"));
        assert!(!rocm.libraries.iter().any(|x| x.starts_with("libamdhip")));
    }
}
