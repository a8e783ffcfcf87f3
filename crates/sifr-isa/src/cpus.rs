//! Named CPUs as judges: the features of a target level (`x86-64-v3`, `armv8.2-a`) or of a
//! microarchitecture (`haswell`, `skylake-avx512`, `zen3`, `neoverse-n1`), as a [`HostFacts`]
//! that [`crate::judge_image`] can judge an image against, from a login node whose own CPU is
//! newer than the compute nodes'. Names are gcc's `-march` names (and Slurm sites' feature
//! tags usually are); a CPU is its level plus the extensions it adds beyond it. Only features
//! this crate detects in programs are listed; every other feature counts as known absent, so
//! a program using one is reported.

use crate::elf::Arch;
use crate::feature::{Feature, FeatureSet, Level};
use crate::host::HostFacts;
use crate::target::{ArmBaseline, TargetIsa};

use Feature as F;

/// `(names, arch, level, extensions beyond the level)`; the first name is the canonical one.
/// The extensions are a chain of the increments below, oldest first, as each generation
/// kept its predecessor's.
type Cpu = (
    &'static [&'static str],
    Arch,
    Level,
    &'static [&'static [Feature]],
);

/// Westmere's crypto and Nehalem's RDTSCP, XSAVE: every later x86-64 server CPU has them.
const CRYPTO: &[Feature] = &[F::Aes, F::Pclmulqdq, F::Xsave, F::Rdtscp];
/// Broadwell (and AMD Zen): ADX, RDRAND, RDSEED, FSGSBASE.
const BDW: &[Feature] = &[F::Adx, F::Rdrand, F::Rdseed, F::Fsgsbase];
/// Skylake (and Zen): CLFLUSHOPT.
const SKL: &[Feature] = &[F::Clflushopt];
/// Skylake-SP: CLWB, PKU.
const SKX: &[Feature] = &[F::Clwb, F::Pku];
/// Cascade Lake: AVX512-VNNI.
const CLX: &[Feature] = &[F::Avx512Vnni];
/// Ice Lake server: the rest of AVX-512's integer extensions, GFNI, VAES, SHA.
const ICX: &[Feature] = &[
    F::Avx512Ifma,
    F::Avx512Vbmi,
    F::Avx512Vbmi2,
    F::Avx512Bitalg,
    F::Avx512Vpopcntdq,
    F::Gfni,
    F::Vaes,
    F::Vpclmulqdq,
    F::Sha,
    F::Rdpid,
];
/// Sapphire Rapids: BF16, FP16, AMX and the new system instructions.
const SPR: &[Feature] = &[
    F::Avx512Bf16,
    F::Avx512Fp16,
    F::AvxVnni,
    F::AmxTile,
    F::AmxInt8,
    F::AmxBf16,
    F::Serialize,
    F::Waitpkg,
    F::Movdiri,
    F::Movdir64b,
];
/// Zen: SHA and AMD's SSE4A.
const ZEN: &[Feature] = &[F::Sha, F::Sse4a];
/// Zen 2: CLWB, RDPID.
const ZEN2: &[Feature] = &[F::Clwb, F::Rdpid];
/// Zen 3: VAES, VPCLMULQDQ, PKU.
const ZEN3: &[Feature] = &[F::Vaes, F::Vpclmulqdq, F::Pku];
/// Zen 4: AVX-512 with Ice Lake's extensions (no FP16), GFNI.
const ZEN4: &[Feature] = &[
    F::Gfni,
    F::Avx512Vnni,
    F::Avx512Ifma,
    F::Avx512Vbmi,
    F::Avx512Vbmi2,
    F::Avx512Bitalg,
    F::Avx512Vpopcntdq,
    F::Avx512Bf16,
];

