//! Per-file facts: [`FileFacts`] for one ELF file, built from its bytes. Combines the ELF
//! reader ([`crate::elf`]) and the code analysers ([`crate::x86`], [`crate::aarch64`]). It
//! reads at most the one file it is given and never follows what the file names
//! (`DT_NEEDED` libraries are recorded, not opened).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::elf::{self, Arch, FileKind};
use crate::error::Error;
use crate::feature::{Feature, FeatureSet, Level};
use crate::{aarch64, x86};

/// Libraries known to choose their code at run time through state the instruction analysis
/// cannot follow (see the limits in [`crate::x86`]): their decoded requirements count as
/// "uses when available". Matched on the soname, else the file name, up to the version.
/// Every entry is a library a stock Debian or Ubuntu image holds and that the analysis would
/// otherwise report above the baseline, so every program linking it would be flagged on
/// older nodes. Their ISA note, when above baseline, still counts.
const SELF_DISPATCHING: &[(&str, &str)] = &[
    (
        "libzstd.so",
        "BMI2 decoders chosen by a flag in the decompression context",
    ),
    (
        "libgcrypt.so",
        "AVX/AVX2 cipher and hash code chosen from `hwfeatures` tables",
    ),
    (
        "libnettle.so",
        "fat build: AES/SHA/PCLMUL code chosen by a constructor",
    ),
    ("libhogweed.so", "fat build, like libnettle"),
    (
        "libsodium.so",
        "AVX2/AVX-512 implementations chosen at `sodium_init`",
    ),
    // pip's numpy and scipy wheels: the most common way HPC users get numpy into an image.
    (
        "libopenblas*",
        "DYNAMIC_ARCH build: one kernel set per CPU family, picked from CPUID at load",
    ),
    (
        "libscipy_openblas*",
        "the OpenBLAS of numpy/scipy wheels, a DYNAMIC_ARCH build (hash-suffixed name)",
    ),
    (
        "_multiarray_umath",
        "numpy's core: AVX/AVX2/AVX-512 loops chosen through its own CPU feature table",
    ),
];

fn dispatches_itself(path: &str, soname: Option<&str>) -> bool {
    let name = soname.unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path));
    // A trailing `*` matches any suffix (wheels append a hash to the library's name).
    SELF_DISPATCHING
        .iter()
        .any(|(prefix, _)| match prefix.strip_suffix('*') {
            Some(stem) => name.starts_with(stem),
            None => name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.')),
        })
}

/// What a file needs from the CPU: a level and the features behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// For x86 files: the highest of the ISA note's level and the level implied by the
    /// required features (`x86-64-v1` when nothing is needed). `None` for other architectures.
    pub level: Option<Level>,
    /// Required features: those used by code that always runs (see [`crate::x86`]) plus the
    /// features of the ISA note's level. Sorted, stable.
    pub features: Vec<Feature>,
}

/// Where a required feature is first used, so a warning can point at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The feature.
    pub feature: Feature,
    /// Virtual address of the first instruction found using it, as `0x...`.
    pub address: String,
    /// How that code is reached: function starts from a root (entry point, export,
    /// constructor) to the function containing `address` (the last few when longer).
    pub reached_via: Vec<String>,
}

/// Facts about one ELF file. This is the per-file part of the JSON stored in a SIF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    /// Path relative to the scanned root, `/`-separated (lossy UTF-8), or the name the
    /// caller gave.
    pub path: String,
    /// Architecture (Go name).
    pub arch: Arch,
    /// Executable, shared library, ...
    pub kind: FileKind,
    /// What the file requires.
    pub needs: Needs,
    /// Features used only by code that is selected at run time (ifunc variants, code behind
    /// CPUID checks, unreachable code). Never a reason to warn.
    pub uses_when_available: Vec<Feature>,
    /// Whether the file carries `GNU_PROPERTY_X86_ISA_1_NEEDED`.
    pub has_isa_note: bool,
    /// The level in that note. glibc's loader refuses to load the file on a lower CPU, so it
    /// is reliable when above v1; but v1 (the default from crt files) proves nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isa_note_level: Option<Level>,
    /// `DT_NEEDED` entries, in file order.
    pub needed_libs: Vec<String>,
    /// `DT_SONAME`, used to resolve other files' `needed_libs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soname: Option<String>,
    /// `PT_INTERP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// First use of each required feature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Instructions decoded (0 when the architecture is not analysed).
    pub instructions: u64,
}

