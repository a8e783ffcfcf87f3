//! Host facts: the CPU features of the machine this process runs on, and its x86-64 level.
//!
//! Uses std's `is_x86_feature_detected!` (CPUID plus the OS's XSAVE state, so AVX counts only
//! when the kernel enables it). Features std cannot detect are reported as unknown and are
//! never counted as missing: a warning must not come from our own blind spot. Starts no
//! thread and touches no file, so it is safe on the launch path.

use serde::{Deserialize, Serialize};

use crate::elf::Arch;
use crate::feature::{Feature, FeatureSet, Level};

/// What a CPU offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The architecture (Go name).
    pub arch: Arch,
    /// The x86-64 level (`None` on other architectures).
    pub level: Option<Level>,
    /// Features present.
    pub features: Vec<Feature>,
    /// Features whose presence could not be determined (never reported missing).
    pub unknown: Vec<Feature>,
}

impl HostFacts {
    /// The CPU this process runs on.
    pub fn detect() -> HostFacts {
        let (present, known) = detect_x86();
        HostFacts::from_features(Arch::host(), present, known)
    }

    /// A host described by hand (another node, a test): `present` features out of `known`.
    pub fn from_features(arch: Arch, present: FeatureSet, known: FeatureSet) -> HostFacts {
        let x86 = matches!(arch, Arch::Amd64 | Arch::I386);
        let present_known = FeatureSet::EMPTY.union(present);
        let level = x86.then(|| {
            Level::ALL
                .iter()
                .copied()
                .take_while(|l| FeatureSet::of_level(*l).is_subset(present_known))
                .last()
                .unwrap_or(Level::V1)
        });
        let all: FeatureSet = Feature::ALL.iter().copied().collect();
        HostFacts {
            arch,
            level,
            features: present.to_vec(),
            unknown: all.difference(known).difference(present).to_vec(),
        }
    }

    /// Features present, as a set.
    pub fn present(&self) -> FeatureSet {
        self.features.iter().copied().collect()
    }

    /// Features known to be absent.
    pub fn absent(&self) -> FeatureSet {
        let all: FeatureSet = Feature::ALL.iter().copied().collect();
        let unknown: FeatureSet = self.unknown.iter().copied().collect();
        all.difference(self.present()).difference(unknown)
    }

    /// Whether the CPU has `f` (false when unknown).
    pub fn has(&self, f: Feature) -> bool {
        self.present().contains(f)
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detect_x86() -> (FeatureSet, FeatureSet) {
    use Feature as F;
    let mut present = FeatureSet::EMPTY;
    let mut known = FeatureSet::EMPTY;
    macro_rules! probe {
        ($($f:ident => $name:tt),* $(,)?) => {$(
            known.insert(F::$f);
            if std::arch::is_x86_feature_detected!($name) {
                present.insert(F::$f);
            }
        )*};
    }
    probe!(
        Sse3 => "sse3", Ssse3 => "ssse3", Sse4_1 => "sse4.1", Sse4_2 => "sse4.2",
        Popcnt => "popcnt", Cmpxchg16b => "cmpxchg16b",
        Avx => "avx", Avx2 => "avx2", Bmi1 => "bmi1", Bmi2 => "bmi2", F16c => "f16c",
        Fma => "fma", Lzcnt => "lzcnt", Movbe => "movbe",
        Avx512f => "avx512f", Avx512bw => "avx512bw", Avx512cd => "avx512cd",
        Avx512dq => "avx512dq", Avx512vl => "avx512vl",
        Avx512Ifma => "avx512ifma", Avx512Vbmi => "avx512vbmi", Avx512Vbmi2 => "avx512vbmi2",
        Avx512Vnni => "avx512vnni", Avx512Bitalg => "avx512bitalg",
        Avx512Vpopcntdq => "avx512vpopcntdq", Avx512Bf16 => "avx512bf16",
        Avx512Fp16 => "avx512fp16", Avx512Vp2intersect => "avx512vp2intersect",
        Aes => "aes", Pclmulqdq => "pclmulqdq", Sha => "sha", Gfni => "gfni", Vaes => "vaes",
        Vpclmulqdq => "vpclmulqdq", Adx => "adx", Sse4a => "sse4a", Tbm => "tbm",
        Rtm => "rtm", Xsave => "xsave", Rdrand => "rdrand", Rdseed => "rdseed",
    );
    (present, known)
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn detect_x86() -> (FeatureSet, FeatureSet) {
    (FeatureSet::EMPTY, FeatureSet::EMPTY)
}