const CPUS: &[Cpu] = &[
    (
        &["nehalem", "corei7"],
        Arch::Amd64,
        Level::V2,
        &[&[F::Xsave, F::Rdtscp]],
    ),
    (&["westmere"], Arch::Amd64, Level::V2, &[CRYPTO]),
    (
        &["sandybridge", "corei7-avx"],
        Arch::Amd64,
        Level::V2,
        &[CRYPTO, &[F::Avx]],
    ),
    (
        &["ivybridge", "core-avx-i"],
        Arch::Amd64,
        Level::V2,
        &[CRYPTO, &[F::Avx, F::F16c, F::Rdrand, F::Fsgsbase]],
    ),
    (&["haswell", "core-avx2"], Arch::Amd64, Level::V3, &[CRYPTO]),
    (&["broadwell"], Arch::Amd64, Level::V3, &[CRYPTO, BDW]),
    (&["skylake"], Arch::Amd64, Level::V3, &[CRYPTO, BDW, SKL]),
    (
        &["skylake-avx512", "skylake-x", "skylake-sp"],
        Arch::Amd64,
        Level::V4,
        &[CRYPTO, BDW, SKL, SKX],
    ),
    (
        &["cascadelake"],
        Arch::Amd64,
        Level::V4,
        &[CRYPTO, BDW, SKL, SKX, CLX],
    ),
    (
        &["icelake-server", "icelake"],
        Arch::Amd64,
        Level::V4,
        &[CRYPTO, BDW, SKL, SKX, CLX, ICX],
    ),
    (
        &["sapphirerapids"],
        Arch::Amd64,
        Level::V4,
        &[CRYPTO, BDW, SKL, SKX, CLX, ICX, SPR],
    ),
    (
        &["znver1", "zen", "zen1"],
        Arch::Amd64,
        Level::V3,
        &[CRYPTO, BDW, SKL, ZEN],
    ),
    (
        &["znver2", "zen2"],
        Arch::Amd64,
        Level::V3,
        &[CRYPTO, BDW, SKL, ZEN, ZEN2],
    ),
    (
        &["znver3", "zen3"],
        Arch::Amd64,
        Level::V3,
        &[CRYPTO, BDW, SKL, ZEN, ZEN2, ZEN3],
    ),
    (
        &["znver4", "zen4"],
        Arch::Amd64,
        Level::V4,
        &[CRYPTO, BDW, SKL, ZEN, ZEN2, ZEN3, ZEN4],
    ),
];

/// AArch64 CPUs: `(names, with SVE)`. The scanner judges AArch64 programs by SVE alone.
const ARM_CPUS: &[(&[&str], bool)] = &[
    (&["neoverse-n1", "graviton2", "ampere-altra"], false),
    (&["cortex-a72", "graviton1", "thunderx2"], false),
    (&["neoverse-v1", "graviton3"], true),
    (&["neoverse-v2", "grace", "graviton4", "neoverse-n2"], true),
    (&["a64fx"], true),
];

/// Every name accepted, for errors and help.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = TargetIsa::NAMES.to_vec();
    v.extend(CPUS.iter().map(|c| c.0[0]));
    v.extend(ARM_CPUS.iter().map(|c| c.0[0]));
    v
}

/// A name that is neither a level nor a known CPU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CPU or level `{name}`")]
pub struct UnknownCpu {
    pub name: String,
}

impl UnknownCpu {
    /// The names that are known.
    pub fn hint(&self) -> String {
        format!("known: {}", names().join(", "))
    }
}

/// Every feature is known: what a named CPU lacks is absent, not unknown.
fn all() -> FeatureSet {
    Feature::ALL.iter().copied().collect()
}

/// The facts of the CPU or level `name` (case and `_`/`-` ignored).
pub fn named(name: &str) -> Result<HostFacts, UnknownCpu> {
    let key = name.trim().to_ascii_lowercase().replace('_', "-");
    if let Ok(t) = key.parse::<TargetIsa>() {
        return Ok(match t {
            TargetIsa::X86_64(l) => {
                HostFacts::from_features(Arch::Amd64, FeatureSet::of_level(l), all())
            }
            TargetIsa::Aarch64(b) => {
                let mut present = FeatureSet::EMPTY;
                if b >= ArmBaseline::V9_0 {
                    present.insert(F::Sve);
                }
                HostFacts::from_features(Arch::Arm64, present, all())
            }
        });
    }
    if let Some((_, arch, level, extra)) = CPUS.iter().find(|c| c.0.contains(&key.as_str())) {
        let added: FeatureSet = extra.iter().flat_map(|part| part.iter().copied()).collect();
        let present = FeatureSet::of_level(*level).union(added);
        return Ok(HostFacts::from_features(*arch, present, all()));
    }
    if let Some((_, sve)) = ARM_CPUS.iter().find(|c| c.0.contains(&key.as_str())) {
        let mut present = FeatureSet::EMPTY;
        if *sve {
            present.insert(F::Sve);
        }
        return Ok(HostFacts::from_features(Arch::Arm64, present, all()));
    }
    Err(UnknownCpu { name: name.into() })
}

/// The facts of a node described by feature tags (a Slurm node's `AvailableFeatures`, e.g.
/// `intel,skylake-avx512,ib`): the best known CPU or level among them, with any feature names
/// (`avx512f`) added. `None` when no tag names a CPU, a level or a feature.
pub fn from_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<HostFacts> {
    let mut best: Option<HostFacts> = None;
    let mut extra = FeatureSet::EMPTY;
    for tag in tags {
        if let Ok(h) = named(tag) {
            let better = best
                .as_ref()
                .is_none_or(|b| h.present().difference(b.present()) != FeatureSet::EMPTY);
            if better {
                best = Some(h);
            }
            continue;
        }
        let up = tag.trim().to_ascii_uppercase().replace('-', "_");
        if let Some(f) = Feature::ALL.iter().find(|f| f.name() == up) {
            extra.insert(*f);
        }
    }
    match best {
        Some(b) => Some(HostFacts::from_features(
            b.arch,
            b.present().union(extra),
            all(),
        )),
        None if extra != FeatureSet::EMPTY => {
            Some(HostFacts::from_features(Arch::Amd64, extra, all()))
        }
        None => None,
    }
}

