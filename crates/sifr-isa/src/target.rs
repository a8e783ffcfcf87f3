//! Compiler flags for a target ISA: what `sifr build --target-isa x86-64-v2` exports into
//! `%post`, so that software compiled inside an image runs on every node of that level.
//!
//! Pure data: parses a target name and returns `(variable, flags)` pairs. It does not read the
//! environment, run a compiler or know how a build exports variables. The flags are only the
//! ISA part (no `-O2`): a build adds them to whatever the definition file sets.
//!
//! Decisions:
//! * `-march=x86-64-vN` rather than a CPU name (`-march=haswell`): it names exactly the psABI
//!   level the scanner reports and implies `-mtune=generic`. It needs gcc >= 11 or clang >= 12.
//! * No `-mneeded`: it would let glibc's loader refuse a too-new binary cleanly, but clang
//!   rejects it, and the variables are read by whatever compiler the image has.
//! * aarch64 baselines are `-march=armv8-a` (every 64-bit Arm), `armv8.2-a` (Neoverse N1,
//!   Graviton 2, A64FX without SVE), `armv9-a` (SVE2: Neoverse V2/N2, Grace, Graviton 4).

use std::fmt;
use std::str::FromStr;

use crate::feature::Level;

/// A target instruction set that a build can aim at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetIsa {
    /// An x86-64 psABI level.
    X86_64(Level),
    /// An AArch64 baseline.
    Aarch64(ArmBaseline),
}

/// The AArch64 baselines offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArmBaseline {
    /// Armv8.0-A: every 64-bit Arm CPU.
    V8_0,
    /// Armv8.2-A.
    V8_2,
    /// Armv9.0-A (includes SVE2).
    V9_0,
}

impl TargetIsa {
    /// Every target name accepted, for help texts and errors.
    pub const NAMES: &'static [&'static str] = &[
        "x86-64-v1",
        "x86-64-v2",
        "x86-64-v3",
        "x86-64-v4",
        "armv8-a",
        "armv8.2-a",
        "armv9-a",
    ];

    /// The canonical name (`x86-64-v2`, `armv8.2-a`).
    pub fn name(self) -> &'static str {
        match self {
            TargetIsa::X86_64(l) => l.name(),
            TargetIsa::Aarch64(ArmBaseline::V8_0) => "armv8-a",
            TargetIsa::Aarch64(ArmBaseline::V8_2) => "armv8.2-a",
            TargetIsa::Aarch64(ArmBaseline::V9_0) => "armv9-a",
        }
    }

    /// The architecture the target belongs to (Go name: `amd64`, `arm64`).
    pub fn arch(self) -> crate::Arch {
        match self {
            TargetIsa::X86_64(_) => crate::Arch::Amd64,
            TargetIsa::Aarch64(_) => crate::Arch::Arm64,
        }
    }
}

