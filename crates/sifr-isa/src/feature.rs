//! CPU features and x86-64 micro-architecture levels, as plain data.
//!
//! This module names the CPUID features that matter for "will this program run on that CPU",
//! maps them to the psABI levels (x86-64-v1 .. v4), and classifies every feature the decoder
//! (iced-x86) can report into one of three classes (see [`Class`]). It does no I/O and knows
//! nothing of ELF files.
//!
//! The classification is the first half of the requires / uses-when-available heuristic:
//!
//! * **compatible** features are ignored: the x86-64 baseline (SSE2, CMOV, CX8, ...) and
//!   instructions that old CPUs execute as a no-op or as an older instruction: `endbr64`
//!   (CET-IBT), BND and `notrack` prefixes (MPX), `xacquire`/`xrelease` (HLE), `pause`,
//!   multi-byte NOPs, prefetch hints, and `tzcnt` (`rep bsf`, which GCC emits for
//!   `__builtin_ctz` at generic tuning; it runs as `bsf` on pre-BMI CPUs). Counting these
//!   would flag every Debian binary.
//! * **compiler** features are those a compiler emits on its own from `-march` / target
//!   attributes: SSE3 .. SSE4.2, POPCNT, AVX*, FMA, BMI, AVX-512*, AES, SHA, GFNI, AMX, ...
//!   Only these can make a file *require* something.
//! * **runtime** features (RTM, XSAVE*, RDRAND, RDSEED, RDTSCP, FSGSBASE, CET-SS, ...) are never
//!   emitted from `-march`; code using them comes from intrinsics or assembly that in practice
//!   checks CPUID first (glibc's lock elision, `xgetbv` in CPU probes). They are reported only
//!   as "uses when available", never as a requirement.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An x86-64 micro-architecture level from the x86-64 psABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// The original x86-64 baseline (SSE2); Debian and most distributions build for this.
    #[serde(rename = "x86-64-v1")]
    V1,
    /// + SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, CMPXCHG16B, LAHF/SAHF (Nehalem, 2008).
    #[serde(rename = "x86-64-v2")]
    V2,
    /// + AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE, OSXSAVE (Haswell, 2013).
    #[serde(rename = "x86-64-v3")]
    V3,
    /// + AVX512F, AVX512BW, AVX512CD, AVX512DQ, AVX512VL (Skylake-X, 2017).
    #[serde(rename = "x86-64-v4")]
    V4,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 4] = [Level::V1, Level::V2, Level::V3, Level::V4];

    /// The psABI name, `x86-64-v2` and so on (`x86-64-v1` is also called "baseline").
    pub fn name(self) -> &'static str {
        match self {
            Level::V1 => "x86-64-v1",
            Level::V2 => "x86-64-v2",
            Level::V3 => "x86-64-v3",
            Level::V4 => "x86-64-v4",
        }
    }

    /// The features this level adds over the previous one (empty for v1, whose features are
    /// not tracked because every x86-64 CPU has them).
    pub fn added_features(self) -> &'static [Feature] {
        use Feature::*;
        match self {
            Level::V1 => &[],
            Level::V2 => &[Sse3, Ssse3, Sse4_1, Sse4_2, Popcnt, Cmpxchg16b],
            Level::V3 => &[Avx, Avx2, Bmi1, Bmi2, F16c, Fma, Lzcnt, Movbe],
            Level::V4 => &[Avx512f, Avx512bw, Avx512cd, Avx512dq, Avx512vl],
        }
    }

    /// The level with exactly these `GNU_PROPERTY_X86_ISA_1_*` bits' highest member.
    pub(crate) fn from_isa_note_bits(bits: u32) -> Option<Level> {
        // Bit 0 baseline, 1 v2, 2 v3, 3 v4 (binutils include/elf/common.h).
        Level::ALL
            .iter()
            .rev()
            .zip([8u32, 4, 2, 1])
            .find(|(_, bit)| bits & bit != 0)
            .map(|(l, _)| *l)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! features {
    ($( $(#[$doc:meta])* $var:ident = $name:literal, $class:ident, $level:expr; )*) => {
        /// A CPUID feature that can decide whether a program runs on a CPU.
        ///
        /// The JSON form is the upper-case name used by CPUID documentation and by iced-x86
        /// (`AVX512F`, `SSE4_2`); it is stable.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum Feature {
            $( $(#[$doc])* #[serde(rename = $name)] $var, )*
        }

        impl Feature {
            /// Every feature, in declaration (and bit) order.
            pub const ALL: &'static [Feature] = &[$(Feature::$var),*];

            /// The stable upper-case name.
            pub fn name(self) -> &'static str {
                match self { $(Feature::$var => $name,)* }
            }

            /// The x86-64 level that includes this feature, if any.
            pub fn level(self) -> Option<Level> {
                match self { $(Feature::$var => $level,)* }
            }

            /// Whether a compiler may emit this feature on its own (see the module docs).
            pub fn is_runtime_only(self) -> bool {
                match self { $(Feature::$var => FeatureClass::$class == FeatureClass::Runtime,)* }
            }
        }
    };
}

#[derive(PartialEq, Eq)]
enum FeatureClass {
    Compiler,
    Runtime,
}

features! {
    Sse3 = "SSE3", Compiler, Some(Level::V2);
    Ssse3 = "SSSE3", Compiler, Some(Level::V2);
    Sse4_1 = "SSE4_1", Compiler, Some(Level::V2);
    Sse4_2 = "SSE4_2", Compiler, Some(Level::V2);
    Popcnt = "POPCNT", Compiler, Some(Level::V2);
    Cmpxchg16b = "CMPXCHG16B", Compiler, Some(Level::V2);
    Avx = "AVX", Compiler, Some(Level::V3);
    Avx2 = "AVX2", Compiler, Some(Level::V3);
    Bmi1 = "BMI1", Compiler, Some(Level::V3);
    Bmi2 = "BMI2", Compiler, Some(Level::V3);
    F16c = "F16C", Compiler, Some(Level::V3);
    Fma = "FMA", Compiler, Some(Level::V3);
    Lzcnt = "LZCNT", Compiler, Some(Level::V3);
    Movbe = "MOVBE", Compiler, Some(Level::V3);
    Avx512f = "AVX512F", Compiler, Some(Level::V4);
    Avx512bw = "AVX512BW", Compiler, Some(Level::V4);
    Avx512cd = "AVX512CD", Compiler, Some(Level::V4);
    Avx512dq = "AVX512DQ", Compiler, Some(Level::V4);
    Avx512vl = "AVX512VL", Compiler, Some(Level::V4);
    Avx512Ifma = "AVX512_IFMA", Compiler, None;
    Avx512Vbmi = "AVX512_VBMI", Compiler, None;
    Avx512Vbmi2 = "AVX512_VBMI2", Compiler, None;
    Avx512Vnni = "AVX512_VNNI", Compiler, None;
    Avx512Bitalg = "AVX512_BITALG", Compiler, None;
    Avx512Vpopcntdq = "AVX512_VPOPCNTDQ", Compiler, None;
    Avx512Bf16 = "AVX512_BF16", Compiler, None;
    Avx512Fp16 = "AVX512_FP16", Compiler, None;
    Avx512Vp2intersect = "AVX512_VP2INTERSECT", Compiler, None;
    /// Xeon Phi only (with 4VNNIW, ER, PF).
    Avx512_4fmaps = "AVX512_4FMAPS", Compiler, None;
    Avx512_4vnniw = "AVX512_4VNNIW", Compiler, None;
    Avx512er = "AVX512ER", Compiler, None;
    Avx512pf = "AVX512PF", Compiler, None;
    AvxVnni = "AVX_VNNI", Compiler, None;
    AvxIfma = "AVX_IFMA", Compiler, None;
    AvxNeConvert = "AVX_NE_CONVERT", Compiler, None;
    AvxVnniInt8 = "AVX_VNNI_INT8", Compiler, None;
    AvxVnniInt16 = "AVX_VNNI_INT16", Compiler, None;
    AmxTile = "AMX_TILE", Compiler, None;
    AmxInt8 = "AMX_INT8", Compiler, None;
    AmxBf16 = "AMX_BF16", Compiler, None;
    AmxFp16 = "AMX_FP16", Compiler, None;
    AmxComplex = "AMX_COMPLEX", Compiler, None;
    Aes = "AES", Compiler, None;
    Pclmulqdq = "PCLMULQDQ", Compiler, None;
    Sha = "SHA", Compiler, None;
    Sha512 = "SHA512", Compiler, None;
    Sm3 = "SM3", Compiler, None;
    Sm4 = "SM4", Compiler, None;
    Gfni = "GFNI", Compiler, None;
    Vaes = "VAES", Compiler, None;
    Vpclmulqdq = "VPCLMULQDQ", Compiler, None;
    Adx = "ADX", Compiler, None;
    /// AMD only (Bulldozer family), like XOP, TBM and SSE4A.
    Fma4 = "FMA4", Compiler, None;
    Xop = "XOP", Compiler, None;
    Tbm = "TBM", Compiler, None;
    Sse4a = "SSE4A", Compiler, None;
    /// AArch64 Scalable Vector Extension (SVE or SVE2); see `crate::aarch64`.
    Sve = "SVE", Compiler, None;
    Rtm = "RTM", Runtime, None;
    /// `xgetbv`, `xsave*`, `xrstor*` (all XSAVE variants folded into one).
    Xsave = "XSAVE", Runtime, None;
    Rdrand = "RDRAND", Runtime, None;
    Rdseed = "RDSEED", Runtime, None;
    Rdtscp = "RDTSCP", Runtime, None;
    Rdpid = "RDPID", Runtime, None;
    Fsgsbase = "FSGSBASE", Runtime, None;
    Clflushopt = "CLFLUSHOPT", Runtime, None;
    Clwb = "CLWB", Runtime, None;
    CetSs = "CET_SS", Runtime, None;
    Serialize = "SERIALIZE", Runtime, None;
    Waitpkg = "WAITPKG", Runtime, None;
    Movdiri = "MOVDIRI", Runtime, None;
    Movdir64b = "MOVDIR64B", Runtime, None;
    Pku = "PKU", Runtime, None;
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Feature`]s as a bit mask; iterates in declaration order, which keeps JSON stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u128);

impl FeatureSet {
    /// The empty set.
    pub const EMPTY: FeatureSet = FeatureSet(0);

    /// Adds one feature.
    pub fn insert(&mut self, f: Feature) {
        self.0 |= 1u128 << (f as u8);
    }

    /// Whether `f` is in the set.
    pub fn contains(self, f: Feature) -> bool {
        self.0 & (1u128 << (f as u8)) != 0
    }

    /// Set union.
    pub fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }

    /// Features in `self` that are not in `other`.
    pub fn difference(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every feature of `self` is in `other`.
    pub fn is_subset(self, other: FeatureSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The features, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL
            .iter()
            .copied()
            .filter(move |f| self.contains(*f))
    }

    /// The features that can be required (drops the runtime-only class).
    pub fn compiler_only(self) -> FeatureSet {
        self.iter().filter(|f| !f.is_runtime_only()).collect()
    }

    /// The lowest level that contains every level-defining feature of the set (v1 if none).
    pub fn level(self) -> Level {
        self.iter()
            .filter_map(Feature::level)
            .max()
            .unwrap_or(Level::V1)
    }

    /// Every feature of the levels up to and including `level`.
    pub fn of_level(level: Level) -> FeatureSet {
        Level::ALL
            .iter()
            .filter(|l| **l <= level)
            .flat_map(|l| l.added_features().iter().copied())
            .collect()
    }

    /// Adds the features that the present ones imply architecturally: every AVX-512 subset
    /// needs AVX512F (iced reports `vpmullq ymm` as only AVX512VL + AVX512DQ, but no CPU
    /// has those without AVX512F).
    pub fn with_implied(self) -> FeatureSet {
        let mut s = self;
        if s.iter().any(|f| f.name().starts_with("AVX512")) {
            s.insert(Feature::Avx512f);
        }
        s
    }

    /// As a sorted vector (the JSON form).
    pub fn to_vec(self) -> Vec<Feature> {
        self.iter().collect()
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        let mut s = FeatureSet::EMPTY;
        for f in iter {
            s.insert(f);
        }
        s
    }
}

/// Maps one iced-x86 CPUID feature to ours; `None` for the compatible class (baseline, no-op
/// encodings, hints) and for system features that user-space code cannot contain.
pub(crate) fn from_iced(f: iced_x86::CpuidFeature) -> Option<Feature> {
    use Feature as F;
    use iced_x86::CpuidFeature as C;
    Some(match f {
        C::SSE3 => F::Sse3,
        C::SSSE3 => F::Ssse3,
        C::SSE4_1 => F::Sse4_1,
        C::SSE4_2 => F::Sse4_2,
        C::POPCNT => F::Popcnt,
        C::CMPXCHG16B => F::Cmpxchg16b,
        C::AVX => F::Avx,
        C::AVX2 => F::Avx2,
        C::BMI1 => F::Bmi1,
        C::BMI2 => F::Bmi2,
        C::F16C => F::F16c,
        C::FMA => F::Fma,
        C::LZCNT => F::Lzcnt,
        C::MOVBE => F::Movbe,
        C::AVX512F => F::Avx512f,
        C::AVX512BW => F::Avx512bw,
        C::AVX512CD => F::Avx512cd,
        C::AVX512DQ => F::Avx512dq,
        C::AVX512VL => F::Avx512vl,
        C::AVX512_IFMA => F::Avx512Ifma,
        C::AVX512_VBMI => F::Avx512Vbmi,
        C::AVX512_VBMI2 => F::Avx512Vbmi2,
        C::AVX512_VNNI => F::Avx512Vnni,
        C::AVX512_BITALG => F::Avx512Bitalg,
        C::AVX512_VPOPCNTDQ => F::Avx512Vpopcntdq,
        C::AVX512_BF16 => F::Avx512Bf16,
        C::AVX512_FP16 => F::Avx512Fp16,
        C::AVX512_VP2INTERSECT => F::Avx512Vp2intersect,
        C::AVX512_4FMAPS => F::Avx512_4fmaps,
        C::AVX512_4VNNIW => F::Avx512_4vnniw,
        C::AVX512ER => F::Avx512er,
        C::AVX512PF => F::Avx512pf,
        C::AVX_VNNI => F::AvxVnni,
        C::AVX_IFMA => F::AvxIfma,
        C::AVX_NE_CONVERT => F::AvxNeConvert,
        C::AVX_VNNI_INT8 => F::AvxVnniInt8,
        C::AVX_VNNI_INT16 => F::AvxVnniInt16,
        C::AMX_TILE => F::AmxTile,
        C::AMX_INT8 => F::AmxInt8,
        C::AMX_BF16 => F::AmxBf16,
        C::AMX_FP16 => F::AmxFp16,
        C::AMX_COMPLEX => F::AmxComplex,
        C::AES => F::Aes,
        C::PCLMULQDQ => F::Pclmulqdq,
        C::SHA => F::Sha,
        C::SHA512 => F::Sha512,
        C::SM3 => F::Sm3,
        C::SM4 => F::Sm4,
        C::GFNI => F::Gfni,
        C::VAES => F::Vaes,
        C::VPCLMULQDQ => F::Vpclmulqdq,
        C::ADX => F::Adx,
        C::FMA4 => F::Fma4,
        C::XOP => F::Xop,
        C::TBM => F::Tbm,
        C::SSE4A => F::Sse4a,
        // 3DNow! is not mapped: no current compiler emits it, AMD removed it in 2010, and in
        // practice the bytes decoded as 3DNow! are constant tables inside `.text` (OpenSSL).
        // `xtest` runs when either HLE or RTM exists; it only appears in elision code.
        C::RTM | C::HLE_or_RTM | C::TSXLDTRK => F::Rtm,
        C::XSAVE | C::XSAVEC | C::XSAVEOPT | C::XSAVES => F::Xsave,
        C::RDRAND => F::Rdrand,
        C::RDSEED => F::Rdseed,
        C::RDTSCP => F::Rdtscp,
        C::RDPID => F::Rdpid,
        C::FSGSBASE => F::Fsgsbase,
        C::CLFLUSHOPT => F::Clflushopt,
        C::CLWB => F::Clwb,
        C::CET_SS => F::CetSs,
        C::SERIALIZE => F::Serialize,
        C::WAITPKG => F::Waitpkg,
        C::MOVDIRI => F::Movdiri,
        C::MOVDIR64B => F::Movdir64b,
        C::PKU => F::Pku,
        // Compatible class: baseline, no-op encodings and hints (see the module docs), and
        // privileged or exotic features that ordinary user-space ELF files do not contain.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_come_from_their_highest_feature() {
        let mut s = FeatureSet::EMPTY;
        assert_eq!(s.level(), Level::V1);
        s.insert(Feature::Popcnt);
        assert_eq!(s.level(), Level::V2);
        s.insert(Feature::Aes);
        assert_eq!(s.level(), Level::V2);
        s.insert(Feature::Avx512vl);
        assert_eq!(s.level(), Level::V4);
        assert_eq!(FeatureSet::of_level(Level::V3).level(), Level::V3);
        assert!(FeatureSet::of_level(Level::V2).is_subset(FeatureSet::of_level(Level::V4)));
    }

    #[test]
    fn isa_note_bits_give_the_highest_level() {
        assert_eq!(Level::from_isa_note_bits(1), Some(Level::V1));
        assert_eq!(Level::from_isa_note_bits(0b0111), Some(Level::V3));
        assert_eq!(Level::from_isa_note_bits(0b1001), Some(Level::V4));
        assert_eq!(Level::from_isa_note_bits(0), None);
    }

    #[test]
    fn json_names_are_the_cpuid_names() {
        let s = serde_json::to_string(&[Feature::Avx512f, Feature::Sse4_2]).unwrap();
        assert_eq!(s, r#"["AVX512F","SSE4_2"]"#);
        assert_eq!(serde_json::to_string(&Level::V3).unwrap(), r#""x86-64-v3""#);
        assert!(Feature::ALL.len() <= 128);
    }
}