/// The facts of a CPU from its `/proc/cpuinfo` text (the first `flags` line on x86-64, the
/// first `Features` line on AArch64), as gathered from a compute node. `None` without one.
pub fn from_cpuinfo(text: &str) -> Option<HostFacts> {
    let line = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.split_whitespace().collect::<Vec<_>>())
        })
    };
    if let Some(flags) = line("flags") {
        let mut present = FeatureSet::EMPTY;
        for flag in flags {
            // The kernel's names where they differ from the feature's.
            let name = match flag {
                "pni" => "SSE3".to_string(),
                "cx16" => "CMPXCHG16B".to_string(),
                "abm" => "LZCNT".to_string(),
                "sha_ni" => "SHA".to_string(),
                "ospke" => "PKU".to_string(),
                f => f.to_ascii_uppercase(),
            };
            if let Some(f) = Feature::ALL.iter().find(|f| f.name() == name) {
                present.insert(*f);
            }
        }
        return Some(HostFacts::from_features(Arch::Amd64, present, all()));
    }
    let features = line("Features")?;
    let mut present = FeatureSet::EMPTY;
    if features.iter().any(|f| *f == "sve" || *f == "sve2") {
        present.insert(F::Sve);
    }
    Some(HostFacts::from_features(Arch::Arm64, present, all()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_cpus_have_the_features_of_their_level_and_more() {
        let v3 = named("x86-64-v3").unwrap();
        assert_eq!(v3.level, Some(Level::V3));
        assert!(v3.has(F::Avx2) && !v3.has(F::Avx512f));
        assert!(v3.unknown.is_empty(), "a named CPU leaves nothing unknown");
        let h = named("Haswell").unwrap();
        assert_eq!(h.level, Some(Level::V3));
        assert!(h.has(F::Aes));
        let s = named("skylake_avx512").unwrap();
        assert_eq!(s.level, Some(Level::V4));
        assert!(!s.has(F::Avx512Vnni));
        assert!(named("cascadelake").unwrap().has(F::Avx512Vnni));
        assert_eq!(named("zen3").unwrap().level, Some(Level::V3));
        assert_eq!(named("znver4").unwrap().level, Some(Level::V4));
        // Sandy Bridge has AVX without the rest of v3.
        let sb = named("sandybridge").unwrap();
        assert_eq!(sb.level, Some(Level::V2));
        assert!(sb.has(F::Avx));
        let n1 = named("neoverse-n1").unwrap();
        assert_eq!(n1.arch, Arch::Arm64);
        assert!(!n1.has(F::Sve));
        assert!(named("a64fx").unwrap().has(F::Sve));
        assert!(named("armv9-a").unwrap().has(F::Sve));
        let e = named("pentium4").unwrap_err();
        assert!(e.hint().contains("skylake-avx512"), "{}", e.hint());
    }

    #[test]
    fn node_tags_pick_the_best_cpu_and_add_feature_names() {
        let h = from_tags(["intel", "haswell", "ib"]).unwrap();
        assert_eq!(h.level, Some(Level::V3));
        let h = from_tags(["broadwell", "x86-64-v2"]).unwrap();
        assert_eq!(h.level, Some(Level::V3), "the newer of the two");
        let h = from_tags([
            "x86-64-v3",
            "avx512f",
            "avx512bw",
            "avx512cd",
            "avx512dq",
            "avx512vl",
        ])
        .unwrap();
        assert_eq!(h.level, Some(Level::V4));
        assert!(from_tags(["gpu", "ib"]).is_none());
    }

    #[test]
    fn cpuinfo_flags_use_the_kernels_names() {
        let haswell = "processor\t: 0\nflags\t\t: fpu sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 \
                       avx avx2 bmi1 bmi2 f16c fma abm movbe xsave aes\nflags\t: ignored\n";
        let h = from_cpuinfo(haswell).unwrap();
        assert_eq!(h.level, Some(Level::V3));
        assert!(h.has(F::Lzcnt) && h.has(F::Aes) && !h.has(F::Avx512f));
        let arm = "processor\t: 0\nFeatures\t: fp asimd sve\n";
        assert!(from_cpuinfo(arm).unwrap().has(F::Sve));
        assert!(from_cpuinfo("nothing here").is_none());
        // This machine's own, when it has one: the same level as the detection says.
        if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo")
            && cfg!(target_arch = "x86_64")
        {
            assert_eq!(
                from_cpuinfo(&text).unwrap().level,
                HostFacts::detect().level
            );
        }
    }
}