impl fmt::Display for TargetIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A target name that is not one of [`TargetIsa::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target ISA `{name}` (expected one of {})", TargetIsa::NAMES.join(", "))]
pub struct UnknownTarget {
    /// The name given.
    pub name: String,
}

impl FromStr for TargetIsa {
    type Err = UnknownTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "x86-64" | "x86-64-v1" | "x86-64-baseline" => TargetIsa::X86_64(Level::V1),
            "x86-64-v2" => TargetIsa::X86_64(Level::V2),
            "x86-64-v3" => TargetIsa::X86_64(Level::V3),
            "x86-64-v4" => TargetIsa::X86_64(Level::V4),
            "armv8-a" | "armv8.0-a" | "aarch64" => TargetIsa::Aarch64(ArmBaseline::V8_0),
            "armv8.2-a" => TargetIsa::Aarch64(ArmBaseline::V8_2),
            "armv9-a" | "armv9.0-a" => TargetIsa::Aarch64(ArmBaseline::V9_0),
            _ => {
                return Err(UnknownTarget { name: s.into() });
            }
        };
        Ok(t)
    }
}

/// The environment variables a build exports for `target`, with their values: `CFLAGS`,
/// `CXXFLAGS`, `FFLAGS` (gcc, g++, gfortran and clang), `RUSTFLAGS`, and Go's `GOAMD64` or
/// `GOARM64`, in that order.
pub fn compiler_flags(target: TargetIsa) -> Vec<(&'static str, String)> {
    let (march, rust, go) = match target {
        TargetIsa::X86_64(l) => {
            let v = &l.name()["x86-64-".len()..];
            (
                format!("-march={}", l.name()),
                format!("-C target-cpu={}", l.name()),
                ("GOAMD64", v.to_owned()),
            )
        }
        TargetIsa::Aarch64(b) => {
            let (rust, go) = match b {
                ArmBaseline::V8_0 => ("-C target-cpu=generic", "v8.0"),
                ArmBaseline::V8_2 => ("-C target-cpu=generic -C target-feature=+v8.2a", "v8.2"),
                ArmBaseline::V9_0 => ("-C target-cpu=generic -C target-feature=+v9a,+sve2", "v9.0"),
            };
            (
                format!("-march={}", target.name()),
                rust.to_owned(),
                ("GOARM64", go.to_owned()),
            )
        }
    };
    vec![
        ("CFLAGS", march.clone()),
        ("CXXFLAGS", march.clone()),
        ("FFLAGS", march),
        ("RUSTFLAGS", rust),
        (go.0, go.1),
    ]
}

/// The flags as `export NAME='VALUE'` lines for a POSIX shell script such as `%post`, each
/// value appended to what the variable already holds (`${CFLAGS:+$CFLAGS }`), so flags set
/// by the environment survive. Go's variable is set, not appended (it takes one value).
pub fn shell_exports(target: TargetIsa) -> String {
    let mut s = String::new();
    for (name, value) in compiler_flags(target) {
        if name.starts_with("GO") {
            s.push_str(&format!("export {name}='{value}'\n"));
        } else {
            s.push_str(&format!("export {name}=\"${{{name}:+${name} }}{value}\"\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(name: &str) -> Vec<(&'static str, String)> {
        compiler_flags(name.parse().unwrap())
    }

    #[test]
    fn every_x86_level_gives_march_rust_cpu_and_goamd64() {
        for (i, l) in Level::ALL.iter().enumerate() {
            let f = compiler_flags(TargetIsa::X86_64(*l));
            let names: Vec<&str> = f.iter().map(|(n, _)| *n).collect();
            assert_eq!(
                names,
                ["CFLAGS", "CXXFLAGS", "FFLAGS", "RUSTFLAGS", "GOAMD64"]
            );
            let march = format!("-march=x86-64-v{}", i + 1);
            assert_eq!(f[0].1, march);
            assert_eq!(f[1].1, march);
            assert_eq!(f[2].1, march);
            assert_eq!(f[3].1, format!("-C target-cpu=x86-64-v{}", i + 1));
            assert_eq!(f[4].1, format!("v{}", i + 1));
        }
    }

    #[test]
    fn aarch64_baselines_give_their_march() {
        assert_eq!(flags("armv8-a")[0], ("CFLAGS", "-march=armv8-a".into()));
        assert_eq!(flags("aarch64")[0], ("CFLAGS", "-march=armv8-a".into()));
        assert_eq!(flags("armv8.2-a")[2], ("FFLAGS", "-march=armv8.2-a".into()));
        let v9 = flags("armv9-a");
        assert!(v9[3].1.contains("+sve2"), "{v9:?}");
        assert_eq!(v9[4], ("GOARM64", "v9.0".into()));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for n in TargetIsa::NAMES {
            let t: TargetIsa = n.parse().unwrap();
            assert_eq!(t.name(), *n);
        }
        assert_eq!(
            "X86_64_V3".parse::<TargetIsa>(),
            Ok(TargetIsa::X86_64(Level::V3))
        );
        let e = "haswell".parse::<TargetIsa>().unwrap_err().to_string();
        assert!(e.starts_with("unknown target ISA `haswell`"), "{e}");
        assert!(e.contains("x86-64-v2") && e.contains("armv9-a"), "{e}");
    }

    #[test]
    fn shell_exports_append_to_existing_flags() {
        let s = shell_exports(TargetIsa::X86_64(Level::V2));
        assert!(
            s.contains("export CFLAGS=\"${CFLAGS:+$CFLAGS }-march=x86-64-v2\"\n"),
            "{s}"
        );
        assert!(s.contains("export GOAMD64='v2'\n"), "{s}");
        assert_eq!(s.lines().count(), 5);
    }
}