impl FileFacts {
    /// Examines an ELF file held in memory; `path` is recorded as given.
    pub fn from_bytes(path: &str, data: &[u8]) -> Result<FileFacts, Error> {
        if !elf::is_elf(data) {
            return Err(Error::NotElf { path: path.into() });
        }
        let info = elf::parse(data).map_err(|e| Error::Elf {
            path: path.into(),
            reason: e,
        })?;
        let note_level = elf::note_level(info.isa_needed_bits);
        let analysable = matches!(info.kind, FileKind::Executable | FileKind::SharedLibrary);
        let (needs, when, evidence, instructions) = match info.arch {
            Arch::Amd64 | Arch::I386 => {
                let mut a = if analysable {
                    x86::analyse(&info)
                } else {
                    x86::Analysis::default()
                };
                if dispatches_itself(path, info.soname.as_deref()) {
                    a.when_available = a.when_available.union(a.required);
                    a.required = FeatureSet::EMPTY;
                    a.sites.clear();
                }
                let note_features = note_level.map(FeatureSet::of_level).unwrap_or_default();
                let features = a.required.union(note_features).with_implied();
                let level = features.level().max(note_level.unwrap_or(Level::V1));
                let evidence = a
                    .sites
                    .iter()
                    .map(|(f, addr, chain)| Evidence {
                        feature: *f,
                        address: format!("{addr:#x}"),
                        reached_via: chain.iter().map(|a| format!("{a:#x}")).collect(),
                    })
                    .collect();
                let needs = Needs {
                    level: Some(level),
                    features: features.to_vec(),
                };
                (
                    needs,
                    a.when_available.with_implied().difference(features),
                    evidence,
                    a.instructions,
                )
            }
            arch => {
                let mut when = FeatureSet::EMPTY;
                if arch == Arch::Arm64 && analysable && aarch64::uses_sve(&info) {
                    when.insert(Feature::Sve);
                }
                let needs = Needs {
                    level: None,
                    features: Vec::new(),
                };
                (needs, when, Vec::new(), 0)
            }
        };
        Ok(FileFacts {
            path: path.to_owned(),
            arch: info.arch,
            kind: info.kind,
            needs,
            uses_when_available: when.to_vec(),
            has_isa_note: info.isa_needed_bits.is_some(),
            isa_note_level: note_level,
            needed_libs: info.needed,
            soname: info.soname,
            interpreter: info.interpreter,
            evidence,
            instructions,
        })
    }

    /// Reads and examines one file; the recorded path is `path` as given.
    pub fn from_path(path: &Path) -> Result<FileFacts, Error> {
        let data = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        FileFacts::from_bytes(&path.to_string_lossy(), &data).map_err(|e| match e {
            Error::Elf { reason, .. } => Error::Elf {
                path: path.to_owned(),
                reason,
            },
            Error::NotElf { .. } => Error::NotElf {
                path: path.to_owned(),
            },
            other => other,
        })
    }

    /// The required features as a set.
    pub fn required(&self) -> FeatureSet {
        self.needs.features.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::dispatches_itself;

    #[test]
    fn self_dispatching_libraries_match_by_soname_up_to_the_version() {
        assert!(dispatches_itself(
            "usr/lib/x/libzstd.so.1.5.4",
            Some("libzstd.so.1")
        ));
        assert!(dispatches_itself("opt/libgcrypt.so.20.4.1", None));
        assert!(dispatches_itself("opt/libsodium.so", None));
        assert!(!dispatches_itself(
            "opt/libzstd.so.1",
            Some("libzstdmt.so.1")
        ));
        assert!(!dispatches_itself("usr/bin/zstd", None));
        assert!(dispatches_itself(
            "opt/venv/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so",
            None
        ));
        assert!(dispatches_itself(
            "x/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
            None
        ));
        assert!(!dispatches_itself(
            "x/numpy/_core/_multiarray_tests.cpython-311-x86_64-linux-gnu.so",
            None
        ));
    }
}
