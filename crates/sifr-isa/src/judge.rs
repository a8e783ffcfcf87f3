//! The launch-time judgement: will this program, with these libraries, run on this host?
//! Pure function of facts; no I/O, so it may run anywhere on the launch path.
//!
//! Only the program and the libraries it loads matter: another file in the image needing
//! more than the host offers is not a finding for this program. Files of another
//! architecture are not judged here (that is an arch mismatch, reported elsewhere).
//! [`judge_image`] is for launches where no single program can be named (a runscript, a
//! shell): every executable and library of the image counts.

use serde::{Deserialize, Serialize};

use crate::elf::FileKind;
use crate::facts::FileFacts;
use crate::feature::{Feature, FeatureSet, Level};
use crate::host::HostFacts;

/// One file that needs what the host lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offender {
    /// The file's path in the image.
    pub path: String,
    /// Required features the host is known to lack.
    pub missing: Vec<Feature>,
    /// The ISA note's level when it is above the host's: glibc's loader will refuse the
    /// file ("CPU ISA level is lower than required") instead of crashing later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by_loader: Option<Level>,
}

/// The outcome of [`judge`]. Empty means no finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Union of the features missing on the host, sorted.
    pub missing_features: Vec<Feature>,
    /// The files responsible, program first, then libraries in the order given.
    pub offending_files: Vec<Offender>,
}

impl Verdict {
    /// True when the program should run on the host as far as its ISA is concerned.
    pub fn is_ok(&self) -> bool {
        self.offending_files.is_empty()
    }
}

/// Judges `program` and the `libs` it loads (for example from
/// [`crate::ImageFacts::libraries_for`]) against `host`.
pub fn judge(program: &FileFacts, libs: &[&FileFacts], host: &HostFacts) -> Verdict {
    let absent = host.absent();
    let mut all = FeatureSet::EMPTY;
    let mut offending_files = Vec::new();
    for f in std::iter::once(program).chain(libs.iter().copied()) {
        if f.arch != host.arch {
            continue;
        }
        let missing: FeatureSet = f
            .required()
            .iter()
            .filter(|x| absent.contains(*x))
            .collect();
        let refused_by_loader = match (f.isa_note_level, host.level) {
            (Some(n), Some(h)) if n > h => Some(n),
            _ => None,
        };
        if !missing.is_empty() || refused_by_loader.is_some() {
            all = all.union(missing);
            offending_files.push(Offender {
                path: f.path.clone(),
                missing: missing.to_vec(),
                refused_by_loader,
            });
        }
    }
    Verdict {
        missing_features: all.to_vec(),
        offending_files,
    }
}

/// Judges every executable and shared library of `image` against `host`, for launches where
/// no single program can be named. Libraries under `glibc-hwcaps/` are left out: the loader
/// picks them only on CPUs of their level. Offenders are sorted by path.
pub fn judge_image(image: &crate::ImageFacts, host: &HostFacts) -> Verdict {
    let mut out = Verdict::default();
    let mut all = FeatureSet::EMPTY;
    for f in &image.files {
        if !matches!(f.kind, FileKind::Executable | FileKind::SharedLibrary)
            || f.path.contains("glibc-hwcaps/")
        {
            continue;
        }
        let v = judge(f, &[], host);
        all = all.union(v.missing_features.iter().copied().collect());
        out.offending_files.extend(v.offending_files);
    }
    out.missing_features = all.to_vec();
    out
}
